// Gradient all-reduce between two local ranks over Gloo (loopback TCP):
//  1. one raw all-reduce of a flat tensor holding every gradient byte (the baseline);
//  2. the bucketed GradientReducer driven by autograd hooks, with no model compute to hide behind;
//  3. a real GPT-2 forward/backward with and without the reducer armed: how much of (2) the
//     backward pass hides, and what the step costs over compute alone.
// Rank 0 starts rank 1 as a second process of this binary and prints the figures.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "trainer/common/openblas.h"
#include "trainer/dist/communicator.h"
#include "trainer/dist/gradient_reducer.h"
#include "trainer/model/gpt2.h"
#include "trainer/model/gpt2_config.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool Check(const absl::Status& s, const char* what) {
  if (s.ok()) return true;
  std::fprintf(stderr, "allreduce_bench: %s: %s\n", what, std::string(s.message()).c_str());
  return false;
}

void ClearGrads(const std::vector<torch::Tensor>& params) {
  for (const torch::Tensor& p : params) {
    const_cast<torch::Tensor&>(p).mutable_grad() = torch::Tensor();
  }
}

}  // namespace

int main(int argc, char** argv) {
  copyforge::ReexecWithOpenBlasCoreType(argv);
  CLI::App app{
      "Bucketed gradient all-reduce vs one raw Gloo all-reduce, and overlap with backward"};
  std::string model_yaml = "configs/model/small.yaml";
  double bucket_mb = 25;
  int iterations = 5, rank = 0, port = 0;
  int64_t seq = 128, batch = 4;
  int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2);
  app.add_option("--model-config", model_yaml)->capture_default_str();
  app.add_option("--bucket-mb", bucket_mb)->capture_default_str();
  app.add_option("--iterations", iterations)->capture_default_str();
  app.add_option("--seq-len", seq)->capture_default_str();
  app.add_option("--batch", batch, "Sequences per rank")->capture_default_str();
  app.add_option("--threads", threads, "Intra-op threads per rank")->capture_default_str();
  app.add_option("--rank", rank, "Internal: set for the second rank")->group("");
  app.add_option("--port", port, "Internal: rendezvous port")->group("");
  CLI11_PARSE(app, argc, argv);

  pid_t peer = -1;
  if (rank == 0) {
    port = 31000 + static_cast<int>(::getpid() % 2000);
    peer = ::fork();
    if (peer == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      std::vector<std::string> args(argv, argv + argc);
      args.insert(args.end(), {"--rank", "1", "--port", std::to_string(port)});
      std::vector<char*> cargs;
      for (std::string& a : args) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      ::execv("/proc/self/exe", cargs.data());
      std::_Exit(127);
    }
  }
  torch::set_num_threads(threads);
  auto config = copyforge::Gpt2Config::FromYamlFile(model_yaml);
  if (!Check(config.status(), model_yaml.c_str())) return 1;
  copyforge::CommunicatorOptions o;
  o.rank = rank;
  o.world = 2;
  o.store_port = port;
  o.timeout = std::chrono::milliseconds(60000);
  auto comm = copyforge::CreateCommunicator(o);
  if (!Check(comm.status(), "rendezvous")) return 1;
  copyforge::Communicator& c = **comm;

  torch::manual_seed(1);
  copyforge::Gpt2 model(*config);
  model->InitWeights(1);
  std::vector<torch::Tensor> params = model->parameters();
  int64_t numel = 0;
  for (const torch::Tensor& p : params) numel += p.numel();
  const double bytes = static_cast<double>(numel) * sizeof(float);
  const double bus = 2.0 * (c.world() - 1) / c.world();  // ring all-reduce traffic factor
  if (rank == 0) {
    std::printf(
        "allreduce_bench: %s (%.1fM parameters, %.0f MB of float32 gradients), 2 ranks x %d "
        "threads, gloo over loopback, %d iterations\n",
        model_yaml.c_str(), numel / 1e6, bytes / 1e6, threads, iterations);
  }

  // 1. One raw all-reduce of every gradient byte.
  torch::Tensor flat = torch::ones({numel});
  if (!Check(c.AllReduceSum(flat), "warm-up")) return 1;
  if (!Check(c.Barrier(), "barrier")) return 1;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    if (!Check(c.AllReduceSum(flat), "raw all-reduce")) return 1;
  }
  const double raw = Seconds(start) / iterations;

  // 2. Bucketed, from autograd hooks, with a backward that does almost no work.
  copyforge::GradientReducer reducer(&c, params, static_cast<int64_t>(bucket_mb * 1e6));
  // The same backward unarmed is timed too and subtracted, so only the reducer's work (copies
  // into buckets, all-reduces, copies back into .grad) is counted.
  auto bucketed_pass = [&](bool armed) -> double {
    ClearGrads(params);
    torch::Tensor loss = torch::zeros({});
    for (const torch::Tensor& p : params) loss = loss + p.sum();
    const auto begin = std::chrono::steady_clock::now();
    if (armed) reducer.Arm();
    loss.backward();
    if (armed && !Check(reducer.Finish(), "bucketed all-reduce")) std::exit(1);
    return Seconds(begin);
  };
  bucketed_pass(true);
  double bucketed = 0;
  for (int i = 0; i < iterations; ++i) {
    bucketed += bucketed_pass(true) - bucketed_pass(false);
  }
  bucketed /= iterations;

  // 3. Real forward/backward: compute alone, then with the reducer armed.
  torch::Tensor ids = torch::randint(config->vocab_size, {batch, seq + 1}, torch::kLong);
  torch::Tensor input = ids.narrow(1, 0, seq), target = ids.narrow(1, 1, seq);
  auto step = [&](bool reduce, double* wait) {
    ClearGrads(params);
    torch::Tensor loss = copyforge::Gpt2Impl::Loss(model->forward(input), target);
    if (reduce) reducer.Arm();
    loss.backward();
    if (reduce) {
      if (!Check(reducer.Finish(), "overlapped all-reduce")) std::exit(1);
      *wait += reducer.last().wait_seconds;
    }
  };
  double unused = 0, wait = 0;
  step(false, &unused);
  if (!Check(c.Barrier(), "barrier")) return 1;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) step(false, &unused);
  const double compute = Seconds(start) / iterations;
  step(true, &unused);
  if (!Check(c.Barrier(), "barrier")) return 1;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) step(true, &wait);
  const double overlapped = Seconds(start) / iterations;
  wait /= iterations;

  if (rank == 0) {
    const int buckets = reducer.last().buckets;
    const double largest = model->wte->weight.numel() * sizeof(float);
    std::printf(
        "  raw all-reduce, one %.0f MB tensor   %7.1f ms   algbw %6.2f GB/s   busbw %6.2f GB/s\n",
        bytes / 1e6, raw * 1e3, bytes / raw / 1e9, bus * bytes / raw / 1e9);
    std::printf(
        "  bucketed (%d x <=%.0f MB, hooks)    %7.1f ms   algbw %6.2f GB/s   busbw %6.2f GB/s   "
        "ratio %.2fx of raw bandwidth\n",
        buckets, bucket_mb, bucketed * 1e3, bytes / bucketed / 1e9, bus * bytes / bucketed / 1e9,
        raw / bucketed);
    const double hidden = std::clamp(1.0 - wait / bucketed, 0.0, 1.0);
    const double added = overlapped - compute;
    std::printf(
        "  forward+backward seq %lld x batch %lld: compute alone %.1f ms, with all-reduce %.1f ms\n"
        "    exposed wait after backward %.1f ms -> %.0f%% of the all-reduce time hidden behind "
        "backward\n"
        "    step time added by communication %.1f ms = %.2fx the all-reduce alone (above 1x: the "
        "Gloo threads compete with compute for the cores)\n",
        static_cast<long long>(seq), static_cast<long long>(batch), compute * 1e3, overlapped * 1e3,
        wait * 1e3, 100.0 * hidden, added * 1e3, added / bucketed);
    std::printf(
        "  (the tied wte/lm_head gradient, %.0f MB = %.0f%% of the bytes, is complete only when "
        "backward reaches the embedding, so at most %.0f%% can be hidden)\n",
        largest / 1e6, 100.0 * largest / bytes, 100.0 * (1.0 - largest / bytes));
  }
  if (!Check(c.Barrier(), "final barrier")) return 1;
  if (peer > 0) {
    int status = 0;
    ::waitpid(peer, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "allreduce_bench: rank 1 failed\n");
      return 1;
    }
  }
  return 0;
}
