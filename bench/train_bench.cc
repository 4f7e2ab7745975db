// Training throughput (tokens/s) and MFU of copyforge's trainer against the same GPT-2, optimizer,
// shapes and thread count in eager PyTorch (Debian's python3-torch, same ATen), measured in one
// run.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "nlohmann/json.hpp"
#include "trainer/common/openblas.h"
#include "trainer/data/prepare.h"
#include "trainer/data/sample_corpus.h"
#include "trainer/model/gpt2_config.h"
#include "trainer/train/trainer.h"

namespace {

std::string RunPython(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // The same OpenBLAS kernels for us and for the Python baseline, which inherits the variable.
  copyforge::ReexecWithOpenBlasCoreType(argv);
  CLI::App app{"copyforge train vs eager PyTorch: tokens/s and MFU"};
  std::string model_yaml = "configs/model/small.yaml", tokenizer, source = ".";
  int64_t seq = 256, batch = 8, steps = 8;
  int rounds = 3;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  app.add_option("--model-config", model_yaml)->capture_default_str();
  app.add_option("--tokenizer", tokenizer, "GPT-2 tokenizer directory")->required();
  app.add_option("--source-dir", source)->capture_default_str();
  app.add_option("--seq-len", seq)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--steps", steps, "Timed steps")->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--rounds", rounds, "Alternating rounds of each side; the best counts")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto mc = copyforge::Gpt2Config::FromYamlFile(model_yaml);
  if (!mc.ok()) return 1;
  const std::string work = "/tmp/copyforge-train-bench";
  std::filesystem::remove_all(work);
  copyforge::SampleCorpusOptions corpus;
  corpus.records = 3000;
  copyforge::PrepareOptions p;
  p.inputs = {{work + "/data/amazon2023/*", copyforge::Format::kAuto},
              {work + "/data/yelp/*", copyforge::Format::kAuto}};
  p.tokenizer = tokenizer;
  p.out = work + "/shards";
  p.show_progress = false;
  if (!copyforge::WriteSampleCorpus(work + "/data", corpus, false, nullptr).ok() ||
      !copyforge::RunPrepare(p).ok()) {
    std::fprintf(stderr, "train_bench: could not prepare data\n");
    return 1;
  }
  std::printf(
      "train_bench: %s (%.1fM parameters), seq %lld x batch %lld, %d threads, best of %d rounds of "
      "%lld timed steps\n",
      model_yaml.c_str(), mc->NumParameters() / 1e6, static_cast<long long>(seq),
      static_cast<long long>(batch), threads, rounds, static_cast<long long>(steps));
  const double flops_per_token = mc->TrainingFlopsPerToken(seq);
  double eager_fp32 = 0;
  for (const char* precision : {"fp32", "bf16"}) {
    copyforge::TrainConfig c;
    c.model = model_yaml;
    c.data = work + "/shards";
    c.seq_len = seq;
    c.batch_size = batch;
    c.steps = steps * rounds + 2;
    c.eval_interval = 0;
    c.out = work + "/run";
    c.precision = precision;
    c.threads = threads;
    c.verify_data = false;
    auto t = copyforge::Trainer::Create(c);
    if (!t.ok()) {
      std::fprintf(stderr, "train_bench: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    for (int i = 0; i < 2; ++i) (void)(*t)->Step();  // warm-up
    char cmd[1024];
    std::snprintf(cmd, sizeof cmd,
                  "/usr/bin/python3 %s/bench/train_baseline.py %lld %lld %lld %lld %lld %lld %lld "
                  "%lld %d %s %g",
                  source.c_str(), static_cast<long long>(mc->n_layer),
                  static_cast<long long>(mc->n_head), static_cast<long long>(mc->n_embd),
                  static_cast<long long>(mc->n_positions), static_cast<long long>(mc->vocab_size),
                  static_cast<long long>(seq), static_cast<long long>(batch),
                  static_cast<long long>(steps), threads, precision, mc->resid_pdrop);
    // Rounds alternate between us and the baseline so that a slow spell of the machine hits
    // both; the best round of each counts.
    double ours = 0, eager = 0;
    for (int round = 0; round < rounds; ++round) {
      const auto start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < steps; ++i) (void)(*t)->Step();
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ours = std::max(ours, static_cast<double>(steps * batch * seq) / secs);
      nlohmann::json base = nlohmann::json::parse(RunPython(cmd), nullptr, false);
      if (base.is_discarded()) {
        std::fprintf(stderr, "train_bench: the PyTorch baseline failed (%s)\n", cmd);
        return 1;
      }
      eager = std::max(eager, base["tokens_per_s"].get<double>());
    }
    if (std::string(precision) == "fp32") eager_fp32 = eager;
    std::printf(
        "  %-5s copyforge %8.0f tok/s (%.0f GFLOP/s of model FLOPs)   eager PyTorch %8.0f tok/s   "
        "ratio %.2fx",
        precision, ours, ours * flops_per_token / 1e9, eager, ours / eager);
    if (std::string(precision) == "bf16") std::printf("   vs fp32 eager %.2fx", ours / eager_fp32);
    std::printf("\n");
  }
  std::filesystem::remove_all(work);
  return 0;
}
