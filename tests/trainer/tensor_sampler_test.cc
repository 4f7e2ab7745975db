// The sampler's libtorch-operation path (the one logits on a GPU take), run on the CPU here.
#include <gtest/gtest.h>

#include "trainer/model/sampler.h"

namespace copyforge {
namespace {

std::vector<int64_t> Draw(const torch::Tensor& logits, std::vector<Sampler>& samplers,
                          const std::vector<std::vector<int32_t>>& histories, bool tensor_ops) {
  std::vector<Sampler*> rows;
  std::vector<absl::Span<const int32_t>> spans;
  for (size_t b = 0; b < samplers.size(); ++b) {
    rows.push_back(&samplers[b]);
    spans.push_back(histories[b]);
  }
  return tensor_ops ? Sampler::SampleBatchWithTensorOps(logits, rows, spans)
                    : Sampler::SampleBatch(logits, rows, spans);
}

TEST(TensorSampler, GreedyPenaltyAndTopOneMatchTheCpuKernels) {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({4, 1000});
  std::vector<SamplingParams> params(4);
  params[0].temperature = 0;
  params[1].temperature = 0;
  params[1].repetition_penalty = 3.0;
  params[2].top_k = 1;
  params[3].temperature = 0.7;
  params[3].top_p = 1e-6;  // the nucleus is the single most likely token
  std::vector<std::vector<int32_t>> histories(4);
  const int64_t best = logits[1].argmax().item<int64_t>();
  histories[1] = {static_cast<int32_t>(best), 5, 5, 999};
  for (int step = 0; step < 3; ++step) {
    std::vector<Sampler> cpu, ops;
    for (const auto& p : params) {
      cpu.emplace_back(p);
      ops.emplace_back(p);
    }
    const auto expected = Draw(logits, cpu, histories, false);
    const auto got = Draw(logits, ops, histories, true);
    EXPECT_EQ(got, expected);
    EXPECT_NE(got[1], best);  // the penalty moved the greedy choice
    EXPECT_EQ(got[2], logits[2].argmax().item<int64_t>());
  }
}

// Seeded rows give the same ids whatever else is in the batch; draws follow
// softmax(logits / temperature), and top-k / top-p never leave their candidates.
TEST(TensorSampler, SeededDrawsFollowTheShapedDistribution) {
  const torch::Tensor row = torch::tensor({0.0f, 1.0f, 2.0f, 3.0f, -1.0f, 0.5f});
  SamplingParams plain, top2, nucleus;
  plain.temperature = 2.0;
  top2.top_k = 2;
  nucleus.top_p = 0.6;  // token 3 (~0.57) and token 2 (~0.21) form the nucleus
  std::vector<std::vector<int>> counts(3, std::vector<int>(6, 0));
  const int n = 6000;
  for (int i = 0; i < n; ++i) {
    std::vector<Sampler> samplers;
    for (auto p : {plain, top2, nucleus}) {
      p.seed = static_cast<uint64_t>(i);
      samplers.emplace_back(p);
    }
    const auto ids = Draw(row.repeat({3, 1}), samplers, {{}, {}, {}}, true);
    for (int r = 0; r < 3; ++r) ++counts[r][ids[r]];
    if (i < 20) {  // alone, the same request draws the same token
      SamplingParams alone = plain;
      alone.seed = static_cast<uint64_t>(i);
      std::vector<Sampler> one = {Sampler(alone)};
      EXPECT_EQ(Draw(row.unsqueeze(0), one, {{}}, true)[0], ids[0]);
    }
  }
  const auto expected = torch::softmax(row / 2.0, 0);
  for (int t = 0; t < 6; ++t) {
    EXPECT_NEAR(static_cast<double>(counts[0][t]) / n, expected[t].item<double>(), 0.02) << t;
  }
  EXPECT_EQ(counts[1][2] + counts[1][3], n);
  EXPECT_NEAR(static_cast<double>(counts[1][3]) / n, 1 / (1 + std::exp(-1.0)), 0.02);
  EXPECT_EQ(counts[2][2] + counts[2][3], n);
}

}  // namespace
}  // namespace copyforge
