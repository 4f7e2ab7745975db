// The index of the prefix cache: which prompt prefixes have their keys and values kept, in blocks
// of a fixed number of tokens. A block is known by its tokens and the block before it (a hash of
// both finds it; the tokens and the parent are compared before a match counts, so a hash
// collision can never hand one prompt another prompt's cache). A block is referenced by each
// block cached after it; only unreferenced blocks (the ends of cached prefixes) are evicted,
// least recently used first, when a new block needs room under the token budget. The engine keeps
// the blocks' keys and values in a pool indexed by block id (serving/engine.cc). Torch-free; not
// thread-safe (the engine thread owns it).
#ifndef COPYFORGE_SERVING_PREFIX_CACHE_H_
#define COPYFORGE_SERVING_PREFIX_CACHE_H_

#include <cstdint>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace copyforge {

class PrefixIndex {
 public:
  // Holds up to `capacity_blocks` blocks of `block_tokens` tokens (both >= 1).
  PrefixIndex(int64_t block_tokens, int64_t capacity_blocks);

  // The ids of the cached blocks that spell the longest prefix of `tokens` in whole blocks, at
  // most `max_tokens` tokens long; they become the most recently used.
  std::vector<int32_t> Match(absl::Span<const int32_t> tokens, int64_t max_tokens);

  struct NewBlock {
    int64_t index = 0;  // the block's place in `tokens`: tokens [index * block, (index+1) * block)
    int32_t id = 0;     // where its keys and values go
  };
  // Caches the whole blocks of `tokens` that are not cached yet, evicting unreferenced blocks
  // least recently used first; stops at the first block it cannot place (every block is then
  // referenced). The caller copies each new block's keys and values to its id.
  std::vector<NewBlock> Insert(absl::Span<const int32_t> tokens);

  // Forgets every block (the model changed).
  void Clear();

  int64_t block_tokens() const { return block_tokens_; }
  int64_t capacity_blocks() const { return static_cast<int64_t>(nodes_.size()); }
  int64_t cached_blocks() const { return used_; }
  int64_t evictions() const { return evictions_; }

 private:
  struct Node {
    bool used = false;
    int32_t parent = -1;
    uint64_t key = 0;
    std::vector<int32_t> tokens;
    int64_t children = 0;  // references from blocks cached after this one
    uint64_t last_used = 0;
  };

  int32_t Find(int32_t parent, absl::Span<const int32_t> block) const;
  int32_t Allocate(int32_t keep);  // -1: nothing can be evicted (`keep` never is)
  void Touch(int32_t id);
  void Unlink(int32_t id);

  int64_t block_tokens_;
  std::vector<Node> nodes_;
  std::vector<int32_t> free_;
  std::unordered_multimap<uint64_t, int32_t> by_key_;
  std::set<std::pair<uint64_t, int32_t>> evictable_;  // (last_used, id) of unreferenced blocks
  uint64_t clock_ = 0;
  int64_t used_ = 0, evictions_ = 0;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_PREFIX_CACHE_H_
