#include "trainer/model/packed_linear.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "trainer/common/cpu_features.h"

// GCC 12 flags the intentionally undefined vectors inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace copyforge {
namespace {

constexpr int64_t kGroup = 64;  // output columns per packed group
constexpr int kMaxRows = 6;     // rows per pass: 6 x 4 accumulators + 4 weight registers

inline float Widen(int8_t v) { return static_cast<float>(v); }
inline float Widen(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// rows x 64 outputs of one group from `x` (rows x in, float32) and the group's block. Portable.
void GroupScalar(const float* x, int64_t ldx, int rows, const int8_t* w, int64_t in, float* acc) {
  std::fill(acc, acc + rows * kGroup, 0.0f);
  for (int64_t k = 0; k < in; ++k) {
    const int8_t* wk = w + k * kGroup;
    for (int r = 0; r < rows; ++r) {
      const float xv = x[r * ldx + k];
      float* a = acc + r * kGroup;
      for (int64_t j = 0; j < kGroup; ++j) a[j] += xv * Widen(wk[j]);
    }
  }
}

// Sixteen weights widened to float32.
__attribute__((target("avx512f"))) inline __m512 Widen16(const int8_t* p) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

template <int ROWS>
__attribute__((target("avx512f"))) void GroupAvx512(const float* x, int64_t ldx, const int8_t* w,
                                                    int64_t in, float* acc) {
  __m512 a[ROWS][4];
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) a[r][i] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < in; ++k) {
    const int8_t* wk = w + k * kGroup;
    __m512 wv[4];
    for (int i = 0; i < 4; ++i) wv[i] = Widen16(wk + 16 * i);
    for (int r = 0; r < ROWS; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * ldx + k]);
      for (int i = 0; i < 4; ++i) a[r][i] = _mm512_fmadd_ps(xv, wv[i], a[r][i]);
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(acc + r * kGroup + 16 * i, a[r][i]);
  }
}

// bfloat16 weights are packed in pairs of input positions: position pair p of a group holds, for
// each of its 64 columns, the weights of positions 2p and 2p + 1 (128 values, 256 bytes), the
// operand layout of AVX-512 BF16's pair dot product.

// Portable.
void PairsScalar(const float* x, int64_t ldx, int rows, const uint16_t* w, int64_t in, float* acc) {
  std::fill(acc, acc + rows * kGroup, 0.0f);
  for (int64_t p = 0; p < in / 2; ++p) {
    const uint16_t* wp = w + p * 2 * kGroup;
    for (int r = 0; r < rows; ++r) {
      const float x0 = x[r * ldx + 2 * p], x1 = x[r * ldx + 2 * p + 1];
      float* a = acc + r * kGroup;
      for (int64_t j = 0; j < kGroup; ++j) {
        a[j] += x0 * Widen(wp[2 * j]);
        a[j] += x1 * Widen(wp[2 * j + 1]);
      }
    }
  }
}

// AVX-512F without BF16: each 32-bit lane holds a column's pair; the low half widened by a
// shift, the high half by a mask.
template <int ROWS>
__attribute__((target("avx512f"))) void PairsAvx512(const float* x, int64_t ldx, const uint16_t* w,
                                                    int64_t in, float* acc) {
  __m512 a[ROWS][4];
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) a[r][i] = _mm512_setzero_ps();
  }
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t p = 0; p < in / 2; ++p) {
    const uint16_t* wp = w + p * 2 * kGroup;
    for (int i = 0; i < 4; ++i) {
      const __m512i raw = _mm512_loadu_si512(wp + 32 * i);
      const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
      const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(raw, high));
      for (int r = 0; r < ROWS; ++r) {
        a[r][i] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + 2 * p]), even, a[r][i]);
        a[r][i] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + 2 * p + 1]), odd, a[r][i]);
      }
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(acc + r * kGroup + 16 * i, a[r][i]);
  }
}

// AVX-512 BF16 with bfloat16 activations: one pair dot product per 16 columns and row.
template <int ROWS>
__attribute__((target("avx512f,avx512bf16"))) void PairsDpbf16(const uint16_t* x, int64_t ldx,
                                                               const uint16_t* w, int64_t in,
                                                               float* acc) {
  __m512 a[ROWS][4];
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) a[r][i] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < in / 2; ++p) {
    const uint16_t* wp = w + p * 2 * kGroup;
    __m512bh wv[4];
    for (int i = 0; i < 4; ++i) wv[i] = (__m512bh)_mm512_loadu_si512(wp + 32 * i);
    for (int r = 0; r < ROWS; ++r) {
      int32_t pair;
      std::memcpy(&pair, x + r * ldx + 2 * p, sizeof(pair));
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(pair);
      for (int i = 0; i < 4; ++i) a[r][i] = _mm512_dpbf16_ps(a[r][i], xv, wv[i]);
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    for (int i = 0; i < 4; ++i) _mm512_storeu_ps(acc + r * kGroup + 16 * i, a[r][i]);
  }
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
template <int R>
struct Int8Avx512Fn {
  static constexpr auto fn = GroupAvx512<R>;
};
template <int R>
struct PairsAvx512Fn {
  static constexpr auto fn = PairsAvx512<R>;
};
template <int R>
struct PairsDpbf16Fn {
  static constexpr auto fn = PairsDpbf16<R>;
};

// GELU's tanh form: 0.5 v (1 + tanh(z)) = v / (1 + exp(-2z)), z = sqrt(2/pi) (v + 0.044715 v^3).
inline float GeluTanh(float v) {
  const float z = 0.7978845608028654f * (v + 0.044715f * v * v * v);
  return v / (1.0f + std::exp(-2.0f * z));
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

__attribute__((target("avx512f"))) inline __m512 GeluTanh16(__m512 v) {
  const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
  const __m512 z = _mm512_mul_ps(_mm512_set1_ps(-2.0f * 0.7978845608028654f),
                                 _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), v3, v));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), Exp16(z)));
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

inline float Load(const float* p) { return *p; }
inline float Load(const c10::BFloat16* p) { return static_cast<float>(*p); }
inline void Store(float* dst, float v) { *dst = v; }
inline void Store(c10::BFloat16* dst, float v) { *dst = c10::BFloat16(v); }

struct Operands {
  const float* x = nullptr;       // [M, in] float32
  const uint16_t* x16 = nullptr;  // [M, in] bfloat16 (the pair dot-product kernel), or null
  const float* bias = nullptr;    // [out] float32 or null
  const float* scales = nullptr;  // int8: [padded out]
  Epilogue epilogue = Epilogue::kNone;
};

// One row's `cols` outputs of a group: scale, bias, epilogue, residual, store.
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void FinishAvx512(const Operands& op,
                                                                       const float* acc,
                                                                       int64_t col0, int64_t cols,
                                                                       const T* residual, T* y) {
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = cols - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (cols - j)) - 1);
    __m512 v = _mm512_loadu_ps(acc + j);
    if (op.scales != nullptr) v = _mm512_mul_ps(v, _mm512_loadu_ps(op.scales + col0 + j));
    if (op.bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, op.bias + col0 + j));
    if (op.epilogue == Epilogue::kGeluTanh) v = GeluTanh16(v);
    if (residual != nullptr) v = _mm512_add_ps(v, Load16(residual + j, m));
    Store16(y + j, v, m);
  }
}

template <typename T>
void FinishScalar(const Operands& op, const float* acc, int64_t col0, int64_t cols,
                  const T* residual, T* y) {
  for (int64_t j = 0; j < cols; ++j) {
    float v = acc[j];
    if (op.scales != nullptr) v *= op.scales[col0 + j];
    if (op.bias != nullptr) v += op.bias[col0 + j];
    if (op.epilogue == Epilogue::kGeluTanh) v = GeluTanh(v);
    if (residual != nullptr) v += Load(residual + j);
    Store(y + j, v);
  }
}

// rows x 64 accumulators of one group, by the kernel the weights and the CPU call for.
void Compute(const Operands& op, int64_t m0, int rows, const int8_t* block, int64_t K, bool avx512,
             float* acc) {
  if (avx512) {
    PickRows<Int8Avx512Fn>(rows)(op.x + m0 * K, K, block, K, acc);
  } else {
    GroupScalar(op.x + m0 * K, K, rows, block, K, acc);
  }
}
void Compute(const Operands& op, int64_t m0, int rows, const uint16_t* block, int64_t K,
             bool avx512, float* acc) {
  const int64_t even = (K + 1) / 2 * 2;  // an odd last position pairs with a zero weight
  if (op.x16 != nullptr) {
    PickRows<PairsDpbf16Fn>(rows)(op.x16 + m0 * even, even, block, even, acc);
  } else if (avx512) {
    PickRows<PairsAvx512Fn>(rows)(op.x + m0 * even, even, block, even, acc);
  } else {
    PairsScalar(op.x + m0 * even, even, rows, block, even, acc);
  }
}

template <typename W, typename T>
void Run(const Operands& op, int64_t M, const W* packed, const PackedWeight& w, const T* residual,
         T* y) {
  const int64_t K = w.in, N = w.out, groups = w.packed.size(0);
  static const bool has_bw =
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  const bool avx512 = UseAvx512Kernels() && has_bw;
  at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(kMaxRows * kGroup);
    for (int64_t g = begin; g < end; ++g) {
      const W* block = packed + g * w.packed.stride(0);
      const int64_t cols = std::min(kGroup, N - g * kGroup);
      for (int64_t m0 = 0; m0 < M; m0 += kMaxRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kMaxRows, M - m0));
        Compute(op, m0, rows, block, K, avx512, acc.data());
        for (int r = 0; r < rows; ++r) {
          const int64_t at = (m0 + r) * N + g * kGroup;
          const T* res = residual != nullptr ? residual + at : nullptr;
          if (avx512) {
            FinishAvx512(op, acc.data() + r * kGroup, g * kGroup, cols, res, y + at);
          } else {
            FinishScalar(op, acc.data() + r * kGroup, g * kGroup, cols, res, y + at);
          }
        }
      }
    }
  });
}

// [in, out] float32 -> [groups, in, 64] of `type`, padding columns zero.
torch::Tensor Pack(const torch::Tensor& values, torch::ScalarType type) {
  const int64_t in = values.size(0), out = values.size(1);
  const int64_t groups = (out + kGroup - 1) / kGroup, padded = groups * kGroup;
  torch::Tensor v = values.to(type);
  if (padded > out) v = torch::cat({v, torch::zeros({in, padded - out}, v.options())}, 1);
  return v.view({in, groups, kGroup}).transpose(0, 1).contiguous();
}

}  // namespace

PackedWeight PackedWeight::Int8(const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "PackedWeight::Int8: the weight must be [in, out]");
  PackedWeight w;
  w.in = weight.size(0);
  w.out = weight.size(1);
  const torch::Tensor f = weight.detach().to(torch::kCPU, torch::kFloat);
  const torch::Tensor scales = f.abs().amax(0).clamp_min(1e-12) / 127.0;  // [out]
  w.packed = Pack((f / scales).round().clamp(-127, 127), torch::kChar);
  const int64_t padded = w.packed.size(0) * kGroup;
  w.scales = torch::cat({scales, torch::zeros({padded - w.out})}).contiguous();
  return w;
}

PackedWeight PackedWeight::Bf16(const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "PackedWeight::Bf16: the weight must be [in, out]");
  PackedWeight w;
  w.in = weight.size(0);
  w.out = weight.size(1);
  torch::Tensor v = weight.detach().to(torch::kCPU);
  if (w.in % 2 != 0) v = torch::cat({v, torch::zeros({1, w.out}, v.options())});
  // [in, groups, 64] -> [groups, in / 2, 64, 2]
  const torch::Tensor grouped = Pack(v, torch::kBFloat16);
  const int64_t groups = grouped.size(0), pairs = grouped.size(1) / 2;
  w.packed = grouped.view({groups, pairs, 2, kGroup}).transpose(2, 3).contiguous();
  return w;
}

torch::Tensor PackedWeight::Dequantize() const {
  const int64_t groups = packed.size(0);
  torch::Tensor p = packed;
  if (!int8()) p = p.transpose(2, 3).reshape({groups, -1, kGroup});  // pairs back in order
  torch::Tensor q =
      p.transpose(0, 1).reshape({-1, groups * kGroup}).narrow(0, 0, in).to(torch::kFloat);
  if (scales.defined()) q = q * scales;
  return q.narrow(1, 0, out).contiguous();
}

torch::Tensor PackedLinear(const torch::Tensor& x, const PackedWeight& w, const torch::Tensor& bias,
                           Epilogue epilogue, const torch::Tensor& residual) {
  TORCH_CHECK(x.device().is_cpu(), "PackedLinear runs on CPU tensors");
  TORCH_CHECK(x.size(-1) == w.in, "PackedLinear: input has ", x.size(-1), " features, the weight ",
              w.in);
  TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16,
              "PackedLinear: dtype ", x.scalar_type(), " is not float32 or bfloat16");
  auto sizes = x.sizes().vec();
  sizes.back() = w.out;
  // bfloat16 weights read positions in pairs: an odd count is padded with a zero column of x.
  torch::Tensor in_rows = x.reshape({-1, w.in});
  if (!w.int8() && w.in % 2 != 0) {
    in_rows = torch::cat({in_rows, torch::zeros({in_rows.size(0), 1}, in_rows.options())}, 1);
  }
  static const bool has_bf16 = __builtin_cpu_supports("avx512bf16");
  const bool pairs16 =
      !w.int8() && x.scalar_type() == torch::kBFloat16 && has_bf16 && UseAvx512Kernels();
  const torch::Tensor rows =
      pairs16 ? in_rows.contiguous() : in_rows.to(torch::kFloat).contiguous();
  Operands op;
  if (pairs16) {
    op.x16 = reinterpret_cast<const uint16_t*>(rows.data_ptr<c10::BFloat16>());
  } else {
    op.x = rows.data_ptr<float>();
  }
  op.epilogue = epilogue;
  torch::Tensor b;
  if (bias.defined()) {
    TORCH_CHECK(bias.numel() == w.out, "PackedLinear: bias has ", bias.numel(), " values, not ",
                w.out);
    b = bias.to(torch::kFloat).contiguous();
    op.bias = b.data_ptr<float>();
  }
  if (w.int8()) op.scales = w.scales.data_ptr<float>();
  torch::Tensor res;
  if (residual.defined()) {
    TORCH_CHECK(residual.numel() == rows.size(0) * w.out, "PackedLinear: residual has ",
                residual.numel(), " values, not ", rows.size(0) * w.out);
    res = residual.to(x.scalar_type()).contiguous();
  }
  torch::Tensor out = torch::empty({rows.size(0), w.out}, x.options());
  const int64_t M = rows.size(0);
  const auto run = [&](auto* y) {
    using T = std::remove_pointer_t<decltype(y)>;
    const T* r = res.defined() ? res.data_ptr<T>() : nullptr;
    if (w.int8()) {
      Run(op, M, w.packed.data_ptr<int8_t>(), w, r, y);
    } else {
      Run(op, M, reinterpret_cast<const uint16_t*>(w.packed.data_ptr<c10::BFloat16>()), w, r, y);
    }
  };
  if (x.scalar_type() == torch::kFloat) {
    run(out.data_ptr<float>());
  } else {
    run(out.data_ptr<c10::BFloat16>());
  }
  return out.view(sizes);
}

int KernelThreadsForTesting(int64_t tasks) {
  std::vector<char> used(static_cast<size_t>(at::get_num_threads()), 0);
  at::parallel_for(0, tasks, 1,
                   [&](int64_t, int64_t) { used[static_cast<size_t>(at::get_thread_num())] = 1; });
  return static_cast<int>(std::count(used.begin(), used.end(), 1));
}

}  // namespace copyforge
