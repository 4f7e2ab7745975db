#include "trainer/model/sampler.h"

#include <gtest/gtest.h>

#include "tests/trainer/model_test_util.h"

namespace copyforge {
namespace {

TEST(Sampler, GreedyTopKTopP) {
  auto logits = torch::tensor({0.0f, 3.0f, 1.0f, 2.9f});
  SamplingParams greedy;
  greedy.temperature = 0;
  EXPECT_EQ(Sampler(greedy).Sample(logits, {}), 1);
  SamplingParams top1;
  top1.top_k = 1;
  Sampler s(top1);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.Sample(logits, {}), 1);
  SamplingParams nucleus;
  nucleus.top_p = 0.5;  // token 1 alone holds ~47%, so tokens 1 and 3 form the nucleus
  Sampler n(nucleus);
  for (int i = 0; i < 50; ++i) {
    int64_t t = n.Sample(logits, {});
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampler, RepetitionPenaltyChangesGreedyChoice) {
  auto logits = torch::tensor({0.0f, 3.0f, 2.0f});
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0;
  EXPECT_EQ(Sampler(p).Sample(logits, {1}), 2);
}

TEST(Sampler, ValidateNamesTheParameter) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_NE(p.Validate().message().find("top_p"), std::string_view::npos);
}

TEST(Generate, SeededSamplingIsReproducibleAndStops) {
  Gpt2 model = testing::TinyModel(9);
  GenerateOptions o;
  o.max_new_tokens = 20;
  o.sampling.seed = 42;
  std::vector<int32_t> prompt = {1, 2, 3};
  auto a = GenerateTokens(model, prompt, o);
  auto b = GenerateTokens(model, prompt, o);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->size(), 20u);
  o.stop_token = (*a)[4];
  auto stopped = GenerateTokens(model, prompt, o);
  ASSERT_TRUE(stopped.ok());
  EXPECT_LE(stopped->size(), 5u);
  EXPECT_EQ(stopped->back(), o.stop_token);
  // Greedy generation with the cache equals argmax over full forward passes.
  o.stop_token = -1;
  o.sampling.temperature = 0;
  o.max_new_tokens = 8;
  auto greedy = GenerateTokens(model, prompt, o);
  ASSERT_TRUE(greedy.ok());
  std::vector<int64_t> seq(prompt.begin(), prompt.end());
  torch::NoGradGuard g;
  for (int i = 0; i < 8; ++i) {
    auto logits = model->forward(torch::tensor(seq, torch::kLong).view({1, -1}));
    seq.push_back(logits[0][-1].argmax().item<int64_t>());
    EXPECT_EQ(seq.back(), (*greedy)[i]) << "step " << i;
  }
  // Prompts longer than the context are refused.
  std::vector<int32_t> too_long(65, 1);
  EXPECT_FALSE(GenerateTokens(model, too_long, o).ok());
}

}  // namespace
}  // namespace copyforge
