#include "trainer/common/openblas.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace copyforge {

void ReexecWithOpenBlasCoreType(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const char* mode = std::getenv("COPYFORGE_BLAS_CORETYPE");
  if (mode != nullptr && std::strcmp(mode, "keep") == 0) return;
  const char* core = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    core = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    core = "Haswell";
  }
  if (core == nullptr) return;
  ::setenv("OPENBLAS_CORETYPE", core, 1);
  ::execv("/proc/self/exe", argv);
  // If the re-exec fails the process simply continues with the kernels OpenBLAS chose.
}

}  // namespace copyforge
