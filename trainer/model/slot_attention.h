// Decode-step attention straight over a slot-based KV pool, without gathering the sequences'
// keys and values into a batch first. Each (row, head) reads only its own slot's filled
// positions: the CPU counterpart of the paged-attention kernels that LLM servers run on GPUs.
#ifndef COPYFORGE_TRAINER_MODEL_SLOT_ATTENTION_H_
#define COPYFORGE_TRAINER_MODEL_SLOT_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>

namespace copyforge {

// qkv [B, 3C] (the c_attn output of one new token per row, C = heads x head_dim);
// key_pool / value_pool [S, heads, capacity, head_dim], contiguous, same dtype as qkv (float32 or
// bfloat16); slots / positions [B] int64: row b is the sequence in slot slots[b] and its new
// token sits at positions[b]. Writes row b's key and value at that position, then returns
// [B, C]: each row's attention over its own positions 0 .. positions[b] (scores, softmax and the
// weighted sum in float32; the result in qkv's dtype). CPU tensors only.
torch::Tensor SlotDecodeAttention(const torch::Tensor& qkv, torch::Tensor& key_pool,
                                  torch::Tensor& value_pool, const torch::Tensor& slots,
                                  const torch::Tensor& positions);

// A prompt chunk going into one slot: qkv [T, 3C] are the tokens at positions start .. start +
// T - 1 of slot `slot`. Writes their keys and values, then returns [T, C]: row t's attention over
// positions 0 .. start + t, computed exactly as a decode row at that position would be, so a
// prompt's keys, values and logits do not depend on how it is cut into chunks (or on a prefix
// taken from the prefix cache). CPU tensors only.
torch::Tensor SlotPrefillAttention(const torch::Tensor& qkv, torch::Tensor& key_pool,
                                   torch::Tensor& value_pool, int64_t slot, int64_t start);

// The same with tensor operations on any device: scatters the new keys and values, gathers the
// rows' slots (positions 0 .. max_length - 1, max_length > every position) and masks each row's
// later positions. The baseline of the benchmark and the path for non-CPU tensors.
torch::Tensor SlotDecodeAttentionReference(const torch::Tensor& qkv, torch::Tensor& key_pool,
                                           torch::Tensor& value_pool, const torch::Tensor& slots,
                                           const torch::Tensor& positions, int64_t max_length);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_SLOT_ATTENTION_H_
