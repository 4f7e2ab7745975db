#include "trainer/model/gpt2.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/trainer/model_test_util.h"
#include "trainer/common/cpu_features.h"
#include "trainer/model/slot_attention.h"

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

// Sequences of different lengths in scattered pool slots, decoded together one token at a
// time, give the logits of a full forward pass of each sequence alone; stale keys left in a
// slot by a longer earlier sequence are never read.
TEST(Gpt2, SlotDecodeMatchesFullForward) {
  Gpt2 model = TinyModel(6);
  torch::NoGradGuard g;
  const int64_t rows = 3, steps = 12;
  const std::vector<int64_t> slots = {4, 0, 2}, starts = {5, 1, 9};
  auto ids = RandomIds(rows, 9 + steps, 101, 8);
  KvCache pool = KvCache::Allocate(model->config(), 5, 64, torch::kFloat);
  for (auto& k : pool.keys) k.normal_();  // stale data everywhere
  for (auto& v : pool.values) v.normal_();
  // Prefill each row's prompt into its slot.
  for (int64_t b = 0; b < rows; ++b) {
    KvCache view;
    view.capacity = pool.capacity;
    for (size_t l = 0; l < pool.keys.size(); ++l) {
      view.keys.push_back(pool.keys[l].narrow(0, slots[b], 1));
      view.values.push_back(pool.values[l].narrow(0, slots[b], 1));
    }
    model->forward(ids.narrow(0, b, 1).narrow(1, 0, starts[b]), &view);
  }
  for (int64_t t = 0; t < steps; ++t) {
    SlotBatch batch;
    std::vector<int64_t> tokens, positions;
    for (int64_t b = 0; b < rows; ++b) {
      positions.push_back(starts[b] + t);
      tokens.push_back(ids[b][starts[b] + t].item<int64_t>());
      batch.max_length = std::max(batch.max_length, starts[b] + t + 1);
    }
    batch.slots = torch::tensor(slots, torch::kLong);
    batch.positions = torch::tensor(positions, torch::kLong);
    auto logits = model->DecodeSlots(torch::tensor(tokens, torch::kLong), batch, &pool);
    for (int64_t b = 0; b < rows; ++b) {
      auto full = model->forward(ids.narrow(0, b, 1).narrow(1, 0, starts[b] + t + 1));
      ASSERT_TRUE(torch::allclose(logits[b], full[0][-1], 1e-4, 1e-5))
          << "row " << b << " step " << t;
    }
  }
}

// One step can carry decode rows and a chunk of another sequence's prompt together: the decode
// rows' logits and the prompt's last-token logits equal full forward passes, and a lone row
// (run as two) gives the same logits as in a batch.
TEST(Gpt2, StepMixesDecodeRowsAndAPrefillChunk) {
  Gpt2 model = TinyModel(7);
  torch::NoGradGuard g;
  auto ids = RandomIds(2, 20, 101, 9);
  KvCache pool = KvCache::Allocate(model->config(), 3, 64, torch::kFloat);
  // Row 0 decodes in slot 2 from position 6; row 1's 11-token prompt goes into slot 0 in chunks of
  // 4, 4 and 3 alongside it.
  PrefillChunk first;
  first.slot = 2;
  first.tokens = ids[0].narrow(0, 0, 6);
  first.logits = true;
  model->Step(torch::Tensor(), SlotBatch{}, first, &pool);
  int64_t done = 0;
  for (int64_t t = 0; t < 3; ++t) {
    SlotBatch batch;
    batch.slots = torch::tensor(std::vector<int64_t>{2});
    batch.positions = torch::tensor(std::vector<int64_t>{6 + t});
    batch.max_length = 7 + t;
    PrefillChunk chunk;
    chunk.slot = 0;
    chunk.start = done;
    chunk.tokens = ids[1].narrow(0, done, t < 2 ? 4 : 3);
    chunk.logits = t == 2;
    auto logits = model->Step(ids[0].narrow(0, 6 + t, 1), batch, chunk, &pool);
    done += chunk.tokens.numel();
    ASSERT_EQ(logits.size(0), t == 2 ? 2 : 1);
    auto full = model->forward(ids.narrow(0, 0, 1).narrow(1, 0, 7 + t));
    EXPECT_TRUE(torch::allclose(logits[0], full[0][-1], 1e-4, 1e-5)) << "decode step " << t;
    if (t == 2) {
      auto prompt = model->forward(ids.narrow(0, 1, 1).narrow(1, 0, 11));
      EXPECT_TRUE(torch::allclose(logits[1], prompt[0][-1], 1e-4, 1e-5));
    }
  }
  // The same decode row alone and next to another row: bit for bit the same logits.
  auto decode = [&](std::vector<int64_t> slots, std::vector<int64_t> positions) {
    SlotBatch batch;
    batch.slots = torch::tensor(slots);
    batch.positions = torch::tensor(positions);
    batch.max_length = 12;
    std::vector<int64_t> tokens(slots.size(), 5);
    return model->DecodeSlots(torch::tensor(tokens), batch, &pool)[0];
  };
  EXPECT_TRUE(torch::equal(decode({2}, {9}), decode({2, 0}, {9, 11})));
}

// A prompt's keys, values and last logits are the same bit for bit however it is cut into
// chunks (the prefix cache resumes a prompt after its cached blocks), and match the full forward.
// 64 wide: libtorch runs bfloat16 products of fewer than 4096 multiply-adds (the tiny model's
// 32 x 32 projections of a one- to four-row chunk) on another kernel, which rounds differently.
TEST(Gpt2, PrefillIsTheSameBitForBitWhateverTheChunks) {
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    Gpt2Config config = TinyConfig();
    config.n_embd = 64;
    Gpt2 model(config);
    model->InitWeights(5);
    model->eval();
    model->to(dtype);
    torch::NoGradGuard g;
    auto ids = RandomIds(1, 23, 101, 4)[0];
    auto prefill = [&](std::vector<int64_t> cuts) {
      KvCache pool = KvCache::Allocate(model->config(), 2, 32, dtype);
      torch::Tensor logits;
      int64_t start = 0;
      for (int64_t end : cuts) {
        PrefillChunk chunk;
        chunk.slot = 1;
        chunk.start = start;
        chunk.tokens = ids.narrow(0, start, end - start);
        chunk.logits = end == 23;
        logits = model->Step(torch::Tensor(), SlotBatch{}, chunk, &pool);
        start = end;
      }
      return std::make_pair(logits, pool);
    };
    const auto [whole, pool] = prefill({23});
    for (const auto& cuts : std::vector<std::vector<int64_t>>{{16, 23}, {1, 8, 22, 23}, {5, 23}}) {
      const auto [logits, other] = prefill(cuts);
      EXPECT_TRUE(torch::equal(logits, whole)) << dtype << " cut at " << cuts[0];
      for (size_t l = 0; l < pool.keys.size(); ++l) {
        EXPECT_TRUE(
            torch::equal(other.keys[l][1].narrow(1, 0, 23), pool.keys[l][1].narrow(1, 0, 23)));
        EXPECT_TRUE(
            torch::equal(other.values[l][1].narrow(1, 0, 23), pool.values[l][1].narrow(1, 0, 23)));
      }
    }
    auto full = model->forward(ids.unsqueeze(0))[0][-1].to(torch::kFloat);
    const double tol = dtype == torch::kFloat ? 1e-4 : 5e-2;
    EXPECT_TRUE(torch::allclose(whole[0].to(torch::kFloat), full, tol, tol)) << dtype;
  }
}

// The in-place slot attention equals gathering each row's keys and values and running softmax
// attention on them (float32 exactly up to summation order; bfloat16 to its precision).
TEST(Gpt2, SlotDecodeAttentionMatchesReference) {
  for (bool avx512 :
       {true, false}) {  // the AVX-512 kernel (where the CPU has it) and the portable one
    const bool previous = SetAvx512KernelsForTesting(avx512);
    // head_dim 20: the portable kernel (not a multiple of 16); 32: the AVX-512 one. Positions 33
    // and 0: two blocks of 16 scores and a tail, and a single score.
    for (const int64_t D : {20, 32}) {
      for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
        torch::manual_seed(2);
        const int64_t S = 4, H = 3, cap = 40, C = H * D;
        auto keys = torch::randn({S, H, cap, D}).to(dtype);
        auto values = torch::randn({S, H, cap, D}).to(dtype);
        auto qkv = torch::randn({2, 3 * C}).to(dtype);
        auto slots = torch::tensor(std::vector<int64_t>{3, 1});
        auto positions = torch::tensor(std::vector<int64_t>{33, 0});
        auto k2 = keys.clone(), v2 = values.clone();
        auto out = SlotDecodeAttention(qkv, k2, v2, slots, positions);
        for (int64_t b = 0; b < 2; ++b) {
          const int64_t s = slots[b].item<int64_t>(), p = positions[b].item<int64_t>();
          auto q = qkv[b].narrow(0, 0, C).view({H, 1, D}).to(torch::kFloat);
          auto k_new = qkv[b].narrow(0, C, C).view({H, D});
          auto v_new = qkv[b].narrow(0, 2 * C, C).view({H, D});
          // The new key and value were written at the row's position.
          EXPECT_TRUE(torch::equal(k2[s].select(1, p), k_new));
          EXPECT_TRUE(torch::equal(v2[s].select(1, p), v_new));
          auto k = k2[s].narrow(1, 0, p + 1).to(torch::kFloat);
          auto v = v2[s].narrow(1, 0, p + 1).to(torch::kFloat);
          auto att = torch::softmax(torch::matmul(q, k.transpose(1, 2)) / std::sqrt(double(D)), -1);
          auto expected = torch::matmul(att, v).view({C});
          const double tol = dtype == torch::kFloat ? 1e-5 : 1e-2;
          EXPECT_TRUE(torch::allclose(out[b].to(torch::kFloat), expected, tol, tol))
              << "row " << b << " dtype " << dtype;
        }
        // Other slots are untouched.
        EXPECT_TRUE(torch::equal(k2[0], keys[0]));
        EXPECT_TRUE(torch::equal(v2[2], values[2]));
        // The tensor-operation version agrees.
        auto k3 = keys.clone(), v3 = values.clone();
        auto reference = SlotDecodeAttentionReference(qkv, k3, v3, slots, positions, 34);
        const double tol = dtype == torch::kFloat ? 1e-5 : 2e-2;
        EXPECT_TRUE(torch::allclose(out.to(torch::kFloat), reference.to(torch::kFloat), tol, tol));
        // A NaN among a head's keys makes that head's output NaN (it is not hidden), and only its.
        auto k4 = keys.clone(), v4 = values.clone();
        k4[3][1][5][0] = std::numeric_limits<float>::quiet_NaN();
        auto poisoned = SlotDecodeAttention(qkv, k4, v4, slots, positions).to(torch::kFloat);
        EXPECT_TRUE(torch::isnan(poisoned[0].narrow(0, D, D)).all().item<bool>());
        EXPECT_FALSE(torch::isnan(poisoned[0].narrow(0, 0, D)).any().item<bool>());
        EXPECT_FALSE(torch::isnan(poisoned[1]).any().item<bool>());
      }
    }
    SetAvx512KernelsForTesting(previous);
  }
  // Bad arguments are refused with the reason.
  auto pool = torch::zeros({2, 1, 8, 4});
  auto pool2 = pool.clone();
  auto qkv = torch::zeros({2, 12});
  EXPECT_THROW(SlotDecodeAttention(qkv, pool, pool2, torch::tensor(std::vector<int64_t>{1, 1}),
                                   torch::tensor(std::vector<int64_t>{0, 1})),
               c10::Error);  // one slot for two rows
  EXPECT_THROW(SlotDecodeAttention(qkv, pool, pool2, torch::tensor(std::vector<int64_t>{0, 1}),
                                   torch::tensor(std::vector<int64_t>{0, 8})),
               c10::Error);  // beyond the capacity
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
