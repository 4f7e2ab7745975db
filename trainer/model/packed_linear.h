// Linear layers for the decode step, with weights packed for streaming: decoding a few rows reads
// every weight once per step, so its speed is the speed at which the weights stream from memory.
// Weights are laid out in groups of 64 output columns, a few consecutive input positions of a
// group contiguous (a quad of int8 or a pair of bfloat16 per column: 4 cache lines), and the
// kernels keep 4 x rows accumulators so that even one row has four independent chains. Every row
// of the input is computed the same way whatever else is in the batch.
//   int8: weight-only, symmetric, one float32 scale per output column (the column's largest
//         magnitude maps to 127): half the bytes of bfloat16 (`serve --dtype int8`). With AVX-512
//         VNNI each activation row becomes 16-bit fixed point (its largest magnitude maps to
//         32767; error at most 1/65534 of it, finer than bfloat16's 8 bits for all but the
//         row's smallest values), multiplied exactly in int32 by two byte dot products;
//         otherwise the weights are widened to float32 (AVX-512F or portable).
//   bfloat16: the weights as they are, repacked (`serve --dtype bfloat16` decode rows): AVX-512
//         BF16 pair dot products with bfloat16 activations, float32 FMAs otherwise.
// AVX-512 where the CPU has it, portable C++ otherwise (COPYFORGE_DISABLE_AVX512=1 forces it).
// CPU tensors only.
#ifndef COPYFORGE_TRAINER_MODEL_PACKED_LINEAR_H_
#define COPYFORGE_TRAINER_MODEL_PACKED_LINEAR_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace copyforge {

// What a packed linear layer applies to its output before storing it.
enum class Epilogue {
  kNone,
  kGeluTanh,  // GELU (tanh approximation), as GPT-2's MLP
};

struct PackedWeight {
  // int8 [ceil(out / 64), ceil(in / 4), 64, 4]: groups of 64 columns, each column's weights for
  // four consecutive input positions side by side (AVX-512 VNNI's operand layout);
  // bfloat16 [ceil(out / 64), ceil(in / 2), 64, 2]: the same in pairs (AVX-512 BF16's).
  // Padding positions and columns are zero.
  torch::Tensor packed;
  torch::Tensor scales;  // int8: float32 [ceil(out / 64) * 64]; bfloat16: undefined
  torch::Tensor sums;    // int8: int32 [ceil(out / 64) * 64], each column's sum of int8 weights
  int64_t in = 0, out = 0;

  // From a [in, out] weight (Conv1D's layout: y = x W), any floating dtype.
  static PackedWeight Int8(const torch::Tensor& weight);
  static PackedWeight Bf16(const torch::Tensor& weight);
  // The weight the packed values stand for, [in, out] float32 (tests and quality checks).
  torch::Tensor Dequantize() const;
  bool int8() const { return packed.scalar_type() == torch::kChar; }
};

// Lays `weights` (all of one dtype) out back to back in one allocation, in the order given (the
// order a decode step reads them), asking the kernel for transparent huge pages: the step then
// streams one region instead of a few dozen (48 int8 projections: 10-17% faster than separate
// allocations, same run). Each weight's old storage is freed once it is copied; while placing,
// the packed weights are held twice.
void PlaceInOneArena(const std::vector<PackedWeight*>& weights);

// x [..., in] (float32 or bfloat16, any layout) times the weight, plus `bias` [out] when defined,
// then `epilogue`, plus `residual` [..., out] when defined; the result [..., out] in x's dtype.
torch::Tensor PackedLinear(const torch::Tensor& x, const PackedWeight& w, const torch::Tensor& bias,
                           Epilogue epilogue = Epilogue::kNone, const torch::Tensor& residual = {});

// One product of M rows with a packed weight, for callers that split the work among threads
// themselves (the fused decode step, trainer/model/decode_step.h): set up once (the rows padded,
// widened or quantized as the kernel needs, in the product's own buffers), then computed a group
// of 64 output columns at a time, by any thread and in any order. Each group's values are bit for
// bit those PackedLinear computes. T (float or c10::BFloat16) is the type of the rows, the
// residual and the output; the bias is float32 or bfloat16 (at most one set). The pointers must
// outlive the product; the rows are read by the constructor only.
class PackedProduct {
 public:
  struct Bias {
    const float* f32 = nullptr;
    const c10::BFloat16* bf16 = nullptr;
    // A contiguous float32 or bfloat16 tensor's values (no bias when undefined).
    static Bias Of(const torch::Tensor& bias);
  };
  // x [M, w.in] (rows contiguous), residual and y [M, w.out].
  template <typename T>
  PackedProduct(const T* x, int64_t M, const PackedWeight& w, Bias bias, Epilogue epilogue,
                const T* residual, T* y);
  PackedProduct(PackedProduct&&) noexcept;
  ~PackedProduct();
  int64_t groups() const;
  void Run(int64_t begin, int64_t end) const;  // groups [begin, end)

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// How many threads an at::parallel_for over `tasks` tasks ran on in the kernels' translation
// units: the OpenMP team (libtorch's intra-op thread count where libtorch uses the same runtime)
// when they were built with OpenMP, 1 when not (a test guards the build).
int KernelThreadsForTesting(int64_t tasks);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_PACKED_LINEAR_H_
