#include "serving/prefix_cache.h"

#include <algorithm>

namespace copyforge {

namespace {

// FNV-1a over the parent id and the block's tokens.
uint64_t BlockKey(int32_t parent, absl::Span<const int32_t> block) {
  uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(static_cast<uint32_t>(parent));
  for (int32_t t : block) mix(static_cast<uint32_t>(t));
  return h;
}

}  // namespace

PrefixIndex::PrefixIndex(int64_t block_tokens, int64_t capacity_blocks)
    : block_tokens_(std::max<int64_t>(1, block_tokens)),
      nodes_(static_cast<size_t>(std::max<int64_t>(0, capacity_blocks))) {
  Clear();
}

void PrefixIndex::Clear() {
  for (Node& n : nodes_) n = Node{};
  free_.clear();
  for (int32_t id = static_cast<int32_t>(nodes_.size()) - 1; id >= 0; --id) free_.push_back(id);
  by_key_.clear();
  evictable_.clear();
  used_ = 0;
}

int32_t PrefixIndex::Find(int32_t parent, absl::Span<const int32_t> block) const {
  auto [begin, end] = by_key_.equal_range(BlockKey(parent, block));
  for (auto it = begin; it != end; ++it) {
    const Node& n = nodes_[it->second];
    if (n.parent == parent && absl::MakeConstSpan(n.tokens) == block) return it->second;
  }
  return -1;
}

void PrefixIndex::Touch(int32_t id) {
  Node& n = nodes_[id];
  if (n.children == 0) evictable_.erase({n.last_used, id});
  n.last_used = ++clock_;
  if (n.children == 0) evictable_.insert({n.last_used, id});
}

std::vector<int32_t> PrefixIndex::Match(absl::Span<const int32_t> tokens, int64_t max_tokens) {
  std::vector<int32_t> chain;
  const int64_t blocks =
      std::min<int64_t>(static_cast<int64_t>(tokens.size()), max_tokens) / block_tokens_;
  int32_t parent = -1;
  for (int64_t b = 0; b < blocks; ++b) {
    const int32_t id = Find(parent, tokens.subspan(b * block_tokens_, block_tokens_));
    if (id < 0) break;
    chain.push_back(id);
    parent = id;
  }
  for (int32_t id : chain) Touch(id);
  return chain;
}

// Removes an unreferenced block from the index and drops its reference to its parent.
void PrefixIndex::Unlink(int32_t id) {
  Node& n = nodes_[id];
  evictable_.erase({n.last_used, id});
  auto [begin, end] = by_key_.equal_range(n.key);
  for (auto it = begin; it != end; ++it) {
    if (it->second == id) {
      by_key_.erase(it);
      break;
    }
  }
  if (n.parent >= 0) {
    Node& p = nodes_[n.parent];
    if (--p.children == 0) evictable_.insert({p.last_used, n.parent});
  }
  n = Node{};
  --used_;
}

int32_t PrefixIndex::Allocate(int32_t keep) {
  if (free_.empty()) {
    auto victim = evictable_.begin();
    if (victim != evictable_.end() && victim->second == keep) ++victim;
    if (victim == evictable_.end()) return -1;
    const int32_t id = victim->second;
    Unlink(id);
    ++evictions_;
    return id;
  }
  const int32_t id = free_.back();
  free_.pop_back();
  return id;
}

std::vector<PrefixIndex::NewBlock> PrefixIndex::Insert(absl::Span<const int32_t> tokens) {
  std::vector<NewBlock> added;
  const int64_t blocks = static_cast<int64_t>(tokens.size()) / block_tokens_;
  int32_t parent = -1;
  for (int64_t b = 0; b < blocks; ++b) {
    const absl::Span<const int32_t> block = tokens.subspan(b * block_tokens_, block_tokens_);
    int32_t id = Find(parent, block);
    if (id < 0) {
      // The parent may be an unreferenced end of a prefix right now: it must not make room for
      // its own child.
      id = Allocate(parent);
      if (id < 0) break;
      Node& n = nodes_[id];
      n.used = true;
      n.parent = parent;
      n.tokens.assign(block.begin(), block.end());
      n.key = BlockKey(parent, block);
      n.last_used = ++clock_;
      by_key_.emplace(n.key, id);
      evictable_.insert({n.last_used, id});
      ++used_;
      if (parent >= 0) {
        Node& p = nodes_[parent];
        if (p.children++ == 0) evictable_.erase({p.last_used, parent});
      }
      added.push_back({b, id});
    } else {
      Touch(id);
    }
    parent = id;
  }
  return added;
}

}  // namespace copyforge
