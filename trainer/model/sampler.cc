#include "trainer/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

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

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int64_t Sampler::Sample(const torch::Tensor& logits, absl::Span<const int32_t> history) {
  Sampler* self = this;
  const absl::Span<const int32_t> histories[] = {history};
  return SampleBatch(logits.reshape({1, -1}), absl::MakeConstSpan(&self, 1), histories)[0];
}

namespace {

// CTRL's repetition penalty on the ids of `history` (each once).
void PenalizeRepeats(float* logits, int64_t vocab, absl::Span<const int32_t> history,
                     double penalty) {
  std::vector<int32_t> ids(history.begin(), history.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) continue;
    logits[id] = logits[id] > 0 ? static_cast<float>(logits[id] / penalty)
                                : static_cast<float>(logits[id] * penalty);
  }
}

int64_t Argmax(const float* x, int64_t n) {
  return std::max_element(x, x + n) - x;  // the first of equal maxima
}

// Keeps the k largest logits (and any equal to the k-th), the rest to -inf.
void KeepTopK(float* logits, int64_t vocab, int64_t k) {
  std::vector<float> copy(logits, logits + vocab);
  std::nth_element(copy.begin(), copy.begin() + (k - 1), copy.end(), std::greater<float>());
  const float kth = copy[k - 1];
  for (int64_t i = 0; i < vocab; ++i) {
    if (logits[i] < kth) logits[i] = -std::numeric_limits<float>::infinity();
  }
}

// Masks every token outside the nucleus of `logits` (the smallest set of most likely tokens
// whose probability reaches top_p; a token is kept while the mass strictly above it is below
// top_p) to -inf. Sorts the 256 most likely tokens first and the whole vocabulary only when they
// fall short.
void KeepNucleus(float* logits, int64_t vocab, double top_p) {
  const torch::Tensor probs_t =
      torch::softmax(torch::from_blob(logits, {vocab}, torch::kFloat), -1).contiguous();
  const float* probs = probs_t.data_ptr<float>();
  auto before = [&](int32_t a, int32_t b) {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
  };
  std::vector<int32_t> order(vocab);
  for (int64_t i = 0; i < vocab; ++i) order[i] = static_cast<int32_t>(i);
  int64_t head = std::min<int64_t>(vocab, 256);
  int64_t kept = 0;
  for (;;) {
    std::partial_sort(order.begin(), order.begin() + head, order.end(), before);
    double above = 0;
    kept = 0;
    for (; kept < head && above < top_p; ++kept) above += probs[order[kept]];
    if (above >= top_p || head == vocab) break;
    head = vocab;
  }
  std::vector<bool> keep(vocab, false);
  for (int64_t i = 0; i < kept; ++i) keep[order[i]] = true;
  for (int64_t i = 0; i < vocab; ++i) {
    if (!keep[i]) logits[i] = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

// Two rounds of an integer hash: a uniform number in (0, 1] that depends only on (key, i).
float UniformAt(uint64_t key, uint32_t i) {
  uint32_t x = (i * 0x9E3779B9u) ^ static_cast<uint32_t>(key);
  for (int round = 0; round < 2; ++round) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    x ^= static_cast<uint32_t>(key >> 32);
  }
  return (static_cast<float>(x) + 0.5f) * 0x1.0p-32f;
}

namespace {
// Standard Gumbel noise from v in (0, 1]: -log(E) with E = -log(1 - v) ~ Exp(1) (log1p keeps
// full precision for the smallest E, the likeliest winners).
double Gumbel(float v) { return -std::log(-std::log1p(-static_cast<double>(v))); }

double Sum(const float* x, int64_t n) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) part[k] += x[i + k];
  }
  double total = 0;
  for (; i < n; ++i) total += x[i];
  for (double p : part) total += p;
  return total;
}

// A draw from `probs` by Gumbel-max: the argmax of log p + Gumbel noise, the noise of each
// candidate keyed by its index. Unlike inverting the cumulative distribution, a tiny change in
// the probabilities (a batched matmul may round differently from a single row) changes the
// draw only when the two best candidates nearly tie, so a seeded request keeps its output in
// any batch. When top-k / top-p left few candidates the race is over those tokens; over a full
// vocabulary it runs in two levels (a block of 256 tokens by its mass, then a token within it),
// exact as well, with ~500 logarithms instead of one per token.
int64_t DrawGumbelMax(const float* probs, int64_t vocab, uint64_t block_key, uint64_t token_key) {
  constexpr double kNone = -std::numeric_limits<double>::infinity();
  auto race = [](int64_t n, uint64_t key, const auto& log_mass) {
    int64_t best = -1;
    double best_z = kNone;
    for (int64_t i = 0; i < n; ++i) {
      const double m = log_mass(i);
      if (m == kNone) continue;
      const double z = m + Gumbel(UniformAt(key, static_cast<uint32_t>(i)));
      if (best < 0 || z > best_z) {
        best = i;
        best_z = z;
      }
    }
    return best;
  };
  auto log_prob = [&](const float* p) {
    return [p](int64_t i) { return p[i] > 0 ? std::log(static_cast<double>(p[i])) : kNone; };
  };
  constexpr int64_t kBlock = 256;
  int64_t candidates = 0;
  for (int64_t i = 0; i < vocab; ++i) candidates += probs[i] > 0;
  if (candidates <= 16 * kBlock) {
    const int64_t token = race(vocab, token_key, log_prob(probs));
    return token >= 0 ? token : Argmax(probs, vocab);
  }
  const int64_t blocks = (vocab + kBlock - 1) / kBlock;
  const int64_t block = race(blocks, block_key, [&](int64_t b) {
    const double mass = Sum(probs + b * kBlock, std::min(kBlock, vocab - b * kBlock));
    return mass > 0 ? std::log(mass) : kNone;
  });
  if (block < 0) return Argmax(probs, vocab);
  const int64_t token =
      race(std::min(kBlock, vocab - block * kBlock), token_key, log_prob(probs + block * kBlock));
  return block * kBlock + std::max<int64_t>(token, 0);
}

}  // namespace

std::vector<int64_t> Sampler::SampleBatch(const torch::Tensor& logits_in,
                                          absl::Span<Sampler* const> samplers,
                                          absl::Span<const absl::Span<const int32_t>> histories) {
  TORCH_CHECK(logits_in.dim() == 2 && logits_in.size(0) == static_cast<int64_t>(samplers.size()) &&
                  histories.size() == samplers.size(),
              "SampleBatch: one sampler and one history per row of logits");
  const int64_t rows = logits_in.size(0), vocab = logits_in.size(1);
  // A private float32 copy: the penalties, temperature and top-k write into it.
  torch::Tensor logits = logits_in.detach()
                             .to(torch::kCPU, torch::kFloat, /*non_blocking=*/false, /*copy=*/true)
                             .contiguous();
  std::vector<int64_t> out(rows, -1);
  std::vector<int64_t> sampled;  // rows drawn at random (not greedy)
  std::vector<float> inverse_temperature;
  for (int64_t b = 0; b < rows; ++b) {
    const SamplingParams& p = samplers[b]->params_;
    float* row = logits.data_ptr<float>() + b * vocab;
    if (p.repetition_penalty != 1.0 && !histories[b].empty()) {
      PenalizeRepeats(row, vocab, histories[b], p.repetition_penalty);
    }
    if (p.temperature == 0.0) {
      out[b] = Argmax(row, vocab);
    } else {
      sampled.push_back(b);
      inverse_temperature.push_back(static_cast<float>(1.0 / p.temperature));
    }
  }
  if (sampled.empty()) return out;
  torch::Tensor scaled = static_cast<int64_t>(sampled.size()) == rows
                             ? logits
                             : logits.index_select(0, torch::tensor(sampled, torch::kLong));
  scaled.mul_(torch::tensor(inverse_temperature).unsqueeze(1));
  for (size_t i = 0; i < sampled.size(); ++i) {
    const SamplingParams& p = samplers[sampled[i]]->params_;
    float* row = scaled.data_ptr<float>() + static_cast<int64_t>(i) * vocab;
    if (p.top_k > 0 && p.top_k < vocab) KeepTopK(row, vocab, p.top_k);
    if (p.top_p < 1.0) KeepNucleus(row, vocab, p.top_p);
  }
  const torch::Tensor probs = torch::softmax(scaled, -1).contiguous();
  for (size_t i = 0; i < sampled.size(); ++i) {
    Sampler& s = *samplers[sampled[i]];
    const uint64_t block_key = s.rng_(), token_key = s.rng_();
    out[sampled[i]] = DrawGumbelMax(probs.data_ptr<float>() + static_cast<int64_t>(i) * vocab,
                                    vocab, block_key, token_key);
  }
  return out;
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
