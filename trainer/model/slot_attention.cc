#include "trainer/model/slot_attention.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "trainer/common/cpu_features.h"
#include "trainer/model/kernel_util.h"  // (also quiets GCC 12 about AVX-512 intrinsics)

namespace copyforge {
namespace {

inline float ToFloat(float x) { return x; }
inline float ToFloat(c10::BFloat16 x) { return static_cast<float>(x); }

// exp(scores - max) in place; returns the sum.
float SoftmaxNumerators(float* scores, int64_t length, float max) {
  float sum = 0;
  for (int64_t j = 0; j < length; ++j) {
    scores[j] = std::exp(scores[j] - max);
    sum += scores[j];
  }
  return sum;
}

// One (row, head): q (already scaled) against keys/values 0 .. length - 1 of its slot, written
// to `out` (float32). Portable version.
template <typename T>
void HeadScalar(const float* q, const T* keys, const T* values, int64_t length, int64_t D,
                float* scores, float* out) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < length; ++j) {
    float dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += q[d] * ToFloat(keys[j * D + d]);
    scores[j] = dot;
    max = std::max(max, dot);
  }
  const float sum = SoftmaxNumerators(scores, length, max);
  std::fill(out, out + D, 0.0f);
  for (int64_t j = 0; j < length; ++j) {
    for (int64_t d = 0; d < D; ++d) out[d] += scores[j] * ToFloat(values[j * D + d]);
  }
  for (int64_t d = 0; d < D; ++d) out[d] /= sum;
}

// AVX-512 version for head_dim = 16 x NV (GPT-2's 64 is NV = 4): the query and the output stay
// in registers across all keys; bfloat16 is widened by a shift.
__attribute__((target("avx512f"))) inline __m512 Load16(const float* p) {
  return _mm512_loadu_ps(p);
}
__attribute__((target("avx512f"))) inline __m512 Load16(const c10::BFloat16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// Lane t of the result: the sum of v[t]'s 16 lanes (t < 16). Four rounds of pairwise block and
// lane shuffles leave lane 4k + m holding v[4m + k]; a permutation puts it at lane 4m + k.
__attribute__((target("avx512f"))) inline __m512 SumEach(__m512 v[16]) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i) {  // 8 lanes of v[2i] (blocks 0, 1), 8 of v[2i + 1] (2, 3)
    a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  }
  for (int i = 0; i < 4; ++i) {  // block k: 4 lanes of v[4i + k]
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
  }
  for (int i = 0; i < 2; ++i) {  // block k: 2 lanes of v[8i + k], then 2 of v[8i + 4 + k]
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  }
  const __m512 sums =
      _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, sums);
}

template <typename T, int NV>
__attribute__((target("avx512f"))) void HeadAvx512(const float* q, const T* keys, const T* values,
                                                   int64_t length, float* scores, float* out) {
  constexpr int64_t D = 16 * NV;
  __m512 qv[NV];
  for (int i = 0; i < NV; ++i) qv[i] = _mm512_loadu_ps(q + 16 * i);
  // Scores 16 positions at a time: one vector of partial products per position, summed across
  // lanes together (a horizontal sum per position costs more than the products).
  __m512 largest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j0 = 0; j0 < length; j0 += 16) {
    const int n = static_cast<int>(std::min<int64_t>(16, length - j0));
    __m512 part[16];
    for (int t = 0; t < 16; ++t) {
      if (t >= n) {
        part[t] = _mm512_setzero_ps();
        continue;
      }
      const T* k = keys + (j0 + t) * D;
      __m512 acc = _mm512_mul_ps(qv[0], Load16(k));
      for (int i = 1; i < NV; ++i) acc = _mm512_fmadd_ps(qv[i], Load16(k + 16 * i), acc);
      part[t] = acc;
    }
    const __mmask16 m = kernels::TailMask(n);
    const __m512 s = SumEach(part);
    _mm512_mask_storeu_ps(scores + j0, m, s);
    largest = _mm512_mask_max_ps(largest, m, largest, s);
  }
  const float max = _mm512_reduce_max_ps(largest);
  // exp(score - max) 16 at a time; a NaN score stays NaN (Exp16 alone would clamp it).
  __m512 total = _mm512_setzero_ps();
  for (int64_t j0 = 0; j0 < length; j0 += 16) {
    const __mmask16 m = kernels::TailMask(length - j0);
    const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, scores + j0), _mm512_set1_ps(max));
    __m512 e = kernels::Exp16(x);
    e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
    _mm512_mask_storeu_ps(scores + j0, m, e);
    total = _mm512_add_ps(total, _mm512_maskz_mov_ps(m, e));
  }
  const float sum = _mm512_reduce_add_ps(total);
  __m512 o[NV];
  for (int i = 0; i < NV; ++i) o[i] = _mm512_setzero_ps();
  for (int64_t j = 0; j < length; ++j) {
    const __m512 p = _mm512_set1_ps(scores[j]);
    const T* v = values + j * D;
    for (int i = 0; i < NV; ++i) o[i] = _mm512_fmadd_ps(p, Load16(v + 16 * i), o[i]);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / sum);
  for (int i = 0; i < NV; ++i) _mm512_storeu_ps(out + 16 * i, _mm512_mul_ps(o[i], inv));
}

template <typename T>
using HeadFn = void (*)(const float*, const T*, const T*, int64_t, float*, float*);

// The AVX-512 kernel for this head_dim when the CPU has AVX-512 and head_dim is 16..128 in steps
// of 16; null otherwise (the portable one runs).
template <typename T>
HeadFn<T> PickAvx512(int64_t D) {
  if (!UseAvx512Kernels() || D % 16 != 0) return nullptr;
  switch (D / 16) {
    case 1:
      return HeadAvx512<T, 1>;
    case 2:
      return HeadAvx512<T, 2>;
    case 3:
      return HeadAvx512<T, 3>;
    case 4:
      return HeadAvx512<T, 4>;
    case 5:
      return HeadAvx512<T, 5>;
    case 6:
      return HeadAvx512<T, 6>;
    case 7:
      return HeadAvx512<T, 7>;
    case 8:
      return HeadAvx512<T, 8>;
    default:
      return nullptr;
  }
}

// Row b's attention over positions 0 .. positions[b] of slot slots[b], split over tasks.
template <typename T>
void Run(const torch::Tensor& qkv, torch::Tensor& key_pool, torch::Tensor& value_pool,
         const int64_t* slots, const int64_t* positions, bool write, torch::Tensor& out) {
  SlotDecodeTasks<T> tasks;
  tasks.qkv = qkv.data_ptr<T>();
  tasks.keys = key_pool.data_ptr<T>();
  tasks.values = value_pool.data_ptr<T>();
  tasks.slots = slots;
  tasks.positions = positions;
  tasks.write = write;
  tasks.y = out.data_ptr<T>();
  tasks.B = qkv.size(0);
  tasks.H = key_pool.size(1);
  tasks.capacity = key_pool.size(2);
  tasks.D = key_pool.size(3);
  int64_t longest = 1;
  for (int64_t b = 0; b < tasks.B; ++b) longest = std::max(longest, positions[b] + 1);
  // Small problems run on the calling thread: a parallel region costs more than it saves.
  const int64_t grain = std::max<int64_t>(1, 32768 / (longest * tasks.D));
  at::parallel_for(0, tasks.count(), grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    tasks.Run(begin, end, scratch);
  });
}

// The checks both entry points share; returns qkv made contiguous.
torch::Tensor CheckInputs(const torch::Tensor& qkv, const torch::Tensor& key_pool,
                          const torch::Tensor& value_pool, const char* what) {
  TORCH_CHECK(qkv.device().is_cpu() && key_pool.device().is_cpu(), what, " runs on CPU tensors");
  TORCH_CHECK(qkv.dim() == 2 && key_pool.dim() == 4 && value_pool.sizes() == key_pool.sizes(), what,
              ": qkv must be [B, 3C] and the pools [S, H, capacity, D]");
  TORCH_CHECK(key_pool.is_contiguous() && value_pool.is_contiguous(), what,
              ": the KV pools must be contiguous");
  TORCH_CHECK(qkv.scalar_type() == key_pool.scalar_type() &&
                  value_pool.scalar_type() == key_pool.scalar_type(),
              what, ": qkv and the pools must share a dtype");
  TORCH_CHECK(qkv.scalar_type() == torch::kFloat || qkv.scalar_type() == torch::kBFloat16, what,
              ": dtype ", qkv.scalar_type(), " is not float32 or bfloat16");
  const int64_t H = key_pool.size(1), D = key_pool.size(3);
  TORCH_CHECK(qkv.size(1) == 3 * H * D, what, ": qkv has ", qkv.size(1), " columns, expected 3 x ",
              H, " x ", D);
  return qkv.contiguous();
}

void Dispatch(const torch::Tensor& qkv, torch::Tensor& key_pool, torch::Tensor& value_pool,
              const int64_t* slots, const int64_t* positions, bool write, torch::Tensor& out) {
  if (qkv.scalar_type() == torch::kFloat) {
    Run<float>(qkv, key_pool, value_pool, slots, positions, write, out);
  } else {
    Run<c10::BFloat16>(qkv, key_pool, value_pool, slots, positions, write, out);
  }
}

}  // namespace

template <typename T>
void SlotDecodeTasks<T>::Run(int64_t begin, int64_t end, std::vector<float>& scratch) const {
  const int64_t C = H * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const HeadFn<T> fast = PickAvx512<T>(D);
  for (int64_t task = begin; task < end; ++task) {
    const int64_t b = task / H, h = task % H;
    const int64_t pos = positions[b];
    scratch.resize(static_cast<size_t>(2 * D + pos + 1));
    float *q = scratch.data(), *acc = q + D, *scores = acc + D;
    const T* row = qkv + b * 3 * C + h * D;
    T* k_head = keys + (slots[b] * H + h) * capacity * D;
    T* v_head = values + (slots[b] * H + h) * capacity * D;
    if (write) {
      std::memcpy(k_head + pos * D, row + C, D * sizeof(T));
      std::memcpy(v_head + pos * D, row + 2 * C, D * sizeof(T));
    }
    for (int64_t d = 0; d < D; ++d) q[d] = ToFloat(row[d]) * scale;
    if (fast != nullptr) {
      fast(q, k_head, v_head, pos + 1, scores, acc);
    } else {
      HeadScalar(q, k_head, v_head, pos + 1, D, scores, acc);
    }
    T* dst = y + b * C + h * D;
    for (int64_t d = 0; d < D; ++d) dst[d] = static_cast<T>(acc[d]);
  }
}
template struct SlotDecodeTasks<float>;
template struct SlotDecodeTasks<c10::BFloat16>;

void CheckSlotDecodeRows(int64_t B, const int64_t* slots, const int64_t* positions,
                         const torch::Tensor& key_pool) {
  std::vector<bool> taken(key_pool.size(0), false);
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(slots[b] >= 0 && slots[b] < key_pool.size(0) && !taken[slots[b]], "slot ", slots[b],
                " is outside the pool of ", key_pool.size(0), " or used by two rows");
    taken[slots[b]] = true;
    TORCH_CHECK(positions[b] >= 0 && positions[b] < key_pool.size(2), "position ", positions[b],
                " is outside the capacity ", key_pool.size(2));
  }
}

torch::Tensor SlotPrefillAttention(const torch::Tensor& qkv_in, torch::Tensor& key_pool,
                                   torch::Tensor& value_pool, int64_t slot, int64_t start) {
  const torch::Tensor qkv = CheckInputs(qkv_in, key_pool, value_pool, "SlotPrefillAttention");
  const int64_t T = qkv.size(0), H = key_pool.size(1), D = key_pool.size(3), C = H * D;
  TORCH_CHECK(slot >= 0 && slot < key_pool.size(0), "slot ", slot, " is outside the pool of ",
              key_pool.size(0));
  TORCH_CHECK(start >= 0 && start + T <= key_pool.size(2), "positions ", start, " .. ",
              start + T - 1, " are outside the capacity ", key_pool.size(2));
  // The chunk's keys and values go in first: each row then attends to those before it.
  const auto parts = qkv.split(C, /*dim=*/1);
  const auto place = [&](torch::Tensor& pool, const torch::Tensor& rows) {
    pool[slot].narrow(1, start, T).copy_(rows.view({T, H, D}).transpose(0, 1));
  };
  place(key_pool, parts[1]);
  place(value_pool, parts[2]);
  const std::vector<int64_t> slots(static_cast<size_t>(T), slot);
  std::vector<int64_t> positions(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) positions[t] = start + t;
  torch::Tensor out = torch::empty({T, C}, qkv.options());
  Dispatch(qkv, key_pool, value_pool, slots.data(), positions.data(), /*write=*/false, out);
  return out;
}

torch::Tensor SlotDecodeAttention(const torch::Tensor& qkv_in, torch::Tensor& key_pool,
                                  torch::Tensor& value_pool, const torch::Tensor& slots_in,
                                  const torch::Tensor& positions_in) {
  const torch::Tensor qkv = CheckInputs(qkv_in, key_pool, value_pool, "SlotDecodeAttention");
  const int64_t B = qkv.size(0), H = key_pool.size(1), D = key_pool.size(3);
  const torch::Tensor slots = slots_in.to(torch::kLong).contiguous();
  const torch::Tensor positions = positions_in.to(torch::kLong).contiguous();
  TORCH_CHECK(slots.numel() == B && positions.numel() == B,
              "SlotDecodeAttention: one slot and one position per row");
  const int64_t* s = slots.data_ptr<int64_t>();
  const int64_t* p = positions.data_ptr<int64_t>();
  CheckSlotDecodeRows(B, s, p, key_pool);
  torch::Tensor out = torch::empty({B, H * D}, qkv.options());
  Dispatch(qkv, key_pool, value_pool, s, p, /*write=*/true, out);
  return out;
}

torch::Tensor SlotDecodeAttentionReference(const torch::Tensor& qkv, torch::Tensor& key_pool,
                                           torch::Tensor& value_pool, const torch::Tensor& slots,
                                           const torch::Tensor& positions, int64_t max_length) {
  using torch::indexing::Slice;
  const int64_t B = qkv.size(0), H = key_pool.size(1), D = key_pool.size(3), C = H * D;
  const auto parts = qkv.split(C, /*dim=*/1);
  auto heads = [&](const torch::Tensor& t) { return t.reshape({B, H, D}); };
  key_pool.index_put_({slots, Slice(), positions}, heads(parts[1]));
  value_pool.index_put_({slots, Slice(), positions}, heads(parts[2]));
  const torch::Tensor k = key_pool.narrow(2, 0, max_length).index_select(0, slots);
  const torch::Tensor v = value_pool.narrow(2, 0, max_length).index_select(0, slots);
  const torch::Tensor q = heads(parts[0]).unsqueeze(2);  // [B, H, 1, D]
  torch::Tensor att =
      torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(D)));
  // Row b attends to keys 0 .. positions[b]; later ones belong to no one (or a stale sequence).
  const torch::Tensor beyond =
      torch::arange(max_length, positions.options()).unsqueeze(0) > positions.unsqueeze(1);
  att =
      att.masked_fill(beyond.view({B, 1, 1, max_length}), -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(att, -1), v).reshape({B, C});
}

}  // namespace copyforge
