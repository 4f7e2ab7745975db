// Decode-step attention straight over a slot-based KV pool, without gathering the sequences'
// keys and values into a batch first. Each (row, head) reads only its own slot's filled
// positions: the CPU counterpart of the paged-attention kernels that LLM servers run on GPUs.
#ifndef COPYFORGE_TRAINER_MODEL_SLOT_ATTENTION_H_
#define COPYFORGE_TRAINER_MODEL_SLOT_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

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

// SlotDecodeAttention's work for callers that split it among threads themselves (the fused
// decode step, trainer/model/decode_step.h): task b x H + h is row b's head h (its key and value
// written when `write`, then its attention), run by any thread in any order, each bit for bit as
// SlotDecodeAttention computes it. The pointers are the tensors' of SlotDecodeAttention,
// contiguous, T float or c10::BFloat16; rows checked with CheckSlotDecodeRows.
template <typename T>
struct SlotDecodeTasks {
  const T* qkv = nullptr;  // [B, 3C]
  T* keys = nullptr;       // [S, H, capacity, D]
  T* values = nullptr;
  const int64_t* slots = nullptr;  // [B]
  const int64_t* positions = nullptr;
  T* y = nullptr;  // [B, C]
  // Each row first writes its own key and value at its position (decode: every row has its own
  // slot); false when the caller has written them (a prompt chunk: its rows share one slot).
  bool write = true;
  int64_t B = 0, H = 0, capacity = 0, D = 0;

  int64_t count() const { return B * H; }
  // Tasks [begin, end); `scratch` is the caller's (one per thread), grown as needed.
  void Run(int64_t begin, int64_t end, std::vector<float>& scratch) const;
};

// Fails unless every row's slot is in `key_pool`'s [S, H, capacity, D] and its own, and every
// position below the capacity.
void CheckSlotDecodeRows(int64_t B, const int64_t* slots, const int64_t* positions,
                         const torch::Tensor& key_pool);

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
