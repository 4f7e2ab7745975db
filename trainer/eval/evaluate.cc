#include "trainer/eval/evaluate.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/common/progress.h"

namespace copyforge {

absl::StatusOr<EvalResult> EvaluateTokens(Gpt2& model, absl::Span<const int32_t> ids,
                                          const EvalOptions& options) {
  if (ids.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluation needs at least 2 tokens, got ", ids.size()));
  }
  const int64_t window = model->config().n_positions;
  const int64_t predicted = static_cast<int64_t>(ids.size()) - 1;
  const auto device = model->parameters()[0].device();
  torch::NoGradGuard no_grad;
  model->eval();
  double total = 0;
  int64_t done = 0;
  Progress progress("eval", "tokens", predicted, options.show_progress);
  try {
    while (done < predicted) {
      const int64_t len = std::min(window, predicted - done);
      // Full windows are batched; the final partial one runs alone.
      int64_t batch = 1;
      if (len == window)
        batch = std::max<int64_t>(1, std::min(options.batch_size, (predicted - done) / window));
      std::vector<int64_t> inputs, targets;
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t start = done + b * len;
        for (int64_t i = 0; i < len; ++i) {
          inputs.push_back(ids[start + i]);
          targets.push_back(ids[start + i + 1]);
        }
      }
      auto x = torch::tensor(inputs, torch::kLong).view({batch, len}).to(device);
      auto y = torch::tensor(targets, torch::kLong).view({batch, len}).to(device);
      torch::Tensor loss = Gpt2Impl::Loss(model->forward(x), y);
      total += loss.item<double>() * static_cast<double>(batch * len);
      done += batch * len;
      progress.Update(done, absl::StrFormat("loss %.4f", total / static_cast<double>(done)));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("evaluation failed: ", e.what_without_backtrace()));
  }
  EvalResult result;
  result.tokens = predicted;
  result.loss = total / static_cast<double>(predicted);
  result.perplexity = std::exp(result.loss);
  progress.Finish(absl::StrFormat("loss %.4f ppl %.2f", result.loss, result.perplexity));
  return result;
}

}  // namespace copyforge
