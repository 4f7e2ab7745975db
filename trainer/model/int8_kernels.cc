#include "trainer/model/int8_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>

#include "trainer/model/kernel_util.h"

namespace copyforge {
namespace kernels {
namespace {

template <int ROWS>
__attribute__((target("avx512f"))) void QuadsAvx512Rows(const float* x, int64_t ldx,
                                                        const int8_t* w, int64_t in, float* acc) {
  __m512 a[ROWS][4];
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) a[r][i] = _mm512_setzero_ps();
  }
  for (int64_t q = 0; q < in / kQuad; ++q) {
    const int8_t* wq = w + q * kQuad * kGroup;
    for (int i = 0; i < 4; ++i) {
      const __m512i raw = _mm512_loadu_si512(wq + 64 * i);
      const __m512 wj[4] = {_mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(raw, 24), 24)),
                            _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(raw, 16), 24)),
                            _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(raw, 8), 24)),
                            _mm512_cvtepi32_ps(_mm512_srai_epi32(raw, 24))};
      for (int r = 0; r < ROWS; ++r) {
        const float* xq = x + r * ldx + q * kQuad;
        for (int j = 0; j < 4; ++j) {
          a[r][i] = _mm512_fmadd_ps(_mm512_set1_ps(xq[j]), wj[j], a[r][i]);
        }
      }
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(acc + r * kGroup + 16 * i, a[r][i]);
  }
}

template <int ROWS, int VECS, int COL0>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void QuadsVnniRows(
    const uint8_t* hi, const uint8_t* lo, int64_t ldx, const int8_t* w, int64_t in,
    const int32_t* sums, const float* row_scales, float* acc) {
  // VECS x 16 columns from column COL0 of the group: 4 x 16 for up to 3 rows, two halves of
  // 2 x 16 for up to 6 (the same exact sums either way, so a row's result does not depend on it).
  __m512i h[ROWS][VECS], l[ROWS][VECS];
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < VECS; ++i) h[r][i] = l[r][i] = _mm512_setzero_si512();
  }
  for (int64_t q = 0; q < in / kQuad; ++q) {
    const int8_t* wq = w + q * kQuad * kGroup + COL0 * kQuad;
    __m512i wv[VECS];
    for (int i = 0; i < VECS; ++i) wv[i] = _mm512_loadu_si512(wq + 64 * i);
    for (int r = 0; r < ROWS; ++r) {
      int32_t xh, xl;
      std::memcpy(&xh, hi + r * ldx + q * kQuad, sizeof(xh));
      std::memcpy(&xl, lo + r * ldx + q * kQuad, sizeof(xl));
      const __m512i vh = _mm512_set1_epi32(xh), vl = _mm512_set1_epi32(xl);
      for (int i = 0; i < VECS; ++i) {
        h[r][i] = _mm512_dpbusd_epi32(h[r][i], vh, wv[i]);
        l[r][i] = _mm512_dpbusd_epi32(l[r][i], vl, wv[i]);
      }
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    const __m512 scale = _mm512_set1_ps(row_scales[r]);
    for (int i = 0; i < VECS; ++i) {
      const __m512i offset = _mm512_slli_epi32(_mm512_loadu_si512(sums + COL0 + 16 * i), 7);
      const __m512 high = _mm512_cvtepi32_ps(_mm512_sub_epi32(h[r][i], offset));
      const __m512 v = _mm512_fmadd_ps(high, _mm512_set1_ps(256.0f), _mm512_cvtepi32_ps(l[r][i]));
      _mm512_storeu_ps(acc + r * kGroup + COL0 + 16 * i, _mm512_mul_ps(v, scale));
    }
  }
}

template <int R>
struct QuadsAvx512Fn {
  static constexpr auto fn = QuadsAvx512Rows<R>;
};

// One row: returns its scale. AVX-512 (the VNNI kernel's CPUs have it); rounds to nearest even
// like std::nearbyint.
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) float QuantizeRow(const T* row, int64_t ld,
                                                                       uint8_t* hi, uint8_t* lo) {
  __m512 largest = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int64_t k = 0; k < ld; k += 16) {
    const __mmask16 m = TailMask(ld - k);
    const __m512 a = _mm512_abs_ps(Load16(row + k, m));
    largest = _mm512_max_ps(largest, a);
    // NaN compares unordered, infinity above the largest float: both are "not <= max".
    bad |= _mm512_mask_cmp_ps_mask(m, a, _mm512_set1_ps(std::numeric_limits<float>::max()),
                                   _CMP_NLE_UQ);
  }
  const float top = _mm512_reduce_max_ps(largest);
  if (bad != 0 || top == 0) {
    std::memset(hi, 128, static_cast<size_t>(ld));
    std::memset(lo, 0, static_cast<size_t>(ld));
    return bad != 0 ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
  }
  const __m512 inv = _mm512_set1_ps(32767.0f / top);
  for (int64_t k = 0; k < ld; k += 16) {
    const __mmask16 m = TailMask(ld - k);
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(Load16(row + k, m), inv));
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-32767)), _mm512_set1_epi32(32767));
    const __m512i h = _mm512_add_epi32(_mm512_srai_epi32(q, 8), _mm512_set1_epi32(128));
    _mm512_mask_cvtepi32_storeu_epi8(hi + k, m, h);  // the low byte of each lane
    _mm512_mask_cvtepi32_storeu_epi8(lo + k, m, q);
  }
  return top / 32767.0f;
}

}  // namespace

template <typename T>
QuantizedRows QuantizeRows(const T* x, int64_t M, int64_t ld) {
  QuantizedRows q;
  q.hi.resize(static_cast<size_t>(M * ld));
  q.lo.resize(static_cast<size_t>(M * ld));
  q.scales.resize(static_cast<size_t>(M));
  at::parallel_for(0, M, 16, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      q.scales[m] = QuantizeRow(x + m * ld, ld, q.hi.data() + m * ld, q.lo.data() + m * ld);
    }
  });
  return q;
}
template QuantizedRows QuantizeRows(const float*, int64_t, int64_t);
template QuantizedRows QuantizeRows(const c10::BFloat16*, int64_t, int64_t);

void QuadsPortable(const float* x, int64_t ldx, int rows, const int8_t* w, int64_t in, float* acc) {
  std::fill(acc, acc + rows * kGroup, 0.0f);
  for (int64_t q = 0; q < in / kQuad; ++q) {
    const int8_t* wq = w + q * kQuad * kGroup;
    for (int r = 0; r < rows; ++r) {
      const float* xq = x + r * ldx + q * kQuad;
      float* a = acc + r * kGroup;
      for (int64_t j = 0; j < kGroup; ++j) {
        for (int64_t i = 0; i < kQuad; ++i) a[j] += xq[i] * Widen(wq[j * kQuad + i]);
      }
    }
  }
}

void QuadsAvx512(const float* x, int64_t ldx, int rows, const int8_t* w, int64_t in, float* acc) {
  PickRows<QuadsAvx512Fn>(rows)(x, ldx, w, in, acc);
}

void QuadsVnni(const uint8_t* hi, const uint8_t* lo, int64_t ldx, int rows, const int8_t* w,
               int64_t in, const int32_t* sums, const float* row_scales, float* acc) {
  switch (rows) {
    case 1:
      return QuadsVnniRows<1, 4, 0>(hi, lo, ldx, w, in, sums, row_scales, acc);
    case 2:
      return QuadsVnniRows<2, 4, 0>(hi, lo, ldx, w, in, sums, row_scales, acc);
    case 3:
      return QuadsVnniRows<3, 4, 0>(hi, lo, ldx, w, in, sums, row_scales, acc);
    case 4:
      QuadsVnniRows<4, 2, 0>(hi, lo, ldx, w, in, sums, row_scales, acc);
      return QuadsVnniRows<4, 2, 32>(hi, lo, ldx, w, in, sums, row_scales, acc);
    case 5:
      QuadsVnniRows<5, 2, 0>(hi, lo, ldx, w, in, sums, row_scales, acc);
      return QuadsVnniRows<5, 2, 32>(hi, lo, ldx, w, in, sums, row_scales, acc);
    default:
      QuadsVnniRows<kVnniRows, 2, 0>(hi, lo, ldx, w, in, sums, row_scales, acc);
      return QuadsVnniRows<kVnniRows, 2, 32>(hi, lo, ldx, w, in, sums, row_scales, acc);
  }
}

}  // namespace kernels
}  // namespace copyforge
