// Helpers shared by the benchmarks.
#ifndef COPYFORGE_BENCH_BENCH_UTIL_H_
#define COPYFORGE_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>

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

}  // namespace copyforge::bench

#endif  // COPYFORGE_BENCH_BENCH_UTIL_H_
