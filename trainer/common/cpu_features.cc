#include "trainer/common/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace copyforge {
namespace {

std::atomic<bool>& Avx512Enabled() {
  static std::atomic<bool> enabled([] {
    const char* off = std::getenv("COPYFORGE_DISABLE_AVX512");
    return __builtin_cpu_supports("avx512f") && !(off != nullptr && std::strcmp(off, "1") == 0);
  }());
  return enabled;
}

bool CpuHasVnni() {
  return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
}

std::atomic<bool>& VnniEnabled() {
  static std::atomic<bool> enabled(CpuHasVnni());
  return enabled;
}

}  // namespace

bool CpuHasBf16() {
  static const bool has = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) == 0) return line.find(" avx512_bf16") != std::string::npos;
    }
    return false;
  }();
  return has;
}

bool UseAvx512Kernels() { return Avx512Enabled().load(std::memory_order_relaxed); }

bool SetAvx512KernelsForTesting(bool enabled) {
  return Avx512Enabled().exchange(enabled && __builtin_cpu_supports("avx512f"));
}

bool UseVnniKernels() {
  return UseAvx512Kernels() && VnniEnabled().load(std::memory_order_relaxed);
}

bool SetVnniKernelsForTesting(bool enabled) {
  return VnniEnabled().exchange(enabled && CpuHasVnni());
}

}  // namespace copyforge
