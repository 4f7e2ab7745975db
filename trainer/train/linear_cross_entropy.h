// The LM head and its cross-entropy in one autograd node. The [tokens, vocab] logits are never
// materialised in float32 as a whole: rows go through in chunks (matmul, log-sum-exp, softmax
// gradient) while they are still in cache, and both gradients are formed during the forward pass,
// so backward is a scale. Over a 50k vocabulary this is the largest elementwise cost of a training
// step; the matmuls are the same as the plain path's.
#ifndef COPYFORGE_TRAINER_TRAIN_LINEAR_CROSS_ENTROPY_H_
#define COPYFORGE_TRAINER_TRAIN_LINEAR_CROSS_ENTROPY_H_

#include <torch/torch.h>

namespace copyforge {

// Sum over rows n with targets[n] != ignore_index of
//   logsumexp(hidden[n] @ weight^T) - (hidden[n] @ weight^T)[targets[n]].
// hidden [N, C], weight [V, C] (float32 parameters), targets [N] int64. The matmuls run in
// `compute` (bfloat16 under autocast, float32 otherwise); log-sum-exp and the softmax are float32.
torch::Tensor LinearCrossEntropySum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets, int64_t ignore_index,
                                    torch::ScalarType compute, int64_t chunk_rows = 128);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_LINEAR_CROSS_ENTROPY_H_
