// One decode step of the serving engine in process, without gRPC: attention over the slot pool
// (in-place kernel vs gathering the rows' caches with tensor operations, the baseline measured in
// the same run), the whole model step (for packed weights: the fused one-region step against the
// layer-by-layer step, timed alternately), and batched sampling, at each batch size. Prints the
// tokens/s of step + sampling, the ratio to the first batch size, and the step against its read
// floor: the weight bytes over the read bandwidth of the same threads, a pass of which is timed
// alternately with the step (best of each).
#include <CLI/CLI.hpp>

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "bench/bench_util.h"
#include "trainer/common/cpu_features.h"
#include "trainer/common/openblas.h"
#include "trainer/model/decode_step.h"
#include "trainer/model/gpt2.h"
#include "trainer/model/sampler.h"
#include "trainer/model/slot_attention.h"

int main(int argc, char** argv) {
  using namespace copyforge;
  ReexecWithOpenBlasCoreType(argv);
  CLI::App app{"One serving decode step in process: slot attention, model step, sampling"};
  std::string model_config = "configs/model/small.yaml", dtype = "auto";
  std::vector<int64_t> batches = {1, 4, 16};
  int64_t context = 100;
  int iterations = 20;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  app.add_option("--model-config", model_config)->capture_default_str();
  app.add_option("--dtype", dtype, "float32, bfloat16, int8 (weight-only) or auto")
      ->capture_default_str();
  app.add_option("--batch", batches, "Sequences per step")->capture_default_str();
  app.add_option("--context", context, "Positions already in each sequence's cache")
      ->capture_default_str();
  app.add_option("--iterations", iterations, "Timed repetitions (best kept)")
      ->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto config = Gpt2Config::FromYamlFile(model_config);
  if (!config.ok()) {
    std::fprintf(stderr, "decode_bench: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (dtype == "auto") dtype = CpuHasBf16() ? "bfloat16" : "float32";
  const bool int8 = dtype == "int8";
  const torch::ScalarType type =
      dtype == "bfloat16" || (int8 && CpuHasBf16()) ? torch::kBFloat16 : torch::kFloat;
  const Gpt2Config& c = *config;
  if (context + 1 >= c.n_positions) context = c.n_positions / 2;
  torch::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  Gpt2 model(c);
  model->InitWeights(1);
  model->eval();
  if (int8) model->PackInt8();
  model->to(type);
  if (type == torch::kBFloat16 && !int8) model->PackBf16();
  const int64_t max_batch = *std::max_element(batches.begin(), batches.end());
  KvCache pool = KvCache::Allocate(c, max_batch, c.n_positions, torch::TensorOptions().dtype(type));
  for (auto& t : pool.keys) t.normal_();
  for (auto& t : pool.values) t.normal_();
  std::printf(
      "decode_bench: %s (%lld layers x %lld wide, %s), %lld cached positions per sequence, %d "
      "threads, best of %d\n",
      model_config.c_str(), static_cast<long long>(c.n_layer), static_cast<long long>(c.n_embd),
      dtype.c_str(), static_cast<long long>(context), threads, iterations);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // as copyforge serve does
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  const double weight_bytes =
      bench::Gpt2Parameters(c.n_layer, c.n_embd, c.vocab_size, c.n_positions) *
      bench::BytesPerParameter(dtype);
  bench::ReadMeter meter(threads);
  std::printf("  %5s %14s %14s %8s %10s %10s %8s %10s %12s %8s %9s %9s %8s\n", "batch",
              "attn gather", "attn slots", "speedup", "layered", "step", "fused x", "sampling",
              "tokens/s", "ratio", "step*", "floor", "floor x");
  const bool fused_default = UseFusedDecode();
  double base = 0;
  for (int64_t B : batches) {
    std::vector<int64_t> slots, positions, tokens;
    for (int64_t b = 0; b < B; ++b) {
      slots.push_back(max_batch - 1 - b);  // not in row order, as in a running server
      positions.push_back(context + b % 8);
      tokens.push_back(100 + b);
    }
    SlotBatch batch;
    batch.slots = torch::tensor(slots, torch::kLong);
    batch.positions = torch::tensor(positions, torch::kLong);
    batch.max_length = *std::max_element(positions.begin(), positions.end()) + 1;
    const torch::Tensor qkv = torch::randn({B, 3 * c.n_embd}).to(type);
    auto attention = [&](bool gather) {
      for (int64_t l = 0; l < c.n_layer; ++l) {
        if (gather) {
          SlotDecodeAttentionReference(qkv, pool.keys[l], pool.values[l], batch.slots,
                                       batch.positions, batch.max_length);
        } else {
          SlotDecodeAttention(qkv, pool.keys[l], pool.values[l], batch.slots, batch.positions);
        }
      }
    };
    const double gathered = bench::BestSeconds(iterations, [&] { attention(true); });
    const double in_place = bench::BestSeconds(iterations, [&] { attention(false); });
    const torch::Tensor input = torch::tensor(tokens, torch::kLong);
    torch::Tensor logits;
    const auto decode = [&](bool fused) {
      return [&, fused] {
        SetFusedDecodeForTesting(fused);
        logits = model->DecodeSlots(input, batch, &pool);
      };
    };
    // Without packed weights both are the layer-by-layer step.
    const auto [layered, step] =
        bench::BestSecondsInterleaved(iterations, decode(false), decode(fused_default));
    SamplingParams params;
    params.temperature = 0.8;
    std::vector<std::unique_ptr<Sampler>> samplers;
    std::vector<Sampler*> rows;
    const std::vector<int32_t> history(context, 11);
    std::vector<absl::Span<const int32_t>> histories;
    for (int64_t b = 0; b < B; ++b) {
      params.seed = static_cast<uint64_t>(b);
      samplers.push_back(std::make_unique<Sampler>(params));
      rows.push_back(samplers.back().get());
      histories.push_back(history);
    }
    const auto [step_again, pass_best] =
        bench::BestSecondsInterleaved(iterations, decode(fused_default), [&] { meter.Pass(); });
    const double floor = weight_bytes * pass_best / meter.bytes();
    const double sampling =
        bench::BestSeconds(iterations, [&] { Sampler::SampleBatch(logits, rows, histories); });
    const double tokens_per_s = static_cast<double>(B) / (step + sampling);
    if (base == 0) base = tokens_per_s;
    std::printf(
        "  %5lld %12.3fms %12.3fms %7.1fx %8.2fms %8.2fms %7.2fx %8.2fms %12.1f %7.2fx %7.2fms "
        "%7.2fms %7.2fx\n",
        static_cast<long long>(B), gathered * 1e3, in_place * 1e3, gathered / in_place,
        layered * 1e3, step * 1e3, layered / step, sampling * 1e3, tokens_per_s,
        tokens_per_s / base, step_again * 1e3, floor * 1e3, step_again / floor);
  }
  std::printf(
      "  floor: %.0f MB of %s weights / the read bandwidth of %d threads (a parallel sum over "
      "1 GiB, one pass timed alternately with the step, best of %d each); step*: the step in "
      "that alternation; floor x = step* / floor\n",
      weight_bytes / 1e6, dtype.c_str(), threads, iterations);
  return 0;
}
