#include "trainer/model/sampler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace copyforge {

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0))
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, got ", temperature));
  if (top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", top_k));
  if (!(top_p > 0 && top_p <= 1))
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", top_p));
  if (!(repetition_penalty > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty must be > 0, got ", repetition_penalty));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), gen_(at::make_generator<at::CPUGeneratorImpl>(params.seed)) {}

int64_t Sampler::Sample(const torch::Tensor& logits_in, absl::Span<const int32_t> history) {
  torch::Tensor logits = logits_in.detach().to(torch::kCPU, torch::kFloat).clone();
  if (params_.repetition_penalty != 1.0 && !history.empty()) {
    auto* l = logits.data_ptr<float>();
    const int64_t v = logits.size(0);
    std::vector<bool> seen(v, false);
    for (int32_t id : history) {
      if (id < 0 || id >= v || seen[id]) continue;
      seen[id] = true;
      l[id] = l[id] > 0 ? l[id] / params_.repetition_penalty : l[id] * params_.repetition_penalty;
    }
  }
  if (params_.temperature == 0.0) return logits.argmax().item<int64_t>();
  logits = logits / params_.temperature;
  if (params_.top_k > 0 && params_.top_k < logits.size(0)) {
    auto kth = std::get<0>(logits.topk(params_.top_k)).min();
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  torch::Tensor probs = torch::softmax(logits, -1);
  if (params_.top_p < 1.0) {
    auto [sorted, index] = probs.sort(/*dim=*/-1, /*descending=*/true);
    torch::Tensor before = sorted.cumsum(-1) - sorted;  // mass strictly above each token
    sorted = sorted.masked_fill(before >= params_.top_p, 0.0);
    probs = torch::zeros_like(probs).scatter(0, index, sorted);
  }
  return torch::multinomial(probs, 1, /*replacement=*/false, gen_).item<int64_t>();
}

absl::StatusOr<std::vector<int32_t>> GenerateTokens(Gpt2& model, absl::Span<const int32_t> prompt,
                                                    const GenerateOptions& options,
                                                    const std::function<void(int32_t)>& on_token) {
  if (absl::Status st = options.sampling.Validate(); !st.ok()) return st;
  const Gpt2Config& config = model->config();
  if (prompt.empty())
    return absl::InvalidArgumentError("prompt is empty (it must hold at least one token)");
  if (static_cast<int64_t>(prompt.size()) > config.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt has ", prompt.size(), " tokens, more than n_positions ", config.n_positions));
  }
  if (options.max_new_tokens < 0) return absl::InvalidArgumentError("max_new_tokens must be >= 0");
  torch::NoGradGuard no_grad;
  const auto params = model->parameters();
  const auto weight_options =
      torch::TensorOptions().dtype(params[0].scalar_type()).device(params[0].device());
  const int64_t capacity = std::min<int64_t>(
      config.n_positions, static_cast<int64_t>(prompt.size()) + options.max_new_tokens);
  KvCache cache = KvCache::Allocate(config, 1, capacity, weight_options);
  Sampler sampler(options.sampling);
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  std::vector<int32_t> generated;
  torch::Tensor input =
      torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), torch::kLong)
          .view({1, -1})
          .to(params[0].device());
  try {
    while (static_cast<int64_t>(generated.size()) < options.max_new_tokens &&
           cache.length < capacity) {
      torch::Tensor logits = model->forward(input, &cache);
      const int32_t next = static_cast<int32_t>(sampler.Sample(logits[0][-1], history));
      generated.push_back(next);
      history.push_back(next);
      if (on_token) on_token(next);
      if (next == options.stop_token) break;
      input = torch::full({1, 1}, next, torch::dtype(torch::kLong).device(params[0].device()));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("generation failed: ", e.what_without_backtrace()));
  }
  return generated;
}

}  // namespace copyforge
