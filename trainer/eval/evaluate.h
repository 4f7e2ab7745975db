// Language-model evaluation: mean next-token cross-entropy over a token sequence.
#ifndef COPYFORGE_TRAINER_EVAL_EVALUATE_H_
#define COPYFORGE_TRAINER_EVAL_EVALUATE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "trainer/model/gpt2.h"

namespace copyforge {

struct EvalResult {
  double loss = 0;        // mean cross-entropy in nats per predicted token
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // predicted tokens (sequence length - 1)
};

struct EvalOptions {
  int64_t batch_size = 4;  // windows evaluated together
  bool show_progress = true;
};

// Evaluates `ids` as one sequence in consecutive non-overlapping windows of n_positions inputs
// (each window also reads the next token as the last target), so every token after the first is
// predicted exactly once. Needs at least two tokens.
absl::StatusOr<EvalResult> EvaluateTokens(Gpt2& model, absl::Span<const int32_t> ids,
                                          const EvalOptions& options = {});

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_EVAL_EVALUATE_H_
