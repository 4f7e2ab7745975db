// The fused LM head + cross-entropy against the plain matmul + cross_entropy it replaces.
#include "trainer/train/linear_cross_entropy.h"

#include <gtest/gtest.h>

namespace copyforge {
namespace {

struct Result {
  torch::Tensor loss, grad_hidden, grad_weight;
};

Result RunLoss(bool fused, torch::ScalarType compute, int64_t chunk) {
  torch::manual_seed(3);
  torch::Tensor hidden = torch::randn({37, 16}).requires_grad_(true);
  torch::Tensor weight = (torch::randn({101, 16}) * 0.5).requires_grad_(true);
  torch::Tensor targets = torch::randint(101, {37}, torch::kLong);
  targets.index_put_({torch::arange(0, 37, 5)}, -100);  // rows that do not count
  torch::Tensor loss;
  if (fused) {
    loss = LinearCrossEntropySum(hidden, weight, targets, -100, compute, chunk);
  } else {
    namespace F = torch::nn::functional;
    loss = F::cross_entropy(torch::mm(hidden.to(compute), weight.to(compute).t()).to(torch::kFloat),
                            targets,
                            F::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  }
  (loss * 0.5).backward();  // a non-unit upstream gradient
  return {loss.detach(), hidden.grad(), weight.grad()};
}

TEST(LinearCrossEntropy, MatchesPlainCrossEntropyInFloat32) {
  const Result plain = RunLoss(false, torch::kFloat, 0);
  for (int64_t chunk : {1, 8, 37, 1000}) {
    const Result fused = RunLoss(true, torch::kFloat, chunk);
    EXPECT_TRUE(torch::allclose(fused.loss, plain.loss, 1e-5, 1e-5)) << chunk;
    EXPECT_TRUE(torch::allclose(fused.grad_hidden, plain.grad_hidden, 1e-5, 1e-6)) << chunk;
    EXPECT_TRUE(torch::allclose(fused.grad_weight, plain.grad_weight, 1e-5, 1e-6)) << chunk;
  }
  // Ignored rows get no gradient.
  const Result fused = RunLoss(true, torch::kFloat, 8);
  EXPECT_EQ(fused.grad_hidden[0].abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(fused.grad_hidden.dtype(), torch::kFloat);
}

// In bfloat16 both paths round the matmul inputs the same way; they differ only in where the
// float32 softmax is rounded back, so they agree to bfloat16 precision.
TEST(LinearCrossEntropy, MatchesPlainCrossEntropyInBfloat16) {
  const Result plain = RunLoss(false, torch::kBFloat16, 0);
  const Result fused = RunLoss(true, torch::kBFloat16, 8);
  EXPECT_TRUE(torch::allclose(fused.loss, plain.loss, 1e-3, 1e-3));
  EXPECT_TRUE(torch::allclose(fused.grad_hidden, plain.grad_hidden, 2e-2, 2e-3));
  EXPECT_TRUE(torch::allclose(fused.grad_weight, plain.grad_weight, 2e-2, 2e-3));
}

}  // namespace
}  // namespace copyforge
