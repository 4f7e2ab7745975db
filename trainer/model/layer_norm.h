// LayerNorm of a serving step's rows in one float32 pass per row. ATen's bfloat16 LayerNorm
// costs about 7 us a call for one GPT-2 row (dispatch, conversions, its own parallel region),
// 25 calls a step; this costs under one. Decode rows of a packed model use it (Gpt2Impl::Step).
#ifndef COPYFORGE_TRAINER_MODEL_LAYER_NORM_H_
#define COPYFORGE_TRAINER_MODEL_LAYER_NORM_H_

#include <torch/torch.h>

namespace copyforge {

// x [..., C] float32 or bfloat16 on the CPU; weight and bias [C] float32 or bfloat16. Returns
// (x - mean) / sqrt(var + eps) * weight + bias over the last dimension (biased variance, as
// torch's LayerNorm), computed in float32 and stored in x's dtype.
torch::Tensor RowLayerNorm(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& bias, double eps);

// The same on raw rows (rows x C contiguous, on the calling thread): T, W float or
// c10::BFloat16 (the fused decode step, trainer/model/decode_step.h).
template <typename T, typename W>
void LayerNormRows(const T* x, int64_t rows, int64_t C, const W* weight, const W* bias, float eps,
                   T* y);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_LAYER_NORM_H_
