// Token sampling (greedy, temperature, top-k, top-p, repetition penalty) and a simple
// single-sequence generation loop over the KV cache.
#ifndef COPYFORGE_TRAINER_MODEL_SAMPLER_H_
#define COPYFORGE_TRAINER_MODEL_SAMPLER_H_

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "trainer/model/gpt2.h"

namespace copyforge {

struct SamplingParams {
  double temperature = 1.0;         // 0 means greedy
  int64_t top_k = 0;                // 0 disables
  double top_p = 1.0;               // 1 disables
  double repetition_penalty = 1.0;  // CTRL-style; 1 disables
  uint64_t seed = 0;

  // The message names the offending parameter.
  absl::Status Validate() const;
};

// Draws tokens from logits with its own generator, so a seed fixes the output no matter what
// else runs in the process or shares the batch: every row is sampled by the same code whether
// it is alone or one of many. Not thread-safe.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // logits: 1-D [vocab]; `history` holds the ids the repetition penalty applies to.
  int64_t Sample(const torch::Tensor& logits, absl::Span<const int32_t> history);
  // One token per row of logits [B, vocab]: row b with samplers[b] and histories[b]. Penalty,
  // temperature, top-k and top-p shape each row; the draw is one batched Gumbel-max over all
  // sampled rows, each with noise from its own generator.
  static std::vector<int64_t> SampleBatch(const torch::Tensor& logits,
                                          absl::Span<Sampler* const> samplers,
                                          absl::Span<const absl::Span<const int32_t>> histories);
  // The same in libtorch operations on the logits' device (the path SampleBatch takes for logits
  // off the CPU; tests run it on the CPU too): the same shaping, then a Gumbel-max over the whole
  // vocabulary with the same per-request noise; only the ids leave the device.
  static std::vector<int64_t> SampleBatchWithTensorOps(
      const torch::Tensor& logits, absl::Span<Sampler* const> samplers,
      absl::Span<const absl::Span<const int32_t>> histories);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  int32_t stop_token = -1;  // generation ends after emitting it (typically <|endoftext|>)
};

// Generates after `prompt` with a KV cache; stops at max_new_tokens, the stop token, or the
// model's context length. `on_token` (optional) sees each new id as it is produced.
absl::StatusOr<std::vector<int32_t>> GenerateTokens(
    Gpt2& model, absl::Span<const int32_t> prompt, const GenerateOptions& options,
    const std::function<void(int32_t)>& on_token = {});

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_SAMPLER_H_
