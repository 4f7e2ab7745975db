// The fused decode step (one parallel region for the whole layer stack, work handed out among
// the threads) gives bit for bit the logits and KV caches of the layer-by-layer step, for every
// packed dtype, both kernel families, widths that need padding and odd thread counts.
#include "trainer/model/decode_step.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/trainer/model_test_util.h"
#include "trainer/common/cpu_features.h"
#include "trainer/model/gpt2.h"

namespace copyforge {
namespace {

// Restores a process-wide setting when a test ends.
struct Restore {
  bool (*set)(bool);
  bool previous;
  ~Restore() { set(previous); }
};

struct Case {
  std::string name;
  int64_t width;            // n_embd (3 heads when odd, else 2)
  bool int8;                // else bfloat16 packing
  torch::ScalarType dtype;  // the activations
};

Gpt2 PackedModel(const Case& c) {
  Gpt2Config config = testing::TinyConfig();
  config.n_embd = c.width;
  config.n_head = c.width % 2 == 1 ? 3 : 2;
  Gpt2 model(config);
  model->InitWeights(5);
  model->eval();
  if (c.int8) {
    model->PackInt8();
    model->to(c.dtype);
  } else {
    model->to(c.dtype);
    model->PackBf16();
  }
  return model;
}

// Three sequences prefilled to different lengths, then three decode steps of all three; returns
// the steps' logits side by side and leaves the caches in `pool`.
torch::Tensor Decode(Gpt2& model, KvCache& pool) {
  torch::NoGradGuard no_grad;
  const int64_t lengths[] = {5, 9, 2};
  for (int64_t s = 0; s < 3; ++s) {
    PrefillChunk chunk;
    chunk.slot = s;
    chunk.tokens = testing::RandomIds(1, lengths[s], 101, 10 + s)[0];
    model->Step(torch::Tensor(), SlotBatch{}, chunk, &pool);
  }
  std::vector<torch::Tensor> logits;
  for (int64_t step = 0; step < 3; ++step) {
    SlotBatch batch;
    batch.slots = torch::tensor(std::vector<int64_t>{2, 0, 1});
    batch.positions = torch::tensor(std::vector<int64_t>{2 + step, 5 + step, 9 + step});
    batch.max_length = 12 + step;
    const torch::Tensor tokens = testing::RandomIds(1, 3, 101, 20 + step)[0];
    logits.push_back(model->DecodeSlots(tokens, batch, &pool));
  }
  return torch::cat(logits);
}

TEST(FusedDecodeStep, EqualsTheLayerByLayerStepBitForBit) {
  const Restore fused{&SetFusedDecodeForTesting, UseFusedDecode()};
  const Restore avx512{&SetAvx512KernelsForTesting, UseAvx512Kernels()};
  const int threads = at::get_num_threads();
  const std::vector<Case> cases = {
      {"int8, float32 rows", 64, true, torch::kFloat},
      {"int8, bfloat16 rows, padded width", 38, true, torch::kBFloat16},
      {"bfloat16", 64, false, torch::kBFloat16},
      {"bfloat16, padded width", 39, false, torch::kBFloat16},
  };
  for (const Case& c : cases) {
    for (bool vector_kernels : {true, false}) {
      SetAvx512KernelsForTesting(vector_kernels);
      Gpt2 model = PackedModel(c);
      const Gpt2Config& config = model->config();
      SetFusedDecodeForTesting(false);
      at::set_num_threads(2);
      KvCache want_pool = KvCache::Allocate(config, 4, 16, c.dtype);
      const torch::Tensor want = Decode(model, want_pool);
      SetFusedDecodeForTesting(true);
      for (int t : {1, 2, 3}) {
        SCOPED_TRACE(c.name + (vector_kernels ? ", AVX-512" : ", portable") + ", " +
                     std::to_string(t) + " threads");
        at::set_num_threads(t);
        KvCache pool = KvCache::Allocate(config, 4, 16, c.dtype);
        const torch::Tensor got = Decode(model, pool);
        EXPECT_EQ(got.scalar_type(), c.dtype);
        EXPECT_TRUE(torch::equal(got, want));
        for (size_t l = 0; l < pool.keys.size(); ++l) {
          EXPECT_TRUE(torch::equal(pool.keys[l], want_pool.keys[l]));
          EXPECT_TRUE(torch::equal(pool.values[l], want_pool.values[l]));
        }
      }
    }
  }
  at::set_num_threads(threads);
}

TEST(FusedDecodeStep, RefusesRowsThatShareASlotBeforeWritingAnything) {
  const Restore fused{&SetFusedDecodeForTesting, SetFusedDecodeForTesting(true)};
  Gpt2 model = PackedModel({"bfloat16", 64, false, torch::kBFloat16});
  KvCache pool = KvCache::Allocate(model->config(), 2, 16, torch::kBFloat16);
  const torch::Tensor before = pool.keys[0].clone();
  SlotBatch batch;
  batch.slots = torch::tensor(std::vector<int64_t>{1, 1});
  batch.positions = torch::tensor(std::vector<int64_t>{0, 1});
  batch.max_length = 2;
  torch::NoGradGuard no_grad;
  try {
    model->DecodeSlots(torch::tensor(std::vector<int64_t>{3, 4}), batch, &pool);
    FAIL() << "a slot used by two rows was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("used by two rows"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(torch::equal(pool.keys[0], before));
}

}  // namespace
}  // namespace copyforge
