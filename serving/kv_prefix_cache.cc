#include "serving/kv_prefix_cache.h"

#include <algorithm>

namespace copyforge {

KvPrefixCache::KvPrefixCache(const Gpt2Config& config, int64_t tokens, int64_t block_tokens,
                             const torch::TensorOptions& options)
    : index_(block_tokens, tokens / std::max<int64_t>(1, block_tokens)) {
  blocks_ = KvCache::Allocate(config, index_.capacity_blocks(), index_.block_tokens(), options);
}

int64_t KvPrefixCache::Reuse(uint64_t model, const std::vector<int32_t>& prompt, KvCache& pool,
                             int64_t slot) {
  if (model != model_) {
    index_.Clear();
    model_ = model;
  }
  if (index_.capacity_blocks() == 0) return 0;
  // At least the prompt's last token is prefilled: its logits start the generation.
  const std::vector<int32_t> chain = index_.Match(prompt, static_cast<int64_t>(prompt.size()) - 1);
  if (chain.empty()) return 0;
  const int64_t n = static_cast<int64_t>(chain.size()), block = index_.block_tokens();
  torch::Tensor ids;  // the chain's block ids on the pool's device, made once for every layer
  const auto copy_in = [&](const torch::Tensor& from, torch::Tensor& to) {
    // [n, heads, block, dim] -> the slot's first n * block positions [heads, n * block, dim]
    const torch::Tensor picked = from.index_select(0, ids).transpose(0, 1);
    to[slot].narrow(1, 0, n * block).copy_(picked.reshape({to.size(1), n * block, to.size(3)}));
  };
  try {
    ids = torch::tensor(std::vector<int64_t>(chain.begin(), chain.end()), torch::kLong)
              .to(blocks_.keys[0].device());
    for (size_t l = 0; l < pool.keys.size(); ++l) {
      copy_in(blocks_.keys[l], pool.keys[l]);
      copy_in(blocks_.values[l], pool.values[l]);
    }
  } catch (const c10::Error&) {
    return 0;  // the prefill writes every position again
  }
  return n * block;
}

void KvPrefixCache::Store(uint64_t model, const std::vector<int32_t>& prompt, KvCache& pool,
                          int64_t slot) {
  if (model != model_) return;
  const std::vector<PrefixIndex::NewBlock> added = index_.Insert(prompt);
  if (added.empty()) return;
  // New blocks are one run of the prompt's blocks: after the first miss every block is new.
  const int64_t first = added.front().index, n = static_cast<int64_t>(added.size());
  const int64_t block = index_.block_tokens();
  std::vector<int64_t> id_values;
  for (const PrefixIndex::NewBlock& b : added) id_values.push_back(b.id);
  torch::Tensor ids;  // the new blocks' ids on the pool's device, made once for every layer
  const auto copy_out = [&](const torch::Tensor& from, torch::Tensor& to) {
    // the slot's positions [heads, n * block, dim] -> n blocks [n, heads, block, dim]
    const torch::Tensor run = from[slot].narrow(1, first * block, n * block);
    to.index_copy_(0, ids, run.reshape({run.size(0), n, block, run.size(2)}).transpose(0, 1));
  };
  try {
    ids = torch::tensor(id_values, torch::kLong).to(blocks_.keys[0].device());
    for (size_t l = 0; l < pool.keys.size(); ++l) {
      copy_out(pool.keys[l], blocks_.keys[l]);
      copy_out(pool.values[l], blocks_.values[l]);
    }
  } catch (const c10::Error&) {
    index_.Clear();
  }
}

}  // namespace copyforge
