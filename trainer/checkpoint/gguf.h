// Export of a checkpoint to GGUF (version 3), the file format of llama.cpp and the tools built on
// it (Ollama, LM Studio, node-llama-cpp): a `gpt2` architecture model with our byte-level BPE
// tokenizer (tokens, merges, end of text), weights in f32, f16 or q8_0 (blocks of 32 int8 values
// with one f16 scale; norms and biases stay f32). Torch-free: reads model.safetensors,
// config.json, vocab.json and merges.txt directly.
#ifndef COPYFORGE_TRAINER_CHECKPOINT_GGUF_H_
#define COPYFORGE_TRAINER_CHECKPOINT_GGUF_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace copyforge {

struct GgufExportOptions {
  std::string dtype = "f16";  // f32, f16 or q8_0
  std::string name = "copyforge";
};

struct GgufExportSummary {
  int64_t tensors = 0;
  int64_t bytes = 0;
  int64_t parameters = 0;
};

// Writes `out` atomically (a temporary file, fsynced, renamed). Errors name the checkpoint file
// or field at fault.
absl::Status ExportGguf(const std::string& checkpoint_dir, const std::string& out,
                        const GgufExportOptions& options, GgufExportSummary* summary = nullptr);

// IEEE half precision of `x`, rounded to nearest even (what F16 tensors and q8_0 scales hold).
uint16_t FloatToHalf(float x);
float HalfToFloat(uint16_t h);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_CHECKPOINT_GGUF_H_
