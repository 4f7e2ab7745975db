// The decode step of a packed GPT-2 on the CPU (every row a decode row) in one parallel region:
// the threads stay together for the whole layer stack and meet at a barrier after each stage
// (a projection, a layer's attention), instead of forking and joining a team for each of the 61
// kernels of a 12-layer step. Within a stage each thread starts on its own contiguous share of
// the work (column groups of the weight, or (row, head) pairs) and then takes what is left of the
// others': a thread that streams more slowly or is preempted no longer holds the rest at the
// barrier. LayerNorms (a few rows) are computed by every thread into its own buffer, and each
// thread prepares a projection's input rows itself (padding, quantizing a few rows costs less
// than another barrier), so they need no barrier. Each value is computed by the same kernel as in
// the layer-by-layer step, so the logits are bit for bit the same whichever threads compute what (a
// test checks).
#ifndef COPYFORGE_TRAINER_MODEL_DECODE_STEP_H_
#define COPYFORGE_TRAINER_MODEL_DECODE_STEP_H_

#include <torch/torch.h>

#include <vector>

#include "trainer/model/packed_linear.h"

namespace copyforge {

struct FusedLayer {
  const PackedWeight *qkv = nullptr, *proj = nullptr, *fc = nullptr, *proj2 = nullptr;
  torch::Tensor qkv_bias, proj_bias, fc_bias, proj2_bias;    // [out] float32 or bfloat16
  torch::Tensor ln1_weight, ln1_bias, ln2_weight, ln2_bias;  // [C] float32 or bfloat16
};

struct FusedDecoder {
  std::vector<FusedLayer> layers;
  torch::Tensor lnf_weight, lnf_bias;
  float eps = 1e-5f;
  const PackedWeight* lm_head = nullptr;  // [C, vocab]
};

// x [B, C]: the rows' embeddings (token + position), float32 or bfloat16; keys[l] / values[l]:
// layer l's slot pools [S, H, capacity, D] in x's dtype; slots / positions [B] as
// SlotDecodeAttention's. Writes each row's keys and values and returns the logits [B, vocab] in
// x's dtype. Runs on at::get_num_threads() threads (one when called inside a parallel region).
torch::Tensor FusedDecodeStep(const FusedDecoder& model, const torch::Tensor& x,
                              std::vector<torch::Tensor>& keys, std::vector<torch::Tensor>& values,
                              const torch::Tensor& slots, const torch::Tensor& positions);

// Whether Gpt2Impl::Step uses FusedDecodeStep for steps of decode rows only: yes unless
// COPYFORGE_FUSED_DECODE=0 was set when the process started.
bool UseFusedDecode();
// Tests and benchmarks compare both paths in one process; returns the previous setting.
bool SetFusedDecodeForTesting(bool enabled);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_DECODE_STEP_H_
