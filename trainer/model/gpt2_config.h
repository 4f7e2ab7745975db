// GPT-2 hyper-parameters, read from our YAML model configs or Hugging Face's config.json.
#ifndef COPYFORGE_TRAINER_MODEL_GPT2_CONFIG_H_
#define COPYFORGE_TRAINER_MODEL_GPT2_CONFIG_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace copyforge {

struct Gpt2Config {
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_embd = 768;
  int64_t n_positions = 1024;
  int64_t vocab_size = 50257;
  double layer_norm_epsilon = 1e-5;
  double embd_pdrop = 0.1;
  double attn_pdrop = 0.1;
  double resid_pdrop = 0.1;
  // Only GPT-2's tanh-approximated GELU ("gelu_new") is supported.
  std::string activation_function = "gelu_new";
  double initializer_range = 0.02;

  // Checks every field; the message names the field (and `source`, a file or "config").
  absl::Status Validate(const std::string& source = "config") const;
  int64_t head_dim() const { return n_embd / n_head; }
  // Parameters, counting the tied embedding once.
  int64_t NumParameters() const;
  // Name (Hugging Face, without "transformer.") and shape of every parameter, in the model's
  // order; lets a checkpoint be checked against the config before any memory is allocated.
  std::vector<std::pair<std::string, std::vector<int64_t>>> TensorShapes() const;
  // Forward+backward FLOPs per token (6N plus attention), as in the PaLM/nanoGPT MFU estimate.
  double TrainingFlopsPerToken(int64_t seq_len) const;

  // Hugging Face config.json (model_type "gpt2"); unknown keys are kept out, missing ones default.
  static absl::StatusOr<Gpt2Config> FromHfJson(const std::string& json_text,
                                               const std::string& source);
  std::string ToHfJson() const;
  // Our YAML model config (configs/model/*.yaml): the same keys as config.json plus `dropout`,
  // which sets the three dropout rates at once. Errors name the file, key and line.
  static absl::StatusOr<Gpt2Config> FromYamlFile(const std::string& path);
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_GPT2_CONFIG_H_
