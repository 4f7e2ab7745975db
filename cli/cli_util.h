// Helpers shared by the subcommands: error reporting and thread set-up.
#ifndef COPYFORGE_CLI_CLI_UTIL_H_
#define COPYFORGE_CLI_CLI_UTIL_H_

#include <string>

#include "absl/status/status.h"

namespace copyforge {

// Prints "copyforge <command>: <message>" on stderr and returns exit code 1 (0 when ok).
int ReportStatus(const std::string& command, const absl::Status& status);

// Sets libtorch's intra-op thread count; 0 means one per core.
void SetTorchThreads(int threads);

// OpenBLAS picks its kernels from CPUID when it is loaded, and on CPUs it does not know (such as
// virtualised Sapphire Rapids reporting "Intel Xeon Processor") it falls back to its slowest
// generic kernel: float32 matmul runs ~4x slower. When OPENBLAS_CORETYPE is unset, this sets it
// from the instruction sets the CPU reports (SkylakeX for AVX-512, Haswell for AVX2+FMA) and
// re-executes the binary, since the library reads it only at load time. Only the commands that
// spend their time in matrix products (eval, generate, init-model, ...) do this. An explicit
// OPENBLAS_CORETYPE, or COPYFORGE_BLAS_CORETYPE=keep, leaves everything as it is.
void MaybeReexecForBlas(char** argv);

}  // namespace copyforge

#endif  // COPYFORGE_CLI_CLI_UTIL_H_
