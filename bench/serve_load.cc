// Closed-loop load against a running `copyforge serve`: for each concurrency, that many clients
// each send GenerateStream requests back to back for a fixed time, in rounds that alternate the
// levels (each level keeps its best round). Prints generated tokens/s,
// time to first token and request latency (p50/p99), the throughput ratio to concurrency 1, and
// each level's decode time per token beside the memory-bandwidth floor: the weight bytes in the
// served dtype over the read bandwidth of the server's thread count, measured in this run.
#include <grpcpp/grpcpp.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "serving.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct Result {
  double tokens_per_s = 0, ttft_p50 = 0, ttft_p99 = 0, latency_p50 = 0, latency_p99 = 0;
  double per_token_s = 0;      // decode time per token after the first (mean)
  double per_token_p99_s = 0;  // the 99th percentile of the requests' decode time per token
  int requests = 0, failures = 0;
  double bandwidth = 0;  // read bandwidth, the faster of right before and after the run (B/s)
};

Result Run(copyforge::v1::TextGeneration::Stub& stub, int concurrency, double seconds, int max_new,
           const std::string& prompt, float temperature) {
  std::mutex mu;
  std::vector<double> ttfts, latencies, per_token;
  std::atomic<int64_t> tokens{0};
  std::atomic<int> failures{0};
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&, c] {
      while (Clock::now() < end) {
        copyforge::v1::GenerateRequest req;
        req.set_prompt(prompt);
        req.mutable_sampling()->set_temperature(temperature);
        req.mutable_sampling()->set_seed(static_cast<uint64_t>(c));
        req.mutable_stopping()->set_max_new_tokens(static_cast<uint32_t>(max_new));
        req.mutable_stopping()->set_ignore_eos(true);
        grpc::ClientContext ctx;
        const auto t0 = Clock::now();
        auto reader = stub.GenerateStream(&ctx, req);
        copyforge::v1::GenerateStreamResponse m;
        double first = -1;
        int64_t got = 0;
        while (reader->Read(&m)) {
          if (first < 0 && m.token_ids_size() > 0) first = Seconds(t0, Clock::now());
          got += m.token_ids_size();
        }
        if (!reader->Finish().ok()) {
          ++failures;
          continue;
        }
        const double total = Seconds(t0, Clock::now());
        tokens += got;
        std::lock_guard<std::mutex> lock(mu);
        ttfts.push_back(first);
        latencies.push_back(total);
        if (got > 1) per_token.push_back((total - first) / static_cast<double>(got - 1));
      }
    });
  }
  for (auto& t : clients) t.join();
  Result r;
  r.tokens_per_s = static_cast<double>(tokens) / Seconds(start, Clock::now());
  r.ttft_p50 = Percentile(ttfts, 0.5);
  r.ttft_p99 = Percentile(ttfts, 0.99);
  r.latency_p50 = Percentile(latencies, 0.5);
  r.latency_p99 = Percentile(latencies, 0.99);
  double sum = 0;
  for (double v : per_token) sum += v;
  r.per_token_s = per_token.empty() ? 0 : sum / static_cast<double>(per_token.size());
  r.per_token_p99_s = Percentile(per_token, 0.99);
  r.requests = static_cast<int>(latencies.size());
  r.failures = failures;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Closed-loop GenerateStream load against a running copyforge serve"};
  std::string server;
  std::vector<int> concurrency = {1, 4, 16, 64};
  double seconds = 20;
  int rounds = 2;
  int max_new = 64;
  std::string prompt = "Product: stainless steel water bottle, 750 ml. Description:";
  app.add_option("--server", server, "HOST:PORT of copyforge serve")->required();
  app.add_option("--concurrency", concurrency, "Client counts to run")->capture_default_str();
  app.add_option("--seconds", seconds, "Time per concurrency level and round")
      ->capture_default_str();
  app.add_option("--rounds", rounds, "Rounds over all levels; each level reports its best")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-new-tokens", max_new)->capture_default_str();
  app.add_option("--prompt", prompt)->capture_default_str();
  float temperature = 0.8f;
  app.add_option("--temperature", temperature, "Sampling temperature (0: greedy)")
      ->capture_default_str();
  std::string json_path;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--threads", threads,
                 "The server's intra-op threads: the read bandwidth of the floor is measured with "
                 "this many")
      ->capture_default_str();
  app.add_option("--json", json_path,
                 "Also write the results (per level: concurrency, tokens/s, ms per token) here");
  CLI11_PARSE(app, argc, argv);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto stub = copyforge::v1::TextGeneration::NewStub(
      grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args));
  copyforge::v1::ModelInfo info;
  {
    grpc::ClientContext ctx;
    if (!stub->GetModelInfo(&ctx, copyforge::v1::GetModelInfoRequest(), &info).ok()) {
      std::fprintf(stderr, "serve_load: cannot reach %s\n", server.c_str());
      return 1;
    }
  }
  const double c = static_cast<double>(info.n_embd());
  const double params = 12.0 * static_cast<double>(info.n_layer()) * c * c +
                        static_cast<double>(info.vocab_size() + info.n_positions()) * c;
  const double bytes_per_param = info.dtype() == "int8"       ? 1
                                 : info.dtype() == "bfloat16" ? 2
                                                              : 4;  // int8: + scales
  const double weight_bytes = params * bytes_per_param;
  std::printf(
      "serve_load: %s, %lld layers x %lld wide (%.1fM parameters, %s), %u KV slots, "
      "%d new tokens per request, best of %d rounds of %.0f s per level\n",
      info.checkpoint().c_str(), static_cast<long long>(info.n_layer()),
      static_cast<long long>(info.n_embd()), params / 1e6, info.dtype().c_str(), info.max_batch(),
      max_new, rounds, seconds);
  // Each round runs every level once; a level keeps its best round (this machine's speed drifts
  // from minute to minute, and alternating keeps the levels' chances equal).
  std::vector<Result> best(concurrency.size());
  int failures = 0;
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < concurrency.size(); ++i) {
      // This machine's memory bandwidth drifts with its neighbours' load: each run is compared
      // with the bandwidth measured right around it, not with one taken minutes apart, and with
      // the faster of the two measurements (the stricter floor).
      const double before = copyforge::bench::ReadBandwidth(threads, 3);
      Result r = Run(*stub, concurrency[i], seconds, max_new, prompt, temperature);
      r.bandwidth = std::max(before, copyforge::bench::ReadBandwidth(threads, 3));
      failures += r.failures;
      if (r.tokens_per_s > best[i].tokens_per_s) best[i] = r;
      std::fprintf(stderr, "  round %d/%d, concurrency %d: %.1f tokens/s\n", round + 1, rounds,
                   concurrency[i], r.tokens_per_s);
    }
  }
  // The floor: a decode step reads every weight once (the KV cache and activations on top).
  double low = 0, high = 0;
  for (const Result& r : best) {
    low = low == 0 ? r.bandwidth : std::min(low, r.bandwidth);
    high = std::max(high, r.bandwidth);
  }
  const double base = best.front().tokens_per_s;
  std::printf("  %11s %12s %8s %10s %10s %10s %10s %8s %10s %10s %9s %8s\n", "concurrency",
              "tokens/s", "ratio", "TTFT p50", "TTFT p99", "lat p50", "lat p99", "failed",
              "ms/token", "TPOT p99", "floor ms", "floor x");
  for (size_t i = 0; i < concurrency.size(); ++i) {
    const Result& r = best[i];
    const double floor = weight_bytes / r.bandwidth;
    std::printf("  %11d %12.1f %7.2fx %9.3fs %9.3fs %9.3fs %9.3fs %8d %10.2f %10.2f %9.2f %7.2fx\n",
                concurrency[i], r.tokens_per_s, base > 0 ? r.tokens_per_s / base : 0, r.ttft_p50,
                r.ttft_p99, r.latency_p50, r.latency_p99, r.failures, r.per_token_s * 1e3,
                r.per_token_p99_s * 1e3, floor * 1e3, r.per_token_s / floor);
  }
  std::printf(
      "  floor: %.0f MB of %s weights / the read bandwidth of %d threads (a parallel sum over "
      "1 GiB), the faster of the measurements right before and right after the level's kept "
      "round: %.1f to %.1f GB/s; \"floor x\" = "
      "decode time per token / floor; TPOT p99: the 99th percentile of the requests' decode "
      "time per token, ms\n",
      weight_bytes / 1e6, info.dtype().c_str(), threads, low / 1e9, high / 1e9);
  std::printf("  failed requests over all rounds: %d\n", failures);
  if (!json_path.empty()) {
    if (FILE* f = std::fopen(json_path.c_str(), "w")) {
      std::fprintf(f, "{\"dtype\": \"%s\", \"failures\": %d, \"levels\": [", info.dtype().c_str(),
                   failures);
      for (size_t i = 0; i < concurrency.size(); ++i) {
        std::fprintf(f,
                     "%s{\"concurrency\": %d, \"tokens_per_s\": %.3f, \"ms_per_token\": %.4f, "
                     "\"tpot_p99_ms\": %.4f, \"ttft_p50_ms\": %.4f, \"floor_ms\": %.4f}",
                     i ? ", " : "", concurrency[i], best[i].tokens_per_s, best[i].per_token_s * 1e3,
                     best[i].per_token_p99_s * 1e3, best[i].ttft_p50 * 1e3,
                     weight_bytes / best[i].bandwidth * 1e3);
      }
      std::fprintf(f, "]}\n");
      std::fclose(f);
    }
  }
  return 0;
}
