// Sampler::SampleBatchWithTensorOps: the batched sampler in libtorch operations, for logits on a
// GPU (they never leave the device; only the chosen ids come back). It applies the same shaping
// as the CPU kernels (CTRL repetition penalty, temperature, top-k keeping ties, nucleus by a
// stable descending sort) and draws by Gumbel-max over the whole vocabulary with the same
// counter-based noise: uniform(key, token) from an integer hash, so a row's draw depends only on
// its own request's seed and step.
#include <algorithm>
#include <limits>

#include "trainer/model/sampler.h"

namespace copyforge {
namespace {

constexpr int64_t kLow32 = 0xFFFFFFFF;

// One round of the 32-bit integer hash of sampler.cc's UniformAt, in int64 lanes that hold
// unsigned 32-bit values (products are masked back to 32 bits).
torch::Tensor HashRound(torch::Tensor x, const torch::Tensor& key_high) {
  x = x.bitwise_xor(x.bitwise_right_shift(16));
  x = x.mul(int64_t{0x7feb352d}).bitwise_and(kLow32);
  x = x.bitwise_xor(x.bitwise_right_shift(15));
  x = x.mul(int64_t{0x846ca68b}).bitwise_and(kLow32);
  x = x.bitwise_xor(x.bitwise_right_shift(16));
  return x.bitwise_xor(key_high);
}

// Uniform numbers in (0, 1] for rows' keys [R] (uint64 bit patterns in int64) and tokens 0..V-1.
torch::Tensor UniformNoise(const std::vector<uint64_t>& keys, int64_t vocab,
                           const torch::Device& device) {
  std::vector<int64_t> low, high;
  for (uint64_t k : keys) {
    low.push_back(static_cast<int64_t>(k & 0xFFFFFFFFu));
    high.push_back(static_cast<int64_t>(k >> 32));
  }
  const auto on = torch::dtype(torch::kLong).device(device);
  const torch::Tensor key_low = torch::tensor(low, torch::kLong).to(device).unsqueeze(1);
  const torch::Tensor key_high = torch::tensor(high, torch::kLong).to(device).unsqueeze(1);
  torch::Tensor x =
      torch::arange(vocab, on).mul(int64_t{0x9E3779B9}).bitwise_and(kLow32).unsqueeze(0);
  x = x.bitwise_xor(key_low);
  x = HashRound(HashRound(x, key_high), key_high);
  return (x.to(torch::kDouble) + 0.5) * (1.0 / 4294967296.0);
}

}  // namespace

std::vector<int64_t> Sampler::SampleBatchWithTensorOps(
    const torch::Tensor& logits_in, absl::Span<Sampler* const> samplers,
    absl::Span<const absl::Span<const int32_t>> histories) {
  TORCH_CHECK(logits_in.dim() == 2 && logits_in.size(0) == static_cast<int64_t>(samplers.size()) &&
                  histories.size() == samplers.size(),
              "SampleBatch: one sampler and one history per row of logits");
  torch::NoGradGuard no_grad;
  const int64_t rows = logits_in.size(0), vocab = logits_in.size(1);
  const torch::Device device = logits_in.device();
  torch::Tensor logits = logits_in.detach().to(torch::kFloat, false, /*copy=*/true);
  std::vector<float> inverse_temperature(rows, 1.0f), top_p(rows, 2.0f);
  std::vector<int64_t> top_k(rows, 0), sampled;
  std::vector<uint64_t> keys(rows, 0);
  int64_t max_k = 0;
  for (int64_t b = 0; b < rows; ++b) {
    Sampler& s = *samplers[b];
    const SamplingParams& p = s.params_;
    if (p.repetition_penalty != 1.0 && !histories[b].empty()) {
      std::vector<int64_t> ids;
      for (int32_t id : histories[b]) {
        if (id >= 0 && id < vocab) ids.push_back(id);
      }
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      if (!ids.empty()) {
        const torch::Tensor index = torch::tensor(ids, torch::kLong).to(device);
        torch::Tensor row = logits.select(0, b);
        const torch::Tensor picked = row.index_select(0, index);
        row.index_copy_(
            0, index,
            torch::where(picked > 0, picked / p.repetition_penalty, picked * p.repetition_penalty));
      }
    }
    if (p.temperature == 0.0) continue;  // greedy: the argmax below
    sampled.push_back(b);
    inverse_temperature[b] = static_cast<float>(1.0 / p.temperature);
    if (p.top_k > 0 && p.top_k < vocab) top_k[b] = p.top_k;
    max_k = std::max(max_k, top_k[b]);
    if (p.top_p < 1.0) top_p[b] = static_cast<float>(p.top_p);
    s.rng_();  // the CPU path's block key, so both paths advance a sampler alike
    keys[b] = s.rng_();
  }
  std::vector<int64_t> out(rows, -1);
  torch::Tensor chosen = logits.argmax(1);
  if (!sampled.empty()) {
    const auto column = [&](const auto& values, torch::Dtype dtype) {
      return torch::tensor(values, dtype).to(device).unsqueeze(1);
    };
    torch::Tensor scaled = logits * column(inverse_temperature, torch::kFloat);
    if (max_k > 0) {
      // The k-th largest logit of each row (ties with it stay); rows without top-k keep all.
      const torch::Tensor top = std::get<0>(scaled.topk(max_k, 1));
      std::vector<int64_t> at(rows);
      for (int64_t b = 0; b < rows; ++b) at[b] = std::max<int64_t>(top_k[b], 1) - 1;
      torch::Tensor kth = top.gather(1, column(at, torch::kLong));
      const torch::Tensor without = column(top_k, torch::kLong).eq(0);
      kth.masked_fill_(without, -std::numeric_limits<float>::infinity());
      scaled.masked_fill_(scaled < kth, -std::numeric_limits<float>::infinity());
    }
    if (*std::min_element(top_p.begin(), top_p.end()) < 1.0f) {
      // A token stays while the mass strictly above it is below top_p.
      const auto sorted = scaled.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
      const torch::Tensor probs = torch::softmax(std::get<0>(sorted), 1);
      const torch::Tensor above = probs.cumsum(1) - probs;
      const torch::Tensor drop_sorted = above >= column(top_p, torch::kFloat);
      const torch::Tensor drop =
          torch::zeros_like(drop_sorted).scatter(1, std::get<1>(sorted), drop_sorted);
      scaled.masked_fill_(drop, -std::numeric_limits<float>::infinity());
    }
    const torch::Tensor u = UniformNoise(keys, vocab, device);
    const torch::Tensor gumbel = -torch::log(-torch::log1p(-u));
    const torch::Tensor drawn = (scaled.to(torch::kDouble) + gumbel).argmax(1);
    std::vector<int64_t> is_sampled(rows, 0);
    for (int64_t b : sampled) is_sampled[b] = 1;
    const torch::Tensor use_drawn =
        torch::tensor(is_sampled, torch::kLong).to(device).to(torch::kBool);
    chosen = torch::where(use_drawn, drawn, chosen);
  }
  const torch::Tensor ids = chosen.to(torch::kCPU).contiguous();
  for (int64_t b = 0; b < rows; ++b) out[b] = ids.data_ptr<int64_t>()[b];
  return out;
}

}  // namespace copyforge
