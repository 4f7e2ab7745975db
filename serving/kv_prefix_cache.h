// The prefix cache's keys and values: a pool of blocks (per layer [blocks, heads, block, head
// dim], the KV pool's dtype and device) indexed by PrefixIndex (serving/prefix_cache.h). When a
// request is admitted, the cached blocks that spell the start of its prompt are copied into its
// slot, so its prefill starts after them; when a prompt has gone in, its whole blocks not cached
// yet are copied out of the slot. The decode attention reads each slot's positions in place
// (trainer/model/slot_attention.h), so the cache hands over copies rather than sharing its blocks
// with running sequences: a 200-token prefix of GPT-2 small is 7 MB of bfloat16 copied instead of
// a prefill of 200 tokens. The cache belongs to one model: when requests start on a newly swapped
// model it forgets every block. Engine thread only.
#ifndef COPYFORGE_SERVING_KV_PREFIX_CACHE_H_
#define COPYFORGE_SERVING_KV_PREFIX_CACHE_H_

#include <cstdint>
#include <vector>

#include "serving/prefix_cache.h"
#include "trainer/model/gpt2.h"

namespace copyforge {

class KvPrefixCache {
 public:
  // `tokens` rounded down to whole blocks of `block_tokens`; `options` those of the KV pool.
  KvPrefixCache(const Gpt2Config& config, int64_t tokens, int64_t block_tokens,
                const torch::TensorOptions& options);

  // Copies the cached blocks that start `prompt` (leaving at least its last token to prefill)
  // into `slot` of `pool`; returns how many prompt tokens they hold (0 when a copy fails: the
  // prompt is then prefilled whole). `model` numbers the model the request runs on: another
  // than the cache's forgets every block first.
  int64_t Reuse(uint64_t model, const std::vector<int32_t>& prompt, KvCache& pool, int64_t slot);
  // Caches the whole blocks of `prompt`, whose keys and values fill `slot` of `pool`; a prompt
  // on another model than the cache's is not cached. A copy that fails forgets every block, so
  // the index never names a block whose keys and values did not arrive.
  void Store(uint64_t model, const std::vector<int32_t>& prompt, KvCache& pool, int64_t slot);

  int64_t cached_tokens() const { return index_.cached_blocks() * index_.block_tokens(); }

 private:
  PrefixIndex index_;
  KvCache blocks_;  // keys[l] / values[l]: [capacity_blocks, n_head, block_tokens, head_dim]
  uint64_t model_ = 0;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_KV_PREFIX_CACHE_H_
