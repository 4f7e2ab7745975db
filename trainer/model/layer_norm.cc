#include "trainer/model/layer_norm.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "trainer/common/cpu_features.h"
#include "trainer/model/kernel_util.h"

namespace copyforge {
namespace {

using kernels::Load;
using kernels::Load16;
using kernels::Store;
using kernels::Store16;
using kernels::TailMask;

template <typename T, typename W>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void NormAvx512(const T* x, const W* w,
                                                                     const W* b, int64_t C,
                                                                     float eps, T* y) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t k = 0; k < C; k += 16) sum = _mm512_add_ps(sum, Load16(x + k, TailMask(C - k)));
  const float mean = _mm512_reduce_add_ps(sum) / static_cast<float>(C);
  const __m512 mv = _mm512_set1_ps(mean);
  __m512 sq = _mm512_setzero_ps();
  for (int64_t k = 0; k < C; k += 16) {
    const __mmask16 m = TailMask(C - k);
    const __m512 d = _mm512_maskz_sub_ps(m, Load16(x + k, m), mv);
    sq = _mm512_fmadd_ps(d, d, sq);
  }
  const float rstd = 1.0f / std::sqrt(_mm512_reduce_add_ps(sq) / static_cast<float>(C) + eps);
  const __m512 rv = _mm512_set1_ps(rstd);
  for (int64_t k = 0; k < C; k += 16) {
    const __mmask16 m = TailMask(C - k);
    const __m512 d = _mm512_mul_ps(_mm512_sub_ps(Load16(x + k, m), mv), rv);
    Store16(y + k, _mm512_fmadd_ps(d, Load16(w + k, m), Load16(b + k, m)), m);
  }
}

template <typename T, typename W>
void NormPortable(const T* x, const W* w, const W* b, int64_t C, float eps, T* y) {
  float sum = 0;
  for (int64_t k = 0; k < C; ++k) sum += Load(x + k);
  const float mean = sum / static_cast<float>(C);
  float sq = 0;
  for (int64_t k = 0; k < C; ++k) sq += (Load(x + k) - mean) * (Load(x + k) - mean);
  const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(C) + eps);
  for (int64_t k = 0; k < C; ++k) {
    Store(y + k, (Load(x + k) - mean) * rstd * Load(w + k) + Load(b + k));
  }
}

template <typename T, typename W>
void Rows(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, float eps,
          torch::Tensor& y) {
  const int64_t C = x.size(-1), N = x.numel() / C;
  const T* xp = x.data_ptr<T>();
  const W* wp = w.data_ptr<W>();
  const W* bp = b.data_ptr<W>();
  T* yp = y.data_ptr<T>();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    LayerNormRows(xp + begin * C, end - begin, C, wp, bp, eps, yp + begin * C);
  });
}

template <typename T>
void Dispatch(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, float eps,
              torch::Tensor& y) {
  if (w.scalar_type() == torch::kBFloat16) {
    Rows<T, c10::BFloat16>(x, w, b, eps, y);
  } else {
    Rows<T, float>(x, w, b, eps, y);
  }
}

}  // namespace

template <typename T, typename W>
void LayerNormRows(const T* x, int64_t rows, int64_t C, const W* weight, const W* bias, float eps,
                   T* y) {
  static const bool has_bw =
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  const bool avx512 = UseAvx512Kernels() && has_bw;
  for (int64_t n = 0; n < rows; ++n) {
    if (avx512) {
      NormAvx512(x + n * C, weight, bias, C, eps, y + n * C);
    } else {
      NormPortable(x + n * C, weight, bias, C, eps, y + n * C);
    }
  }
}
template void LayerNormRows(const float*, int64_t, int64_t, const float*, const float*, float,
                            float*);
template void LayerNormRows(const float*, int64_t, int64_t, const c10::BFloat16*,
                            const c10::BFloat16*, float, float*);
template void LayerNormRows(const c10::BFloat16*, int64_t, int64_t, const float*, const float*,
                            float, c10::BFloat16*);
template void LayerNormRows(const c10::BFloat16*, int64_t, int64_t, const c10::BFloat16*,
                            const c10::BFloat16*, float, c10::BFloat16*);

torch::Tensor RowLayerNorm(const torch::Tensor& x_in, const torch::Tensor& weight,
                           const torch::Tensor& bias, double eps) {
  TORCH_CHECK(x_in.device().is_cpu(), "RowLayerNorm runs on CPU tensors");
  const int64_t C = x_in.size(-1);
  TORCH_CHECK(weight.numel() == C && bias.numel() == C, "RowLayerNorm: weight and bias need ", C,
              " values");
  const auto floating = [](const torch::Tensor& t) {
    return t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16;
  };
  TORCH_CHECK(floating(x_in) && floating(weight), "RowLayerNorm: float32 or bfloat16 only");
  const torch::Tensor x = x_in.contiguous();
  const torch::Tensor w = weight.contiguous();
  const torch::Tensor b = bias.to(weight.scalar_type()).contiguous();
  torch::Tensor y = torch::empty_like(x);
  if (x.scalar_type() == torch::kBFloat16) {
    Dispatch<c10::BFloat16>(x, w, b, static_cast<float>(eps), y);
  } else {
    Dispatch<float>(x, w, b, static_cast<float>(eps), y);
  }
  return y;
}

}  // namespace copyforge
