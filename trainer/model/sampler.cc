#include "trainer/model/sampler.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "trainer/common/cpu_features.h"

// GCC 12 flags the intentionally undefined vectors inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace copyforge {

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature))
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be finite and >= 0, got ", temperature));
  if (top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", top_k));
  if (!(top_p > 0 && top_p <= 1))
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", top_p));
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty)) {
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

// Standard Gumbel noise from v in (0, 1]: -log(E) with E = -log(1 - v) ~ Exp(1) (log1p keeps
// full precision for the smallest E, the likeliest winners).
double Gumbel(float v) { return -std::log(-std::log1p(-static_cast<double>(v))); }

// exp(x[i] - max) summed per block of `block` elements into sums[]; x[i] <= max.
void ExpBlockSumsScalar(const float* x, int64_t n, float max, int64_t block, double* sums) {
  for (int64_t start = 0, b = 0; start < n; start += block, ++b) {
    double sum = 0;
    for (int64_t i = start; i < std::min(n, start + block); ++i) sum += std::exp(x[i] - max);
    sums[b] = sum;
  }
}

// exp for x <= 0 (Cephes' polynomial, ~1 ulp); exactly 0 below -87.3 and for -inf.
__attribute__((target("avx512f"))) inline __m512 ExpNonPositive(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(y, n));
}

__attribute__((target("avx512f"))) void ExpBlockSumsAvx512(const float* x, int64_t n, float max,
                                                           int64_t block, double* sums) {
  const __m512 m = _mm512_set1_ps(max);
  for (int64_t start = 0, b = 0; start < n; start += block, ++b) {
    const int64_t end = std::min(n, start + block);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = start;
    for (; i + 16 <= end; i += 16) {
      acc = _mm512_add_ps(acc, ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(x + i), m)));
    }
    if (i < end) {
      const __mmask16 tail = static_cast<__mmask16>((1u << (end - i)) - 1);
      const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail, x + i);
      acc = _mm512_add_ps(acc, ExpNonPositive(_mm512_sub_ps(v, m)));
    }
    sums[b] = _mm512_reduce_add_ps(acc);
  }
}

// The largest of x[0..n) and how many are finite (> -inf).
struct MaxCount {
  float max = -std::numeric_limits<float>::infinity();
  int64_t finite = 0;
};

MaxCount MaxAndCountScalar(const float* x, int64_t n) {
  MaxCount r;
  for (int64_t i = 0; i < n; ++i) {
    r.max = std::max(r.max, x[i]);
    r.finite += x[i] > -std::numeric_limits<float>::infinity();
  }
  return r;
}

__attribute__((target("avx512f"))) MaxCount MaxAndCountAvx512(const float* x, int64_t n) {
  const __m512 none = _mm512_set1_ps(-INFINITY);
  __m512 max = none;
  int64_t finite = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    max = _mm512_max_ps(max, v);
    finite += __builtin_popcount(_mm512_cmp_ps_mask(v, none, _CMP_GT_OQ));
  }
  MaxCount r = MaxAndCountScalar(x + i, n - i);
  r.max = std::max(r.max, _mm512_reduce_max_ps(max));
  r.finite += finite;
  return r;
}

// A draw from softmax(logits) by Gumbel-max: the argmax of logit + Gumbel noise, the noise of
// each candidate keyed by its index. Unlike inverting the cumulative distribution, a tiny
// change in the logits (a batched matmul may round differently from a single row) changes the
// draw only when the two best candidates nearly tie. When top-k / top-p left few candidates
// (finite logits) the race is over those tokens; over a full vocabulary it runs in two levels
// (a block of 256 tokens by its mass, then a token within it), exact as well, with ~500
// logarithms and one vectorised exponential pass instead of a logarithm per token.
int64_t DrawGumbelMax(const float* logits, int64_t vocab, uint64_t block_key, uint64_t token_key) {
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
  const bool avx512 = UseAvx512Kernels();
  const MaxCount stats = (avx512 ? MaxAndCountAvx512 : MaxAndCountScalar)(logits, vocab);
  const float max = stats.max;
  const int64_t candidates = stats.finite;
  if (candidates == 0) return Argmax(logits, vocab);
  auto log_mass = [&](const float* l) {
    return [l](int64_t i) {
      return l[i] > -std::numeric_limits<float>::infinity() ? static_cast<double>(l[i]) : kNone;
    };
  };
  constexpr int64_t kBlock = 256;
  if (candidates <= 16 * kBlock) return race(vocab, token_key, log_mass(logits));
  const int64_t blocks = (vocab + kBlock - 1) / kBlock;
  std::vector<double> sums(blocks);
  (avx512 ? ExpBlockSumsAvx512 : ExpBlockSumsScalar)(logits, vocab, max, kBlock, sums.data());
  const int64_t block =
      race(blocks, block_key, [&](int64_t b) { return sums[b] > 0 ? std::log(sums[b]) : kNone; });
  if (block < 0) return Argmax(logits, vocab);
  const int64_t token =
      race(std::min(kBlock, vocab - block * kBlock), token_key, log_mass(logits + block * kBlock));
  return block * kBlock + std::max<int64_t>(token, 0);
}

}  // namespace

std::vector<int64_t> Sampler::SampleBatch(const torch::Tensor& logits_in,
                                          absl::Span<Sampler* const> samplers,
                                          absl::Span<const absl::Span<const int32_t>> histories) {
  TORCH_CHECK(logits_in.dim() == 2 && logits_in.size(0) == static_cast<int64_t>(samplers.size()) &&
                  histories.size() == samplers.size(),
              "SampleBatch: one sampler and one history per row of logits");
  if (!logits_in.device().is_cpu()) return SampleBatchWithTensorOps(logits_in, samplers, histories);
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
    Sampler& s = *samplers[sampled[i]];
    float* row = scaled.data_ptr<float>() + static_cast<int64_t>(i) * vocab;
    if (s.params_.top_k > 0 && s.params_.top_k < vocab) KeepTopK(row, vocab, s.params_.top_k);
    if (s.params_.top_p < 1.0) KeepNucleus(row, vocab, s.params_.top_p);
    const uint64_t block_key = s.rng_(), token_key = s.rng_();
    out[sampled[i]] = DrawGumbelMax(row, vocab, block_key, token_key);
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
