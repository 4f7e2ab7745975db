// The green-list watermark without a model: the green fraction is gamma, the bias lands on
// exactly the green tokens, text sampled with the bias is detected and text without it is not.
#include "serving/watermark.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/test_util.h"

namespace copyforge {
namespace {

constexpr int64_t kVocab = 50257;

WatermarkConfig Config() {
  WatermarkConfig c;
  c.key = *KeyFromSecret("test secret");
  return c;
}

TEST(Watermark, GreenListsHoldGammaOfTheVocabularyAndDependOnKeyAndPredecessor) {
  const WatermarkConfig c = Config();
  for (int32_t previous : {0, 17, 50256}) {
    int64_t green = 0;
    for (int32_t t = 0; t < kVocab; ++t) green += IsGreen(c.key, c.gamma, previous, t);
    EXPECT_NEAR(static_cast<double>(green) / kVocab, c.gamma, 0.01);
  }
  int64_t same_other_key = 0, same_other_previous = 0;
  const uint64_t other = *KeyFromSecret("another secret");
  for (int32_t t = 0; t < kVocab; ++t) {
    same_other_key += IsGreen(c.key, c.gamma, 5, t) == IsGreen(other, c.gamma, 5, t);
    same_other_previous += IsGreen(c.key, c.gamma, 5, t) == IsGreen(c.key, c.gamma, 6, t);
  }
  // Independent lists agree on gamma^2 + (1-gamma)^2 = 62.5% of tokens, not all.
  EXPECT_LT(same_other_key, kVocab * 0.7);
  EXPECT_LT(same_other_previous, kVocab * 0.7);
  EXPECT_FALSE(KeyFromSecret("").ok());
  testing::TempDir tmp;
  testing::WriteTestFile(tmp.File("empty.key"), "");
  auto empty = KeyFromFile(tmp.File("empty.key"));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty.key"), std::string::npos);
}

TEST(Watermark, TheBiasLandsOnExactlyTheGreenTokens) {
  const WatermarkConfig c = Config();
  std::vector<float> logits(kVocab, 1.0f);
  WatermarkProcessor p(c, 42);
  ASSERT_TRUE(p.Process(logits.data(), kVocab).ok());
  for (int32_t t = 0; t < kVocab; ++t) {
    ASSERT_EQ(logits[t], IsGreen(c.key, c.gamma, 42, t) ? 1.0f + 2.0f : 1.0f) << t;
  }
  ASSERT_TRUE(p.Accept(7).ok());
  std::vector<float> next(kVocab, 0.0f);
  ASSERT_TRUE(p.Process(next.data(), kVocab).ok());
  for (int32_t t = 0; t < 1000; ++t) EXPECT_EQ(next[t] > 0, IsGreen(c.key, c.gamma, 7, t));
}

// Sampling from a flat-ish distribution with and without the bias: watermarked text scores far
// above the threshold, plain text (and watermarked text checked with another key) does not.
TEST(Watermark, DetectsWatermarkedTextAndNotPlainText) {
  const WatermarkConfig c = Config();
  WatermarkConfig wrong = c;
  wrong.key = *KeyFromSecret("not the key");
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0, 1.5f);
  auto sample = [&](bool mark, int n) {
    std::vector<int32_t> ids = {1};
    WatermarkProcessor p(c, ids.back());
    std::vector<float> logits(kVocab);
    for (int i = 0; i < n; ++i) {
      for (auto& x : logits) x = noise(rng);
      if (mark) {
        EXPECT_TRUE(p.Process(logits.data(), kVocab).ok());
      }
      std::uniform_real_distribution<double> u(1e-12, 1.0);
      int32_t best = 0;
      double top = -1e300;
      for (int64_t t = 0; t < kVocab; ++t) {
        const double g = logits[t] - std::log(-std::log(u(rng)));
        if (g > top) top = g, best = static_cast<int32_t>(t);
      }
      EXPECT_TRUE(p.Accept(best).ok());
      ids.push_back(best);
    }
    return ids;
  };
  for (int trial = 0; trial < 5; ++trial) {
    const auto marked = sample(true, 200);
    const WatermarkDetection d = DetectWatermark(c, marked);
    EXPECT_TRUE(d.watermarked) << d.z;
    EXPECT_GT(d.z, 8);
    EXPECT_LT(d.p_value, 1e-6);
    EXPECT_FALSE(DetectWatermark(wrong, marked).watermarked);
    const WatermarkDetection plain = DetectWatermark(c, sample(false, 200));
    EXPECT_FALSE(plain.watermarked) << plain.z;
    EXPECT_LT(std::fabs(plain.z), 4);
  }
  // Repeated (previous, token) pairs count once; the skipped id neither counts nor links.
  const WatermarkDetection repeated = DetectWatermark(c, {3, 4, 3, 4, 3, 4, 50256, 9}, 50256);
  EXPECT_EQ(repeated.scored, 3);  // (3,4), (4,3), (4,9)
  EXPECT_EQ(DetectWatermark(c, {5}).scored, 0);
}

}  // namespace
}  // namespace copyforge
