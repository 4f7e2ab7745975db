// Helpers shared by the benchmarks.
#ifndef COPYFORGE_BENCH_BENCH_UTIL_H_
#define COPYFORGE_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace copyforge::bench {

// Runs `fn` iterations + 1 times and returns the fastest of all but the first (a warm-up), in
// seconds: the best case is the least disturbed by the other tenants of a shared machine.
template <typename Fn>
double BestSeconds(int iterations, Fn fn) {
  double best = 1e30;
  for (int i = 0; i < iterations + 1; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) best = std::min(best, s);
  }
  return best;
}

// Two ways of doing the same work timed alternately (a, b, b, a, a, b, ...) so that both see the
// same phases of a shared machine; returns the fastest of each, warm-ups excluded, in seconds.
template <typename A, typename B>
std::pair<double, double> BestSecondsInterleaved(int iterations, A a, B b) {
  double best_a = 1e30, best_b = 1e30;
  const auto time = [](auto& fn) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (int i = 0; i < iterations + 1; ++i) {
    const bool a_first = i % 2 == 0;
    const double first = a_first ? time(a) : time(b);
    const double second = a_first ? time(b) : time(a);
    if (i == 0) continue;
    best_a = std::min(best_a, a_first ? first : second);
    best_b = std::min(best_b, a_first ? second : first);
  }
  return {best_a, best_b};
}

// GPT-2's parameters (blocks, token and position embeddings), which a decode step reads once
// each in the served dtype (the LM head is the token embedding); and that dtype's bytes per
// parameter (int8's per-column scales left out).
inline double Gpt2Parameters(int64_t layers, int64_t width, int64_t vocab, int64_t positions) {
  const double c = static_cast<double>(width);
  return 12.0 * static_cast<double>(layers) * c * c + static_cast<double>(vocab + positions) * c;
}
inline double BytesPerParameter(const std::string& dtype) {
  return dtype == "int8" ? 1 : dtype == "bfloat16" ? 2 : 4;
}

// The memory read bandwidth `threads` threads reach together: each sums its own contiguous part
// of a 1 GiB buffer (far beyond the caches; first touched by the same threads) with 64-bit
// integer adds in four chains. This, not a one-thread memcpy, is what a decode step that reads
// every weight once on that many threads can reach. The buffer is kept, so passes can be taken
// between other work (a benchmark samples the bandwidth in the same phases of a shared machine as
// what it compares with it).
class ReadMeter {
 public:
  explicit ReadMeter(int threads)
      : threads_(std::max(1, threads)),
        n_((size_t{1} << 30) / sizeof(uint64_t)),
        buffer_(new uint64_t[n_]) {  // not value-initialised: the threads touch it first
    Parallel([&](size_t a, size_t b, int) {
      for (size_t i = a; i < b; ++i) buffer_[i] = i;
    });
  }
  double bytes() const { return static_cast<double>(n_ * sizeof(uint64_t)); }
  // One pass over the buffer; returns its time in seconds.
  double Pass() {
    std::vector<uint64_t> sums(static_cast<size_t>(threads_));
    const auto start = std::chrono::steady_clock::now();
    Parallel([&](size_t a, size_t b, int t) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      size_t i = a;
      for (; i + 4 <= b; i += 4) {
        s0 += buffer_[i];
        s1 += buffer_[i + 1];
        s2 += buffer_[i + 2];
        s3 += buffer_[i + 3];
      }
      for (; i < b; ++i) s0 += buffer_[i];
      sums[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
    });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (uint64_t v : sums) sink_ += v;  // the sums stay observable
    return s;
  }

 private:
  template <typename Body>
  void Parallel(Body body) {
    const size_t n = n_, parts = static_cast<size_t>(threads_);
    std::vector<std::thread> pool;
    for (size_t t = 0; t < parts; ++t) {
      pool.emplace_back([&, t] { body(n * t / parts, n * (t + 1) / parts, static_cast<int>(t)); });
    }
    for (std::thread& th : pool) th.join();
  }

  int threads_;
  size_t n_;
  std::unique_ptr<uint64_t[]> buffer_;
  uint64_t sink_ = 0;
};

}  // namespace copyforge::bench

#endif  // COPYFORGE_BENCH_BENCH_UTIL_H_
