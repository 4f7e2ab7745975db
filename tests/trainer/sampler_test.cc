#include "trainer/model/sampler.h"

#include <gtest/gtest.h>

#include "tests/trainer/model_test_util.h"
#include "trainer/common/cpu_features.h"

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

// Draws follow softmax(logits / temperature): few candidates (one race over the tokens).
TEST(Sampler, DrawsFollowTheDistribution) {
  for (bool avx512 : {true, false}) {
    const bool previous = SetAvx512KernelsForTesting(avx512);
    auto logits = torch::tensor({0.0f, 1.0f, 2.0f, 3.0f});
    SamplingParams p;
    p.temperature = 2.0;
    p.seed = 5;
    Sampler s(p);
    std::vector<int> counts(4, 0);
    const int n = 20000;
    for (int i = 0; i < n; ++i) ++counts[s.Sample(logits, {})];
    const auto expected = torch::softmax(logits / 2.0, 0);
    for (int t = 0; t < 4; ++t) {
      EXPECT_NEAR(static_cast<double>(counts[t]) / n, expected[t].item<double>(), 0.012) << t;
    }
    SetAvx512KernelsForTesting(previous);
  }
}

// Over a whole vocabulary the draw runs in two levels (a block, then a token in it); the mass of
// each region still decides how often it is drawn.
TEST(Sampler, TwoLevelDrawOverAFullVocabulary) {
  for (bool avx512 : {true, false}) {  // the vectorised exponentials and the portable ones
    const bool previous = SetAvx512KernelsForTesting(avx512);
    const int64_t vocab = 50257;
    auto logits = torch::zeros({vocab});
    logits.narrow(0, 10000, vocab - 10000)
        .fill_(std::log(3.0));            // ids >= 10000 three times as likely
    logits[12345] = std::log(3.0) + 6.0;  // one token with ~3.2% of the mass
    SamplingParams p;
    p.seed = 11;
    Sampler s(p);
    const int n = 5000;
    int low = 0, special = 0;
    std::vector<bool> seen(vocab, false);
    int distinct = 0;
    for (int i = 0; i < n; ++i) {
      const int64_t t = s.Sample(logits, {});
      ASSERT_GE(t, 0);
      ASSERT_LT(t, vocab);
      low += t < 10000;
      special += t == 12345;
      if (!seen[t]) distinct += 1;
      seen[t] = true;
    }
    const auto probs = torch::softmax(logits, 0);
    EXPECT_NEAR(static_cast<double>(low) / n, probs.narrow(0, 0, 10000).sum().item<double>(),
                0.015);
    EXPECT_NEAR(static_cast<double>(special) / n, probs[12345].item<double>(), 0.01);
    EXPECT_GT(distinct, 4000);  // spread over the vocabulary, not a few favourites
    SetAvx512KernelsForTesting(previous);
  }
}

// A row is sampled the same alone or among others, whatever they ask for.
TEST(Sampler, ARowDrawsTheSameAloneOrInABatch) {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({4, 50257}) * 0.1;
  SamplingParams mine;
  mine.temperature = 0.9;
  mine.top_k = 50;
  mine.top_p = 0.95;
  mine.seed = 7;
  SamplingParams other;
  other.seed = 99;
  SamplingParams greedy;
  greedy.temperature = 0;
  Sampler alone(mine), batched(mine), o1(other), o2(greedy), o3(other);
  const std::vector<int32_t> history = {1, 2, 3};
  for (int step = 0; step < 50; ++step) {
    Sampler* one[] = {&alone};
    Sampler* four[] = {&batched, &o1, &o2, &o3};
    const absl::Span<const int32_t> h1[] = {history};
    const absl::Span<const int32_t> h4[] = {history, history, history, history};
    const int64_t a = Sampler::SampleBatch(logits.narrow(0, 0, 1), one, h1)[0];
    const int64_t b = Sampler::SampleBatch(logits, four, h4)[0];
    ASSERT_EQ(a, b) << "step " << step;
  }
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
