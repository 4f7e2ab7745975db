// Shared pieces of the CPU kernels behind PackedLinear (trainer/model/packed_linear.h) and
// RowLayerNorm: the packed group width, row-count dispatch, and 16-lane loads and stores of
// float32 and bfloat16. Internal to trainer/model.
#ifndef COPYFORGE_TRAINER_MODEL_KERNEL_UTIL_H_
#define COPYFORGE_TRAINER_MODEL_KERNEL_UTIL_H_

#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>

// GCC 12 flags the intentionally undefined vectors inside its own AVX-512 intrinsics (in the
// kernels' translation units, which include this).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace copyforge {
namespace kernels {

constexpr int64_t kGroup = 64;  // output columns per packed group
constexpr int kMaxRows = 6;     // rows per pass: 6 x 4 accumulators + 4 weight registers
constexpr int64_t kPair = 2;    // bfloat16 weights: input positions per 32-bit lane

inline float Widen(int8_t v) { return static_cast<float>(v); }
inline float Widen(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// The kernel of `rows` rows (1 .. kMaxRows) for one template family.
template <template <int> class F>
auto PickRows(int rows) {
  switch (rows) {
    case 1:
      return F<1>::fn;
    case 2:
      return F<2>::fn;
    case 3:
      return F<3>::fn;
    case 4:
      return F<4>::fn;
    case 5:
      return F<5>::fn;
    default:
      return F<6>::fn;
  }
}
// The lanes of 16 that hold values when `left` values remain (all 16 when at least 16 do).
inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

__attribute__((target("avx512f"))) inline __m512 Load16(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 Load16(const c10::BFloat16* p,
                                                                          __mmask16 m) {
  const __m256i raw = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}
__attribute__((target("avx512f"))) inline void Store16(float* p, __m512 v, __mmask16 m) {
  _mm512_mask_storeu_ps(p, m, v);
}
// Round to nearest even, as c10::BFloat16 does (no NaN reaches here from finite weights).
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void Store16(c10::BFloat16* p, __m512 v,
                                                                         __mmask16 m) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(rounded));
}

// exp(x) for 16 lanes: 2^n * e^r with |r| <= ln2 / 2 and a degree-6 polynomial (relative error
// about 1e-7 over the float range).
__attribute__((target("avx512f"))) inline __m512 Exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.4426950408889634f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline float Load(const float* p) { return *p; }
inline float Load(const c10::BFloat16* p) { return static_cast<float>(*p); }
inline void Store(float* dst, float v) { *dst = v; }
inline void Store(c10::BFloat16* dst, float v) { *dst = c10::BFloat16(v); }

}  // namespace kernels
}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_KERNEL_UTIL_H_
