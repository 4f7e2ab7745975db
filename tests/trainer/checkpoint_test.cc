#include "trainer/checkpoint/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_util.h"
#include "tests/trainer/model_test_util.h"
#include "trainer/checkpoint/safetensors.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {
namespace fs = std::filesystem;

TEST(Checkpoint, SaveLoadRoundTripIsExact) {
  testing::TempDir tmp;
  Gpt2 model = testing::TinyModel(3);
  ASSERT_TRUE(SaveCheckpoint(tmp.File("ckpt"), model, nullptr).ok());
  for (const char* f : {"model.safetensors", "config.json", "manifest.json"}) {
    EXPECT_TRUE(fs::exists(tmp.File("ckpt/") + f)) << f;
  }
  auto loaded = LoadCheckpoint(tmp.File("ckpt"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto a = model->NamedTensors(), b = loaded->model->NamedTensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  // HF names and the Conv1D [in, out] layout.
  auto file = SafetensorsFile::Open(tmp.File("ckpt/model.safetensors"));
  ASSERT_TRUE(file.ok());
  const TensorView* c_attn = (*file)->Find("transformer.h.0.attn.c_attn.weight");
  ASSERT_NE(c_attn, nullptr);
  EXPECT_EQ(c_attn->shape, (std::vector<int64_t>{32, 96}));
  EXPECT_NE((*file)->Find("transformer.wte.weight"), nullptr);
}

TEST(Checkpoint, TokenizerFilesTravelWithTheModel) {
  testing::TempDir tmp;
  Gpt2Config c = testing::TinyConfig();
  c.vocab_size = 50257;
  Gpt2 model(c);
  model->InitWeights(1);
  auto tok = Tokenizer::Load(testing::Env("COPYFORGE_GPT2_TOKENIZER"));
  ASSERT_TRUE(tok.ok());
  ASSERT_TRUE(SaveCheckpoint(tmp.File("ckpt"), model, tok->get()).ok());
  auto loaded = LoadCheckpoint(tmp.File("ckpt"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_NE(loaded->tokenizer, nullptr);
  EXPECT_EQ(loaded->tokenizer->Encode("Hello world"), (*tok)->Encode("Hello world"));
  // A tokenizer larger than the model's vocabulary is refused.
  Gpt2 small = testing::TinyModel();
  EXPECT_FALSE(SaveCheckpoint(tmp.File("bad"), small, tok->get()).ok());
  EXPECT_FALSE(fs::exists(tmp.File("bad")));
}

TEST(Checkpoint, Bfloat16WeightsRoundTrip) {
  testing::TempDir tmp;
  Gpt2 model = testing::TinyModel(4);
  model->to(torch::kBFloat16);
  ASSERT_TRUE(SaveCheckpoint(tmp.File("ckpt"), model, nullptr).ok());
  auto file = SafetensorsFile::Open(tmp.File("ckpt/model.safetensors"));
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Find("transformer.wte.weight")->dtype, "BF16");
  LoadOptions opts;
  opts.dtype = torch::kBFloat16;
  auto loaded = LoadCheckpoint(tmp.File("ckpt"), opts);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(torch::equal(loaded->model->wte->weight, model->wte->weight));
}

TEST(Checkpoint, CorruptionIsDetectedAndNamed) {
  testing::TempDir tmp;
  Gpt2 model = testing::TinyModel();
  const std::string dir = tmp.File("ckpt");
  ASSERT_TRUE(SaveCheckpoint(dir, model, nullptr).ok());
  std::string raw = *ReadFile(dir + "/model.safetensors");
  raw[raw.size() - 10] ^= 0x55;
  testing::WriteTestFile(dir + "/model.safetensors", raw);
  auto r = LoadCheckpoint(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("model.safetensors"), std::string_view::npos) << r.status();

  // Without the manifest, a truncated file is still caught by the safetensors checks.
  fs::remove(dir + "/manifest.json");
  testing::WriteTestFile(dir + "/model.safetensors", raw.substr(0, raw.size() / 2));
  r = LoadCheckpoint(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.safetensors"), std::string_view::npos) << r.status();
}

TEST(Checkpoint, MissingTensorAndShapeMismatchAreNamed) {
  testing::TempDir tmp;
  Gpt2 model = testing::TinyModel();
  const std::string dir = tmp.File("ckpt");
  ASSERT_TRUE(SaveCheckpoint(dir, model, nullptr).ok());
  fs::remove(dir + "/manifest.json");

  // Rewrite the weights without one tensor.
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  std::vector<TensorToWrite> keep;
  for (const TensorView& t : (*file)->tensors()) {
    if (t.name != "transformer.h.1.mlp.c_fc.weight") {
      keep.push_back({t.name, t.dtype, t.shape, std::string_view(t.data, t.nbytes)});
    }
  }
  ASSERT_TRUE(WriteSafetensors(tmp.File("partial.safetensors"), keep, {}).ok());
  file->reset();
  fs::rename(tmp.File("partial.safetensors"), dir + "/model.safetensors");
  auto r = LoadCheckpoint(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("transformer.h.1.mlp.c_fc.weight is missing"),
            std::string_view::npos)
      << r.status();

  // A config that disagrees with the weights.
  ASSERT_TRUE(SaveCheckpoint(dir, model, nullptr, SaveOptions{true, {}}).ok());
  Gpt2Config wider = model->config();
  wider.n_positions = 80;
  ASSERT_TRUE(WriteFileAtomic(dir + "/config.json", wider.ToHfJson()).ok());
  LoadOptions no_verify;
  no_verify.verify_checksums = false;
  r = LoadCheckpoint(dir, no_verify);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("transformer.wpe.weight has shape [64, 32]"),
            std::string_view::npos)
      << r.status();
}

TEST(Checkpoint, OversizedConfigFailsBeforeAllocating) {
  testing::TempDir tmp;
  Gpt2 model = testing::TinyModel();
  const std::string dir = tmp.File("ckpt");
  ASSERT_TRUE(SaveCheckpoint(dir, model, nullptr).ok());
  Gpt2Config huge = model->config();
  huge.n_layer = 1000000;
  huge.n_embd = 65536;
  huge.n_head = 1;
  ASSERT_TRUE(WriteFileAtomic(dir + "/config.json", huge.ToHfJson()).ok());
  LoadOptions no_verify;
  no_verify.verify_checksums = false;
  auto r = LoadCheckpoint(dir, no_verify);
  ASSERT_FALSE(r.ok());
  // Refused from config.json alone, before any tensor is looked at.
  EXPECT_NE(r.status().message().find("config.json: n_layer is 1000000, more than 1024"),
            std::string_view::npos)
      << r.status();
  huge.n_layer = 2;
  ASSERT_TRUE(WriteFileAtomic(dir + "/config.json", huge.ToHfJson()).ok());
  r = LoadCheckpoint(dir, no_verify);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("transformer.wte.weight has shape [101, 32]"),
            std::string_view::npos)
      << r.status();
}

TEST(Checkpoint, ExistingDirectoryNeedsOverwrite) {
  testing::TempDir tmp;
  Gpt2 model = testing::TinyModel();
  ASSERT_TRUE(SaveCheckpoint(tmp.File("ckpt"), model, nullptr).ok());
  EXPECT_EQ(SaveCheckpoint(tmp.File("ckpt"), model, nullptr).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(SaveCheckpoint(tmp.File("ckpt"), model, nullptr, SaveOptions{true, {}}).ok());
  EXPECT_TRUE(VerifyManifest(tmp.File("ckpt")).ok());
}

}  // namespace
}  // namespace copyforge
