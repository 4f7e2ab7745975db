// The int8 kernels of PackedLinear (trainer/model/packed_linear.h). int8 weights are packed in
// quads of input positions: quad q of a group holds, for each of its 64 columns, the weights of
// positions 4q .. 4q + 3 (256 bytes), the operand layout of AVX-512 VNNI's byte dot product.
// Each kernel computes `rows` rows x 64 float32 accumulators of one group. Internal.
#ifndef COPYFORGE_TRAINER_MODEL_INT8_KERNELS_H_
#define COPYFORGE_TRAINER_MODEL_INT8_KERNELS_H_

#include <cstdint>
#include <vector>

namespace copyforge {
namespace kernels {

constexpr int64_t kQuad = 4;  // int8 weights: input positions per 32-bit lane
constexpr int kVnniRows = 6;  // the VNNI kernel's rows per pass (4 to 6 in two column halves)
// The VNNI kernel's int32 sums hold 255 x 127 x in: inputs up to 64K positions.
constexpr int64_t kVnniMaxIn = 65536;

// Rows of x as 16-bit fixed point for the VNNI kernel: q = round(x / s), s = max|x| / 32767 per
// row, stored as q's high byte + 128 and its low byte (q = 256 (hi - 128) + lo). A row with a
// non-finite value gets a NaN scale, so its outputs are NaN as with float arithmetic.
struct QuantizedRows {
  std::vector<uint8_t> hi, lo;
  std::vector<float> scales;
};
// x: M rows of ld float32 or c10::BFloat16 values.
template <typename T>
QuantizedRows QuantizeRows(const T* x, int64_t M, int64_t ld);

// x: rows x in float32 (row stride ldx); in: a multiple of kQuad. rows 1 .. kMaxRows.
void QuadsPortable(const float* x, int64_t ldx, int rows, const int8_t* w, int64_t in, float* acc);
// AVX-512F without VNNI: each 32-bit lane holds a column's quad, widened byte by byte by shifts.
void QuadsAvx512(const float* x, int64_t ldx, int rows, const int8_t* w, int64_t in, float* acc);
// AVX-512 VNNI on QuantizeRows' bytes: two byte dot products per 16 columns, row and quad, exact
// in int32, then x.w = 256 (hi.w - 128 sum(w)) + lo.w times the row's scale; `sums` are the
// group's 64 column sums. rows 1 .. kVnniRows: up to 3 over all 64 columns at once (8
// accumulators a row), 4 to 6 over each half of them in turn.
void QuadsVnni(const uint8_t* hi, const uint8_t* lo, int64_t ldx, int rows, const int8_t* w,
               int64_t in, const int32_t* sums, const float* row_scales, float* acc);

}  // namespace kernels
}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_INT8_KERNELS_H_
