// The fused LM head + cross-entropy (trainer/train/linear_cross_entropy.h) against the plain
// matmul + float32 cross_entropy, forward and backward, at the shapes of a training step.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

#include "bench/bench_util.h"
#include "trainer/common/openblas.h"
#include "trainer/train/autocast.h"
#include "trainer/train/linear_cross_entropy.h"

int main(int argc, char** argv) {
  copyforge::ReexecWithOpenBlasCoreType(argv);
  CLI::App app{"Fused LM head + cross-entropy vs matmul + cross_entropy"};
  int64_t tokens = 2048, embd = 384, vocab = 50257;
  int iterations = 3;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<int64_t> chunks = {16, 32, 64, 128, 256, 512};
  app.add_option("--tokens", tokens)->capture_default_str();
  app.add_option("--embd", embd)->capture_default_str();
  app.add_option("--vocab", vocab)->capture_default_str();
  app.add_option("--iterations", iterations)->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--chunks", chunks, "Row chunk sizes to try")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  torch::Tensor hidden = torch::randn({tokens, embd}).requires_grad_(true);
  torch::Tensor weight = (torch::randn({vocab, embd}) * 0.02).requires_grad_(true);
  torch::Tensor targets = torch::randint(vocab, {tokens}, torch::kLong);
  std::printf("lce_bench: %lld tokens x %lld -> %lld vocabulary, %d threads, best of %d\n",
              static_cast<long long>(tokens), static_cast<long long>(embd),
              static_cast<long long>(vocab), threads, iterations);
  for (bool bf16 : {false, true}) {
    const torch::ScalarType compute = bf16 ? torch::kBFloat16 : torch::kFloat;
    auto reset = [&] {
      hidden.mutable_grad() = torch::Tensor();
      weight.mutable_grad() = torch::Tensor();
    };
    const double plain = copyforge::bench::BestSeconds(iterations, [&] {
      reset();
      copyforge::Bf16Autocast autocast(torch::kCPU, bf16);
      namespace F = torch::nn::functional;
      torch::Tensor logits = torch::mm(hidden, weight.t()).to(torch::kFloat);
      F::cross_entropy(logits, targets, F::CrossEntropyFuncOptions().reduction(torch::kSum))
          .backward();
    });
    std::printf("  %s plain matmul + cross_entropy   %7.1f ms\n", bf16 ? "bf16" : "fp32",
                plain * 1e3);
    for (int64_t chunk : chunks) {
      const double fused = copyforge::bench::BestSeconds(iterations, [&] {
        reset();
        copyforge::Bf16Autocast autocast(torch::kCPU, bf16);
        copyforge::LinearCrossEntropySum(hidden, weight, targets, -100, compute, chunk).backward();
      });
      std::printf("  %s fused, chunks of %4lld rows     %7.1f ms   %.2fx\n", bf16 ? "bf16" : "fp32",
                  static_cast<long long>(chunk), fused * 1e3, plain / fused);
    }
  }
  return 0;
}
