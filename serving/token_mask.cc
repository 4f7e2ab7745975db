#include "serving/token_mask.h"

#include <algorithm>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"

namespace copyforge {

VocabularyTrie::VocabularyTrie(const std::vector<std::string>& token_bytes, int32_t eos)
    : token_bytes_(token_bytes), vocab_(static_cast<int64_t>(token_bytes.size())), eos_(eos) {
  // Built through ordered child maps, then flattened into first-child / next-sibling links.
  struct Building {
    std::map<uint8_t, int32_t> children;
    int32_t token = -1;
  };
  std::vector<Building> tree(1);
  for (int32_t id = 0; id < static_cast<int32_t>(token_bytes.size()); ++id) {
    const std::string& bytes = token_bytes[id];
    if (id == eos || bytes.empty()) continue;
    max_token_bytes_ = std::max<int64_t>(max_token_bytes_, static_cast<int64_t>(bytes.size()));
    int32_t at = 0;
    for (char ch : bytes) {
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
  nodes_.resize(tree.size());
  for (size_t i = 0; i < tree.size(); ++i) {
    nodes_[i].token = tree[i].token;
    int32_t previous = -1;
    for (const auto& [byte, child] : tree[i].children) {
      nodes_[child].byte = byte;
      if (previous < 0) {
        nodes_[i].first_child = child;
      } else {
        nodes_[previous].next_sibling = child;
      }
      previous = child;
    }
  }
}

std::vector<uint64_t> VocabularyTrie::Allowed(const JsonSchema& schema,
                                              const SchemaState& state) const {
  std::vector<uint64_t> bits((vocab_ + 63) / 64, 0);
  if (eos_ >= 0 && schema.Complete(state)) bits[eos_ / 64] |= uint64_t{1} << (eos_ % 64);
  if (state.done) return bits;
  // Depth-first over the trie; levels[d] is the state after the first d bytes of the path.
  std::vector<SchemaState> levels(static_cast<size_t>(max_token_bytes_) + 1);
  levels[0].CopyFrom(state);
  struct Visit {
    int32_t node;
    int depth;
  };
  std::vector<Visit> stack;
  for (int32_t c = nodes_[0].first_child; c >= 0; c = nodes_[c].next_sibling)
    stack.push_back({c, 1});
  while (!stack.empty()) {
    const Visit v = stack.back();
    stack.pop_back();
    SchemaState& s = levels[v.depth];
    s.CopyFrom(levels[v.depth - 1]);
    if (!schema.Feed(s, nodes_[v.node].byte)) continue;
    const int32_t token = nodes_[v.node].token;
    if (token >= 0) bits[token / 64] |= uint64_t{1} << (token % 64);
    for (int32_t c = nodes_[v.node].first_child; c >= 0; c = nodes_[c].next_sibling) {
      stack.push_back({c, v.depth + 1});
    }
  }
  return bits;
}

SchemaMasks::SchemaMasks(std::shared_ptr<const JsonSchema> schema,
                         std::shared_ptr<const VocabularyTrie> vocabulary, size_t capacity)
    : schema_(std::move(schema)), vocabulary_(std::move(vocabulary)), capacity_(capacity) {}

std::shared_ptr<const SchemaMasks::Mask> SchemaMasks::Allowed(const SchemaState& state) {
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
