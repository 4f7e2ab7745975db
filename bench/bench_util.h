// Helpers shared by the benchmarks.
#ifndef COPYFORGE_BENCH_BENCH_UTIL_H_
#define COPYFORGE_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
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

// The memory read bandwidth `threads` threads reach together, in bytes per second: each sums
// its own contiguous part of a 1 GiB buffer (far beyond the caches; first touched by the same
// threads) with 64-bit integer adds in four chains; best of `passes`. This, not a one-thread
// memcpy, is what a decode step that reads every weight once on that many threads can reach.
inline double ReadBandwidth(int threads, int passes = 5) {
  threads = std::max(1, threads);
  const size_t n = (size_t{1} << 30) / sizeof(uint64_t);
  std::vector<uint64_t> buffer(n);
  auto parallel = [&](auto body) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] { body(n * t / threads, n * (t + 1) / threads, t); });
    }
    for (std::thread& th : pool) th.join();
  };
  parallel([&](size_t a, size_t b, int) {
    for (size_t i = a; i < b; ++i) buffer[i] = i;
  });
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    parallel([&](size_t a, size_t b, int t) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      size_t i = a;
      for (; i + 4 <= b; i += 4) {
        s0 += buffer[i];
        s1 += buffer[i + 1];
        s2 += buffer[i + 2];
        s3 += buffer[i + 3];
      }
      for (; i < b; ++i) s0 += buffer[i];
      sums[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
    });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s);
  }
  uint64_t total = 0;
  for (uint64_t v : sums) total += v;
  return best + static_cast<double>(total & 1) * 0;  // the sums stay observable
}

}  // namespace copyforge::bench

#endif  // COPYFORGE_BENCH_BENCH_UTIL_H_
