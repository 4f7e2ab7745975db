#include "serving/token_mask.h"

#include <algorithm>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"

namespace copyforge {

namespace {

// Characters of `b` when it is plain string content (JsonSchema::PlainRoom), else -1. The UTF-8
// rules are the automaton's: no overlong forms, no surrogates, nothing beyond U+10FFFF.
int64_t PlainChars(const std::string& b) {
  int64_t chars = 0;
  for (size_t i = 0; i < b.size(); ++chars) {
    const uint8_t c = static_cast<uint8_t>(b[i]);
    if (c < 0x20 || c == '"' || c == '\\') return -1;
    if (c < 0x80) {
      ++i;
      continue;
    }
    int follow = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      follow = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      follow = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      follow = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return -1;
    }
    if (i + follow >= b.size()) return -1;  // the character is cut short
    for (int k = 1; k <= follow; ++k) {
      const uint8_t d = static_cast<uint8_t>(b[i + k]);
      if (d < lo || d > hi) return -1;
      lo = 0x80;
      hi = 0xBF;
    }
    i += follow + 1;
  }
  return b.empty() ? -1 : chars;
}

// A byte trie of the tokens `keep` selects, flattened into first-child / next-sibling links.
template <typename Node, typename Keep>
std::vector<Node> BuildTrie(const std::vector<std::string>& token_bytes, Keep keep) {
  struct Building {
    std::map<uint8_t, int32_t> children;
    int32_t token = -1;
  };
  std::vector<Building> tree(1);
  for (int32_t id = 0; id < static_cast<int32_t>(token_bytes.size()); ++id) {
    if (!keep(id)) continue;
    int32_t at = 0;
    for (char ch : token_bytes[id]) {
      const uint8_t b = static_cast<uint8_t>(ch);
      auto it = tree[at].children.find(b);
      if (it == tree[at].children.end()) {
        tree.emplace_back();
        it = tree[at].children.emplace(b, static_cast<int32_t>(tree.size() - 1)).first;
      }
      at = it->second;
    }
    tree[at].token = id;
  }
  std::vector<Node> nodes(tree.size());
  for (size_t i = 0; i < tree.size(); ++i) {
    nodes[i].token = tree[i].token;
    int32_t previous = -1;
    for (const auto& [byte, child] : tree[i].children) {
      nodes[child].byte = byte;
      if (previous < 0) {
        nodes[i].first_child = child;
      } else {
        nodes[previous].next_sibling = child;
      }
      previous = child;
    }
  }
  return nodes;
}

}  // namespace

VocabularyTrie::VocabularyTrie(const std::vector<std::string>& token_bytes, int32_t eos)
    : token_bytes_(token_bytes), vocab_(static_cast<int64_t>(token_bytes.size())), eos_(eos) {
  std::vector<int64_t> plain(token_bytes.size(), -1);
  int64_t most = 0;
  for (int32_t id = 0; id < static_cast<int32_t>(token_bytes.size()); ++id) {
    max_token_bytes_ = std::max<int64_t>(max_token_bytes_, token_bytes[id].size());
    if (id == eos) continue;
    plain[id] = PlainChars(token_bytes[id]);
    most = std::max(most, plain[id]);
  }
  auto generated = [&](int32_t id) { return id != eos && !token_bytes[id].empty(); };
  nodes_ = BuildTrie<Node>(token_bytes, generated);
  other_nodes_ =
      BuildTrie<Node>(token_bytes, [&](int32_t id) { return generated(id) && plain[id] < 0; });
  plain_upto_.assign(static_cast<size_t>(most) + 1, std::vector<uint64_t>((vocab_ + 63) / 64, 0));
  for (int32_t id = 0; id < static_cast<int32_t>(token_bytes.size()); ++id) {
    if (plain[id] < 0) continue;
    for (int64_t c = plain[id]; c <= most; ++c) plain_upto_[c][id / 64] |= uint64_t{1} << (id % 64);
  }
}

void VocabularyTrie::Walk(const std::vector<Node>& nodes, const JsonSchema& schema,
                          const SchemaState& state, int64_t max_bytes,
                          std::vector<uint64_t>* bits) {
  // Depth-first; levels[d] is the state after the first d bytes of the path. The levels are
  // this thread's scratch, kept between calls: a fresh set would zero ~190 KB for every mask,
  // most of the cost of one inside a string.
  thread_local std::vector<SchemaState> levels;
  if (levels.size() < static_cast<size_t>(max_bytes) + 1) levels.resize(max_bytes + 1);
  levels[0].CopyFrom(state);
  struct Visit {
    int32_t node;
    int depth;
  };
  std::vector<Visit> stack;
  for (int32_t c = nodes[0].first_child; c >= 0; c = nodes[c].next_sibling) stack.push_back({c, 1});
  while (!stack.empty()) {
    const Visit v = stack.back();
    stack.pop_back();
    SchemaState& s = levels[v.depth];
    s.CopyFrom(levels[v.depth - 1]);
    if (!schema.Feed(s, nodes[v.node].byte)) continue;
    const int32_t token = nodes[v.node].token;
    if (token >= 0) (*bits)[token / 64] |= uint64_t{1} << (token % 64);
    for (int32_t c = nodes[v.node].first_child; c >= 0; c = nodes[c].next_sibling) {
      stack.push_back({c, v.depth + 1});
    }
  }
}

std::vector<uint64_t> VocabularyTrie::Allowed(const JsonSchema& schema,
                                              const SchemaState& state) const {
  std::vector<uint64_t> bits((vocab_ + 63) / 64, 0);
  if (eos_ >= 0 && schema.Complete(state)) bits[eos_ / 64] |= uint64_t{1} << (eos_ % 64);
  if (state.done) return bits;
  const int64_t room = schema.PlainRoom(state);
  if (room < 0) {
    Walk(nodes_, schema, state, max_token_bytes_, &bits);
    return bits;
  }
  // Inside a string: every plain token that fits, by a table; the rest (quotes, escapes, partial
  // characters) walked.
  if (room > 0 && !plain_upto_.empty()) {
    const auto& fits = plain_upto_[std::min<int64_t>(room, plain_upto_.size() - 1)];
    for (size_t w = 0; w < bits.size(); ++w) bits[w] |= fits[w];
  }
  Walk(other_nodes_, schema, state, max_token_bytes_, &bits);
  return bits;
}

SchemaMasks::SchemaMasks(std::shared_ptr<const JsonSchema> schema,
                         std::shared_ptr<const VocabularyTrie> vocabulary, size_t capacity)
    : schema_(std::move(schema)), vocabulary_(std::move(vocabulary)), capacity_(capacity) {}

std::shared_ptr<const SchemaMasks::Mask> SchemaMasks::Allowed(const SchemaState& state) {
  if (schema_->PlainRoom(state) >= 0) {  // a table and a small walk: no cache needed
    return std::make_shared<const Mask>(vocabulary_->Allowed(*schema_, state));
  }
  const std::string key = state.MaskKey(*schema_, vocabulary_->max_token_bytes());
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      order_.splice(order_.end(), order_, it->second.second);
      ++stats_.hits;
      return it->second.first;
    }
  }
  auto mask = std::make_shared<const Mask>(vocabulary_->Allowed(*schema_, state));
  absl::MutexLock lock(&mu_);
  ++stats_.misses;
  if (cache_.count(key) == 0) {
    while (cache_.size() >= capacity_ && !order_.empty()) {
      cache_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(key);
    cache_.emplace(key, std::make_pair(mask, std::prev(order_.end())));
  }
  return mask;
}

SchemaMasks::Stats SchemaMasks::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

SchemaConstraint::SchemaConstraint(std::shared_ptr<SchemaMasks> masks)
    : masks_(std::move(masks)), state_(masks_->schema().Start()) {}

absl::Status SchemaConstraint::Process(float* logits, int64_t vocab) {
  const std::shared_ptr<const SchemaMasks::Mask> mask = masks_->Allowed(state_);
  const int64_t known = std::min<int64_t>(vocab, masks_->vocabulary().vocab());
  bool any = false;
  for (int64_t i = 0; i < vocab; ++i) {
    if (i < known && ((*mask)[i / 64] >> (i % 64) & 1)) {
      any = true;
    } else {
      logits[i] = -std::numeric_limits<float>::infinity();
    }
  }
  if (!any) return absl::InternalError("structured output: no token can continue the document");
  return absl::OkStatus();
}

absl::Status SchemaConstraint::Accept(int32_t token) {
  const VocabularyTrie& v = masks_->vocabulary();
  if (token == v.eos()) {
    if (masks_->schema().Complete(state_)) return absl::OkStatus();
    return absl::InternalError("structured output: end of text before the document is complete");
  }
  if (token < 0 || token >= v.vocab() || v.TokenBytes(token).empty() ||
      !masks_->schema().Feed(state_, v.TokenBytes(token))) {
    return absl::InternalError(
        absl::StrCat("structured output: token ", token, " does not fit the schema"));
  }
  return absl::OkStatus();
}

}  // namespace copyforge
