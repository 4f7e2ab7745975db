// Checkpoints interoperate with Hugging Face's GPT-2 layout: a directory in save_pretrained's
// layout loads here, ours loads in an independent PyTorch GPT-2, and both give the same logits.
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "tests/trainer/model_test_util.h"
#include "trainer/checkpoint/checkpoint.h"

namespace copyforge {
namespace {

const std::vector<int64_t> kIds = {3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43, 38, 32, 79};

torch::Tensor ParseLogits(const std::string& json) {
  auto rows = nlohmann::json::parse(json).get<std::vector<std::vector<float>>>();
  std::vector<torch::Tensor> t;
  for (auto& r : rows) t.push_back(torch::tensor(r));
  return torch::stack(t);
}

std::string Script() {
  return "/usr/bin/python3 " + testing::Env("COPYFORGE_SOURCE_DIR") +
         "/tests/fixtures/hf_gpt2_reference.py";
}

// Tolerance: two float32 implementations with different kernels and summation order.
constexpr double kAtol = 1e-4, kRtol = 1e-4;

TEST(HfInterop, LoadsSavePretrainedLayout) {
  // "legacy" adds the mask buffers and tied lm_head.weight that older releases also stored.
  for (const char* variant : {"", " legacy"}) {
    testing::TempDir tmp;
    auto r = testing::RunCommand(Script() + " write " + tmp.path() + " 5" + variant);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    torch::Tensor want = ParseLogits(r.out);
    auto ckpt = LoadCheckpoint(tmp.path());
    ASSERT_TRUE(ckpt.ok()) << variant << ": " << ckpt.status();
    EXPECT_EQ(ckpt->config.n_head, 4);
    torch::NoGradGuard g;
    torch::Tensor got = ckpt->model->forward(torch::tensor(kIds).view({1, -1}))[0];
    EXPECT_TRUE(torch::allclose(got, want, kRtol, kAtol)) << variant << (got - want).abs().max();
  }
}

TEST(HfInterop, OurCheckpointLoadsInReference) {
  testing::TempDir tmp;
  Gpt2Config c = testing::TinyConfig();
  c.vocab_size = 100;
  Gpt2 model(c);
  model->InitWeights(21);
  ASSERT_TRUE(SaveCheckpoint(tmp.File("ckpt"), model, nullptr).ok());
  auto r = testing::RunCommand(Script() + " logits " + tmp.File("ckpt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  torch::NoGradGuard g;
  model->eval();
  torch::Tensor got = model->forward(torch::tensor(kIds).view({1, -1}))[0];
  torch::Tensor want = ParseLogits(r.out);
  EXPECT_TRUE(torch::allclose(got, want, kRtol, kAtol)) << (got - want).abs().max();
}

}  // namespace
}  // namespace copyforge
