// What the CPU offers the hand-written kernels (decode attention, sampling).
#ifndef COPYFORGE_TRAINER_COMMON_CPU_FEATURES_H_
#define COPYFORGE_TRAINER_COMMON_CPU_FEATURES_H_

namespace copyforge {

// True when the CPU reports avx512_bf16 (native bfloat16 dot products).
bool CpuHasBf16();

// Whether the AVX-512 kernels run: the CPU has AVX-512F and COPYFORGE_DISABLE_AVX512 was not set
// to 1 when the process started (the portable kernels run otherwise).
bool UseAvx512Kernels();
// Tests run both kernel families in one process; returns the previous setting.
bool SetAvx512KernelsForTesting(bool enabled);

// Whether the int8 kernels use AVX-512 VNNI's byte dot products: UseAvx512Kernels() and the CPU
// has avx512_vnni and avx512bw.
bool UseVnniKernels();
// Tests run the VNNI and the widening int8 kernels in one process; returns the previous setting.
bool SetVnniKernelsForTesting(bool enabled);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_CPU_FEATURES_H_
