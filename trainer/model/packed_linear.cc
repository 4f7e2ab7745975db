#include "trainer/model/packed_linear.h"

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>
#include <vector>

#include "trainer/common/cpu_features.h"
#include "trainer/model/int8_kernels.h"
#include "trainer/model/kernel_util.h"

namespace copyforge {
namespace {

using namespace kernels;  // NOLINT: the shared kernel pieces

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

__attribute__((target("avx512f"))) inline __m512 GeluTanh16(__m512 v) {
  const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
  const __m512 z = _mm512_mul_ps(_mm512_set1_ps(-2.0f * 0.7978845608028654f),
                                 _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), v3, v));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), Exp16(z)));
}

// The rows of x, in one of three forms (`in` padded to the weight's lanes with zeros).
struct Operands {
  const float* x = nullptr;           // [M, in] float32
  const uint16_t* x16 = nullptr;      // [M, in] bfloat16 (the pair dot-product kernel), or null
  const uint8_t* hi = nullptr;        // [M, in] high and low bytes of 16-bit fixed point (the VNNI
  const uint8_t* lo = nullptr;        //   kernel, see QuantizeRows), or null
  const float* row_scales = nullptr;  // [M] their scales
  const float* bias = nullptr;        // [out] float32 or null
  const c10::BFloat16* bias16 = nullptr;  // or bfloat16 (read as it is: no conversion per call)
  const float* scales = nullptr;          // int8: [padded out]
  const int32_t* sums = nullptr;          // int8: [padded out] each column's sum of weights
  Epilogue epilogue = Epilogue::kNone;
};

// One row's `cols` outputs of a group: scale, bias, epilogue, residual, store.
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void FinishAvx512(const Operands& op,
                                                                       const float* acc,
                                                                       int64_t col0, int64_t cols,
                                                                       const T* residual, T* y) {
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = TailMask(cols - j);
    __m512 v = _mm512_loadu_ps(acc + j);
    if (op.scales != nullptr) v = _mm512_mul_ps(v, _mm512_loadu_ps(op.scales + col0 + j));
    if (op.bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, op.bias + col0 + j));
    if (op.bias16 != nullptr) v = _mm512_add_ps(v, Load16(op.bias16 + col0 + j, m));
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
    if (op.bias16 != nullptr) v += static_cast<float>(op.bias16[col0 + j]);
    if (op.epilogue == Epilogue::kGeluTanh) v = GeluTanh(v);
    if (residual != nullptr) v += Load(residual + j);
    Store(y + j, v);
  }
}

// rows x 64 accumulators of group g from rows m0 .. m0 + rows of the operands, by the kernel the
// weights and the CPU call for; K is the input width padded to the weight's lanes.
void Compute(const Operands& op, int64_t m0, int rows, const int8_t* block, int64_t g, int64_t K,
             bool avx512, float* acc) {
  if (op.hi != nullptr) {
    QuadsVnni(op.hi + m0 * K, op.lo + m0 * K, K, rows, block, K, op.sums + g * kGroup,
              op.row_scales + m0, acc);
  } else if (avx512) {
    QuadsAvx512(op.x + m0 * K, K, rows, block, K, acc);
  } else {
    QuadsPortable(op.x + m0 * K, K, rows, block, K, acc);
  }
}
void Compute(const Operands& op, int64_t m0, int rows, const uint16_t* block, int64_t, int64_t K,
             bool avx512, float* acc) {
  if (op.x16 != nullptr) {
    PickRows<PairsDpbf16Fn>(rows)(op.x16 + m0 * K, K, block, K, acc);
  } else if (avx512) {
    PickRows<PairsAvx512Fn>(rows)(op.x + m0 * K, K, block, K, acc);
  } else {
    PairsScalar(op.x + m0 * K, K, rows, block, K, acc);
  }
}

// Groups [begin, end) of the product: for each, every row's 64 columns computed and finished.
template <typename W, typename T>
void RunGroups(const Operands& op, int64_t M, const W* packed, const PackedWeight& w, bool avx512,
               const T* residual, T* y, int64_t begin, int64_t end) {
  const int64_t K = w.packed.size(1) * w.packed.size(3), N = w.out;
  const int step = op.hi != nullptr ? kVnniRows : kMaxRows;
  alignas(64) float acc[kMaxRows * kGroup];
  for (int64_t g = begin; g < end; ++g) {
    const W* block = packed + g * w.packed.stride(0);
    const int64_t cols = std::min(kGroup, N - g * kGroup);
    for (int64_t m0 = 0; m0 < M; m0 += step) {
      const int rows = static_cast<int>(std::min<int64_t>(step, M - m0));
      Compute(op, m0, rows, block, g, K, avx512, acc);
      for (int r = 0; r < rows; ++r) {
        const int64_t at = (m0 + r) * N + g * kGroup;
        const T* res = residual != nullptr ? residual + at : nullptr;
        if (avx512) {
          FinishAvx512(op, acc + r * kGroup, g * kGroup, cols, res, y + at);
        } else {
          FinishScalar(op, acc + r * kGroup, g * kGroup, cols, res, y + at);
        }
      }
    }
  }
}

// M rows of `in` values padded with zeros to K (rows that need no padding are not copied).
template <typename T>
const T* Padded(const T* x, int64_t M, int64_t in, int64_t K, std::vector<T>& buffer) {
  if (K == in) return x;
  buffer.assign(static_cast<size_t>(M * K), T(0));
  for (int64_t m = 0; m < M; ++m) std::copy(x + m * in, x + (m + 1) * in, buffer.data() + m * K);
  return buffer.data();
}

// [in, out] float32 -> [groups, ceil(in / lanes), 64, lanes] of `type`: groups of 64 columns,
// `lanes` consecutive input positions of a column side by side; padding positions and columns 0.
torch::Tensor Pack(const torch::Tensor& values, torch::ScalarType type, int64_t lanes) {
  const int64_t in = values.size(0), out = values.size(1);
  const int64_t groups = (out + kGroup - 1) / kGroup, padded = groups * kGroup;
  const int64_t steps = (in + lanes - 1) / lanes;
  torch::Tensor v = torch::zeros({steps * lanes, padded}, values.options().dtype(type));
  v.narrow(0, 0, in).narrow(1, 0, out).copy_(values);
  return v.view({steps, lanes, groups, kGroup}).permute({2, 0, 3, 1}).contiguous();
}

}  // namespace

PackedWeight PackedWeight::Int8(const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "PackedWeight::Int8: the weight must be [in, out]");
  PackedWeight w;
  w.in = weight.size(0);
  w.out = weight.size(1);
  const torch::Tensor f = weight.detach().to(torch::kCPU, torch::kFloat);
  const torch::Tensor scales = f.abs().amax(0).clamp_min(1e-12) / 127.0;  // [out]
  w.packed = Pack((f / scales).round().clamp(-127, 127), torch::kChar, kQuad);
  const int64_t padded = w.packed.size(0) * kGroup;
  w.scales = torch::cat({scales, torch::zeros({padded - w.out})}).contiguous();
  w.sums = w.packed.sum({1, 3}, /*keepdim=*/false, torch::kInt).reshape({-1}).contiguous();
  return w;
}

PackedWeight PackedWeight::Bf16(const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "PackedWeight::Bf16: the weight must be [in, out]");
  PackedWeight w;
  w.in = weight.size(0);
  w.out = weight.size(1);
  w.packed = Pack(weight.detach().to(torch::kCPU), torch::kBFloat16, kPair);
  return w;
}

torch::Tensor PackedWeight::Dequantize() const {
  const int64_t groups = packed.size(0);
  const torch::Tensor p = packed.transpose(2, 3).reshape({groups, -1, kGroup});  // lanes in order
  torch::Tensor q =
      p.transpose(0, 1).reshape({-1, groups * kGroup}).narrow(0, 0, in).to(torch::kFloat);
  if (scales.defined()) q = q * scales;
  return q.narrow(1, 0, out).contiguous();
}

struct PackedProduct::State {
  Operands op;
  const PackedWeight* w = nullptr;
  int64_t M = 0;
  bool avx512 = false, bf16_out = false;
  const void* residual = nullptr;
  void* y = nullptr;
  // The rows in the form the kernel reads, when that is not the caller's buffer.
  std::vector<float> widened;
  std::vector<c10::BFloat16> padded16;
  QuantizedRows quantized;
};

template <typename T>
PackedProduct::PackedProduct(const T* x, int64_t M, const PackedWeight& w, Bias bias,
                             Epilogue epilogue, const T* residual, T* y)
    : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.w = &w;
  s.M = M;
  s.residual = residual;
  s.y = y;
  s.bf16_out = std::is_same_v<T, c10::BFloat16>;
  static const bool has_bw =
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  static const bool has_bf16 = __builtin_cpu_supports("avx512bf16");
  s.avx512 = UseAvx512Kernels() && has_bw;
  // The weights read positions in pairs (bfloat16) or quads (int8): rows are padded with zeros.
  const int64_t K = w.packed.size(1) * w.packed.size(3);
  Operands& op = s.op;
  if (!w.int8() && s.bf16_out && has_bf16 && UseAvx512Kernels()) {
    const auto* rows = Padded(reinterpret_cast<const c10::BFloat16*>(x), M, w.in, K, s.padded16);
    op.x16 = reinterpret_cast<const uint16_t*>(rows);
  } else if (w.int8() && UseVnniKernels() && K <= kVnniMaxIn) {
    // VNNI quantizes the rows as they are; the float kernels read float32.
    std::vector<T> padded;
    s.quantized = QuantizeRows(Padded(x, M, w.in, K, padded), M, K);
    op.hi = s.quantized.hi.data();
    op.lo = s.quantized.lo.data();
    op.row_scales = s.quantized.scales.data();
    op.sums = w.sums.data_ptr<int32_t>();
  } else {
    s.widened.assign(static_cast<size_t>(M * K), 0.0f);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t k = 0; k < w.in; ++k) s.widened[m * K + k] = Load(x + m * w.in + k);
    }
    op.x = s.widened.data();
  }
  op.bias = bias.f32;
  op.bias16 = bias.bf16;
  op.epilogue = epilogue;
  if (w.int8()) op.scales = w.scales.data_ptr<float>();
}

PackedProduct::Bias PackedProduct::Bias::Of(const torch::Tensor& bias) {
  Bias b;
  if (!bias.defined()) return b;
  TORCH_CHECK(bias.is_contiguous(), "a packed product's bias must be contiguous");
  if (bias.scalar_type() == torch::kBFloat16) {
    b.bf16 = bias.data_ptr<c10::BFloat16>();
  } else {
    b.f32 = bias.data_ptr<float>();  // fails on any other dtype
  }
  return b;
}

PackedProduct::PackedProduct(PackedProduct&&) noexcept = default;
PackedProduct::~PackedProduct() = default;

int64_t PackedProduct::groups() const { return s_->w->packed.size(0); }

void PackedProduct::Run(int64_t begin, int64_t end) const {
  const State& s = *s_;
  const auto run = [&](auto* y) {
    using T = std::remove_pointer_t<decltype(y)>;
    const T* r = static_cast<const T*>(s.residual);
    if (s.w->int8()) {
      RunGroups(s.op, s.M, s.w->packed.data_ptr<int8_t>(), *s.w, s.avx512, r, y, begin, end);
    } else {
      const auto* packed = reinterpret_cast<const uint16_t*>(s.w->packed.data_ptr<c10::BFloat16>());
      RunGroups(s.op, s.M, packed, *s.w, s.avx512, r, y, begin, end);
    }
  };
  if (s.bf16_out) {
    run(static_cast<c10::BFloat16*>(s.y));
  } else {
    run(static_cast<float*>(s.y));
  }
}

template PackedProduct::PackedProduct(const float*, int64_t, const PackedWeight&, Bias, Epilogue,
                                      const float*, float*);
template PackedProduct::PackedProduct(const c10::BFloat16*, int64_t, const PackedWeight&, Bias,
                                      Epilogue, const c10::BFloat16*, c10::BFloat16*);

torch::Tensor PackedLinear(const torch::Tensor& x, const PackedWeight& w, const torch::Tensor& bias,
                           Epilogue epilogue, const torch::Tensor& residual) {
  TORCH_CHECK(x.device().is_cpu(), "PackedLinear runs on CPU tensors");
  TORCH_CHECK(x.size(-1) == w.in, "PackedLinear: input has ", x.size(-1), " features, the weight ",
              w.in);
  TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16,
              "PackedLinear: dtype ", x.scalar_type(), " is not float32 or bfloat16");
  auto sizes = x.sizes().vec();
  sizes.back() = w.out;
  const torch::Tensor rows = x.reshape({-1, w.in}).contiguous();
  const int64_t M = rows.size(0);
  torch::Tensor bias_values;  // bfloat16 as it is, any other dtype as float32
  if (bias.defined()) {
    TORCH_CHECK(bias.numel() == w.out, "PackedLinear: bias has ", bias.numel(), " values, not ",
                w.out);
    bias_values = bias.scalar_type() == torch::kBFloat16 ? bias.contiguous()
                                                         : bias.to(torch::kFloat).contiguous();
  }
  const PackedProduct::Bias b = PackedProduct::Bias::Of(bias_values);
  torch::Tensor res;
  if (residual.defined()) {
    TORCH_CHECK(residual.numel() == M * w.out, "PackedLinear: residual has ", residual.numel(),
                " values, not ", M * w.out);
    res = residual.to(x.scalar_type()).contiguous();
  }
  torch::Tensor out = torch::empty({M, w.out}, x.options());
  const auto run = [&](auto* y) {
    using T = std::remove_pointer_t<decltype(y)>;
    const PackedProduct product(rows.data_ptr<T>(), M, w, b, epilogue,
                                res.defined() ? res.data_ptr<T>() : nullptr, y);
    at::parallel_for(0, product.groups(), 1,
                     [&](int64_t begin, int64_t end) { product.Run(begin, end); });
  };
  if (x.scalar_type() == torch::kFloat) {
    run(out.data_ptr<float>());
  } else {
    run(out.data_ptr<c10::BFloat16>());
  }
  return out.view(sizes);
}

void PlaceInOneArena(const std::vector<PackedWeight*>& weights) {
  if (weights.empty()) return;
  int64_t total = 0;
  for (const PackedWeight* w : weights) {
    TORCH_CHECK(w->packed.scalar_type() == weights[0]->packed.scalar_type(),
                "PlaceInOneArena: the weights must share a dtype");
    total += w->packed.numel();
  }
  const torch::Tensor arena = torch::empty({total}, weights[0]->packed.options());
  // Huge pages for the whole pages inside the allocation (a hint: without them it still works).
  constexpr uintptr_t kPage = 4096;
  const auto begin = reinterpret_cast<uintptr_t>(arena.data_ptr());
  const uintptr_t first = (begin + kPage - 1) / kPage * kPage;
  const uintptr_t last = (begin + static_cast<uintptr_t>(arena.nbytes())) / kPage * kPage;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  int64_t offset = 0;
  for (PackedWeight* w : weights) {
    const int64_t n = w->packed.numel();
    torch::Tensor slice = arena.narrow(0, offset, n).view(w->packed.sizes());
    slice.copy_(w->packed);
    w->packed = slice;
    offset += n;
  }
}

int KernelThreadsForTesting(int64_t tasks) {
  // Thread numbers come from the OpenMP runtime the kernels were linked with, which may size its
  // team differently from libtorch's count (a libtorch that bundles its own runtime).
  std::mutex mu;
  std::set<int> used;
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mu);
    used.insert(at::get_thread_num());
  });
  return static_cast<int>(used.size());
}

}  // namespace copyforge
