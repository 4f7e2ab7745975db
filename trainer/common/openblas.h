// OpenBLAS kernel selection for CPUs it does not recognise.
#ifndef COPYFORGE_TRAINER_COMMON_OPENBLAS_H_
#define COPYFORGE_TRAINER_COMMON_OPENBLAS_H_

namespace copyforge {

// OpenBLAS picks its kernels from CPUID when it is loaded, and on CPUs it does not know (such as
// virtualised Sapphire Rapids reporting "Intel Xeon Processor") it falls back to its slowest
// generic kernel: float32 matmul runs ~4x slower. When OPENBLAS_CORETYPE is unset, this sets it
// from the instruction sets the CPU reports (SkylakeX for AVX-512, Haswell for AVX2+FMA) and
// re-executes the program with the same arguments, since the library reads it only at load time.
// An explicit OPENBLAS_CORETYPE, or COPYFORGE_BLAS_CORETYPE=keep, leaves everything as it is.
// Returns only when no re-exec happened.
void ReexecWithOpenBlasCoreType(char** argv);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_OPENBLAS_H_
