// Checkpoint directories: model.safetensors (Hugging Face GPT-2 names and Conv1D layouts),
// config.json (HF GPT-2 keys), vocab.json + merges.txt, and manifest.json with the SHA-256 of
// every file. Written into a staging directory, fsynced, then renamed into place.
#ifndef COPYFORGE_TRAINER_CHECKPOINT_CHECKPOINT_H_
#define COPYFORGE_TRAINER_CHECKPOINT_CHECKPOINT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/checkpoint/manifest.h"
#include "trainer/model/gpt2.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {

struct SaveOptions {
  bool overwrite = false;
  // Writes further files (such as the training state) into the staging directory before the
  // manifest is computed, so they are covered by its checksums and by the atomic rename.
  std::function<absl::Status(const std::string& staging_dir)> extra_files;
};

// Saves `model` (any device or dtype; stored in the parameters' dtype) and, when given, the
// tokenizer files. Either the whole directory appears at `dir` or nothing changes there.
absl::Status SaveCheckpoint(const std::string& dir, Gpt2& model, const Tokenizer* tokenizer,
                            const SaveOptions& options = {});

struct LoadOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat;
  // Check manifest.json's checksums when the directory has one (HF directories do not).
  bool verify_checksums = true;
  // Load vocab.json + merges.txt when present.
  bool load_tokenizer = true;
};

struct LoadedCheckpoint {
  Gpt2Config config;
  Gpt2 model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;  // null when the directory has no tokenizer files
};

// Loads a directory written by SaveCheckpoint or by GPT2LMHeadModel.save_pretrained
// (safetensors; tensor names with or without the "transformer." prefix; F32/F16/BF16).
// A corrupt or truncated file, a missing, unexpected or misshapen tensor is an error naming the
// file and the tensor. The model is returned in eval mode.
absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& dir,
                                                const LoadOptions& options = {});

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_CHECKPOINT_CHECKPOINT_H_
