#include "trainer/model/gpt2.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/trainer/model_test_util.h"

namespace copyforge {
namespace {

using testing::RandomIds;
using testing::TinyConfig;
using testing::TinyModel;

TEST(Gpt2, LogitsShapeAndParameterCount) {
  Gpt2 model = TinyModel();
  auto logits = model->forward(RandomIds(3, 10, 101, 1));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 10, 101}));
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  EXPECT_EQ(n, TinyConfig().NumParameters());
  EXPECT_EQ(model->NamedTensors().front().first, "wte.weight");
}

TEST(Gpt2, ConfigPredictsEveryTensor) {
  Gpt2 model = TinyModel();
  auto shapes = TinyConfig().TensorShapes();
  auto tensors = model->NamedTensors();
  ASSERT_EQ(shapes.size(), tensors.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(shapes[i].first, tensors[i].first);
    EXPECT_EQ(shapes[i].second, tensors[i].second.sizes().vec()) << shapes[i].first;
  }
}

TEST(Gpt2, HeadIsTiedToTokenEmbedding) {
  Gpt2 model = TinyModel();
  torch::NoGradGuard g;
  auto hidden = model->Hidden(RandomIds(1, 4, 101, 2));
  auto logits = model->forward(RandomIds(1, 4, 101, 2));
  EXPECT_TRUE(torch::allclose(logits, torch::matmul(hidden, model->wte->weight.t()), 1e-5, 1e-6));
}

TEST(Gpt2, CausalMaskingLaterTokensNeverChangeEarlierLogits) {
  Gpt2 model = TinyModel();
  torch::NoGradGuard g;
  auto ids = RandomIds(2, 16, 101, 3);
  auto base = model->forward(ids);
  for (int64_t t : {1, 7, 15}) {
    auto changed = ids.clone();
    changed.index_put_({torch::indexing::Slice(), t},
                       (ids.index({torch::indexing::Slice(), t}) + 1) % 101);
    auto out = model->forward(changed);
    EXPECT_TRUE(torch::equal(out.narrow(1, 0, t), base.narrow(1, 0, t))) << "position " << t;
    EXPECT_FALSE(torch::allclose(out.narrow(1, t, 1), base.narrow(1, t, 1)));
  }
}

// Tolerance: incremental decoding computes the same dot products over shorter key ranges, so only
// float32 summation order differs; 1e-5 absolute on logits of magnitude ~1 covers it.
TEST(Gpt2, KvCacheMatchesFullForward) {
  Gpt2 model = TinyModel(5);
  torch::NoGradGuard g;
  auto ids = RandomIds(2, 24, 101, 4);
  auto full = model->forward(ids);
  KvCache cache = KvCache::Allocate(model->config(), 2, 24, torch::kFloat);
  // Prefill 10 tokens at once, then one token at a time.
  auto prefill = model->forward(ids.narrow(1, 0, 10), &cache);
  EXPECT_TRUE(torch::allclose(prefill, full.narrow(1, 0, 10), 1e-4, 1e-5));
  for (int64_t t = 10; t < 24; ++t) {
    auto step = model->forward(ids.narrow(1, t, 1), &cache);
    ASSERT_TRUE(torch::allclose(step, full.narrow(1, t, 1), 1e-4, 1e-5)) << "position " << t;
  }
  EXPECT_EQ(cache.length, 24);
}

TEST(Gpt2, GradientsReachEveryParameter) {
  Gpt2 model = TinyModel();
  model->train();
  auto ids = RandomIds(2, 12, 101, 6);
  auto loss = Gpt2Impl::Loss(model->forward(ids.narrow(1, 0, 11)), ids.narrow(1, 1, 11));
  loss.backward();
  for (const auto& [name, p] : model->NamedTensors()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << name;
  }
}

TEST(Gpt2, LossIgnoresMaskedTargets) {
  auto logits = torch::randn({1, 3, 5});
  auto targets = torch::tensor({1, -100, 2}, torch::kLong).view({1, 3});
  auto both = Gpt2Impl::Loss(logits, targets);
  auto first = Gpt2Impl::Loss(logits.narrow(1, 0, 1), targets.narrow(1, 0, 1));
  auto last = Gpt2Impl::Loss(logits.narrow(1, 2, 1), targets.narrow(1, 2, 1));
  EXPECT_NEAR(both.item<double>(), (first.item<double>() + last.item<double>()) / 2, 1e-6);
}

TEST(Gpt2, TinyModelOverfitsOneBatch) {
  torch::manual_seed(0);
  Gpt2 model = TinyModel(7);
  model->train();
  auto ids = RandomIds(4, 17, 101, 8);
  auto x = ids.narrow(1, 0, 16), y = ids.narrow(1, 1, 16);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-3).weight_decay(0.0));
  double first = 0, last = 0;
  for (int step = 0; step < 250; ++step) {
    opt.zero_grad();
    auto loss = Gpt2Impl::Loss(model->forward(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  EXPECT_NEAR(first, std::log(101.0), 0.3);  // an untrained model is near uniform
  EXPECT_LT(last, 0.1);
}

TEST(Gpt2, InitIsSeededAndScaled) {
  Gpt2Config c = TinyConfig();
  c.n_embd = 256;
  c.n_layer = 8;
  Gpt2 a(c), b(c), other(c);
  a->InitWeights(11);
  b->InitWeights(11);
  other->InitWeights(12);
  for (size_t i = 0; i < a->NamedTensors().size(); ++i) {
    EXPECT_TRUE(torch::equal(a->NamedTensors()[i].second, b->NamedTensors()[i].second));
  }
  EXPECT_FALSE(torch::equal(a->wte->weight, other->wte->weight));
  EXPECT_NEAR(a->wte->weight.std().item<double>(), 0.02, 0.001);
  auto blocks = a->NamedTensors();
  for (const auto& [name, t] : blocks) {
    if (name == "h.0.attn.c_proj.weight") {
      EXPECT_NEAR(t.std().item<double>(), 0.02 / std::sqrt(16.0), 0.0005);
    } else if (name == "h.0.attn.c_attn.weight") {
      EXPECT_NEAR(t.std().item<double>(), 0.02, 0.001);
    } else if (name == "h.0.ln_1.weight") {
      EXPECT_TRUE(torch::equal(t, torch::ones_like(t)));
    } else if (name == "h.0.mlp.c_fc.bias") {
      EXPECT_TRUE(torch::equal(t, torch::zeros_like(t)));
    }
  }
}

}  // namespace
}  // namespace copyforge
