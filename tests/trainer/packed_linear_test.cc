// Packed linear layers: int8 quantization error within half a step per column, the kernel equal
// to the dequantized product (int8 and bfloat16, with the GELU and residual epilogues), every row
// computed the same alone or in a batch, AVX-512 and portable kernels alike, and packed models'
// logits close to the float model's.
#include "trainer/model/packed_linear.h"

#include <gtest/gtest.h>

#include "tests/trainer/model_test_util.h"
#include "trainer/common/cpu_features.h"
#include "trainer/model/gpt2.h"
#include "trainer/model/layer_norm.h"

namespace copyforge {
namespace {

TEST(PackedLinear, KernelsRunOnEveryIntraOpThread) {
  const int before = torch::get_num_threads();
  torch::set_num_threads(2);
  EXPECT_GE(KernelThreadsForTesting(64), 2) << "the kernels were built without OpenMP";
  torch::set_num_threads(before);
}

TEST(PackedLinear, QuantizationErrorIsWithinHalfAStepPerColumn) {
  torch::manual_seed(1);
  const torch::Tensor w = torch::randn({40, 70});  // 70 columns: a padded second group
  const PackedWeight q = PackedWeight::Int8(w);
  EXPECT_EQ(q.packed.sizes(), (std::vector<int64_t>{2, 10, 64, 4}));
  EXPECT_TRUE(
      torch::equal(q.sums.narrow(0, 0, 70),
                   (q.Dequantize() / q.scales.narrow(0, 0, 70)).round().sum(0).to(torch::kInt)));
  const torch::Tensor step = w.abs().amax(0) / 127.0;
  const torch::Tensor error = (q.Dequantize() - w).abs();
  EXPECT_TRUE((error <= step * 0.5 + 1e-6).all().item<bool>());
  // A column of zeros stays zero.
  torch::Tensor z = w.clone();
  z.select(1, 3).zero_();
  EXPECT_EQ(PackedWeight::Int8(z).Dequantize().select(1, 3).abs().max().item<float>(), 0.0f);
}

TEST(PackedLinear, EqualsTheDequantizedProductAndRowsDoNotDependOnTheBatch) {
  // int8 kernels: VNNI (16-bit activations), AVX-512F widening, portable.
  for (int kernel : {0, 1, 2}) {
    const bool avx512 = kernel < 2;
    const bool previous = SetAvx512KernelsForTesting(avx512);
    const bool previous_vnni = SetVnniKernelsForTesting(kernel == 0);
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      torch::manual_seed(2);
      const PackedWeight q = PackedWeight::Int8(torch::randn({95, 130}));  // a partial quad
      const torch::Tensor bias = torch::randn({130}).to(dtype);
      const torch::Tensor x = torch::randn({13, 95}).to(dtype);
      const torch::Tensor y = PackedLinear(x, q, bias);
      ASSERT_EQ(y.scalar_type(), dtype);
      const torch::Tensor want =
          torch::addmm(bias.to(torch::kFloat), x.to(torch::kFloat), q.Dequantize());
      // 16-bit activations: within a few 1/65534 of each row's largest value times sum |w|.
      const double tol = dtype == torch::kBFloat16 ? 2e-2 : kernel == 0 ? 2e-3 : 1e-4;
      EXPECT_TRUE(torch::allclose(y.to(torch::kFloat), want, tol, tol)) << kernel << dtype;
      for (int64_t m : {1, 2, 5, 6, 7}) {  // row groups of 6: every split of the batch
        EXPECT_TRUE(
            torch::equal(PackedLinear(x.narrow(0, 13 - m, m), q, bias), y.narrow(0, 13 - m, m)))
            << "last " << m << " rows, kernel " << kernel;
      }
      // A non-finite activation spoils its own row only, as float arithmetic would.
      torch::Tensor bad = x.clone();
      bad[3][5] = std::numeric_limits<float>::quiet_NaN();
      const torch::Tensor y_bad = PackedLinear(bad, q, bias);
      EXPECT_TRUE(y_bad[3].isnan().all().item<bool>()) << kernel;
      EXPECT_TRUE(torch::equal(y_bad.narrow(0, 4, 9), y.narrow(0, 4, 9))) << kernel;
      // The epilogues: GELU, then a residual.
      const torch::Tensor residual = torch::randn({13, 130}).to(dtype);
      const torch::Tensor fused = PackedLinear(x, q, bias, Epilogue::kGeluTanh, residual);
      const torch::Tensor unfused = residual.to(torch::kFloat) + at::gelu(want, "tanh");
      EXPECT_TRUE(torch::allclose(fused.to(torch::kFloat), unfused, tol, tol)) << kernel << dtype;
      // bfloat16 weights: the same product with the weights as they are.
      const torch::Tensor w16 = torch::randn({95, 130}).to(torch::kBFloat16);
      const PackedWeight p16 = PackedWeight::Bf16(w16);
      EXPECT_TRUE(torch::equal(p16.Dequantize(), w16.to(torch::kFloat)));
      const torch::Tensor y16 = PackedLinear(x, p16, bias);
      EXPECT_TRUE(torch::allclose(
          y16.to(torch::kFloat),
          torch::addmm(bias.to(torch::kFloat), x.to(torch::kFloat), w16.to(torch::kFloat)), tol,
          tol));
      EXPECT_TRUE(torch::equal(PackedLinear(x.narrow(0, 12, 1), p16, bias), y16.narrow(0, 12, 1)));
      // An odd number of input positions pairs the last one with a zero.
      const torch::Tensor w_odd = torch::randn({95, 70}).to(torch::kBFloat16);
      const torch::Tensor x_odd = torch::randn({3, 95}).to(dtype);
      EXPECT_TRUE(torch::allclose(
          PackedLinear(x_odd, PackedWeight::Bf16(w_odd), {}).to(torch::kFloat),
          torch::matmul(x_odd.to(torch::kFloat), w_odd.to(torch::kFloat)), tol, tol));
      // [batch, time, in] keeps its leading shape; no bias.
      EXPECT_EQ(PackedLinear(x.view({13, 1, 95}), q, {}).sizes(),
                (std::vector<int64_t>{13, 1, 130}));
    }
    SetVnniKernelsForTesting(previous_vnni);
    SetAvx512KernelsForTesting(previous);
  }
  const PackedWeight q = PackedWeight::Int8(torch::randn({8, 4}));
  EXPECT_THROW(PackedLinear(torch::randn({2, 9}), q, {}), c10::Error);
  EXPECT_THROW(PackedLinear(torch::randn({2, 8}), q, torch::randn({5})), c10::Error);
}

TEST(RowLayerNorm, MatchesTorchsLayerNorm) {
  for (bool avx512 : {true, false}) {
    const bool previous = SetAvx512KernelsForTesting(avx512);
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      for (int64_t C : {768, 70, 5}) {  // whole vectors, a tail, less than one vector
        torch::manual_seed(C);
        const torch::Tensor x = (torch::randn({9, C}) * 3 + 1).to(dtype);
        const torch::Tensor w = torch::randn({C}).to(dtype), b = torch::randn({C}).to(dtype);
        const torch::Tensor want = at::layer_norm(x.to(torch::kFloat), {C}, w.to(torch::kFloat),
                                                  b.to(torch::kFloat), 1e-5);
        const torch::Tensor got = RowLayerNorm(x, w, b, 1e-5);
        ASSERT_EQ(got.scalar_type(), dtype);
        const double tol = dtype == torch::kFloat ? 1e-5 : 2e-2;  // bfloat16: its last bit
        EXPECT_TRUE(torch::allclose(got.to(torch::kFloat), want, tol, tol))
            << avx512 << " " << dtype << " " << C;
        // Rows are independent: a row alone equals itself in the batch.
        EXPECT_TRUE(torch::equal(RowLayerNorm(x.narrow(0, 4, 1), w, b, 1e-5), got.narrow(0, 4, 1)));
      }
    }
    SetAvx512KernelsForTesting(previous);
  }
  EXPECT_THROW(RowLayerNorm(torch::randn({2, 8}), torch::ones({7}), torch::zeros({7}), 1e-5),
               c10::Error);
}

TEST(PackedLinear, PackedModelsStayCloseToTheFloatModel) {
  Gpt2Config config = testing::TinyConfig();
  config.n_embd = 64;
  Gpt2 reference(config), quantized(config);
  reference->InitWeights(9);
  quantized->InitWeights(9);
  reference->eval();
  quantized->eval();
  quantized->PackInt8();
  EXPECT_TRUE(quantized->packed());
  torch::NoGradGuard g;
  KvCache a = KvCache::Allocate(config, 1, 32, torch::kFloat);
  KvCache b = KvCache::Allocate(config, 1, 32, torch::kFloat);
  PrefillChunk chunk;
  chunk.slot = 0;
  chunk.tokens = testing::RandomIds(1, 20, 101, 3)[0];
  chunk.logits = true;
  const torch::Tensor want = reference->Step(torch::Tensor(), SlotBatch{}, chunk, &a);
  const torch::Tensor got = quantized->Step(torch::Tensor(), SlotBatch{}, chunk, &b);
  const double spread = (want.max() - want.min()).item<double>();
  EXPECT_LT((got - want).abs().max().item<double>(), 0.02 * spread);
  EXPECT_EQ(got.argmax(-1).item<int64_t>(), want.argmax(-1).item<int64_t>());
  // bfloat16 packing: prompt rows keep the dense weights (the same logits bit for bit as the
  // unpacked bfloat16 model); decode rows stream the packed copy and stay close.
  Gpt2 dense(config), packed(config);
  dense->InitWeights(9);
  packed->InitWeights(9);
  for (Gpt2* m : {&dense, &packed}) {
    (*m)->eval();
    (*m)->to(torch::kBFloat16);
  }
  packed->PackBf16();
  KvCache c = KvCache::Allocate(config, 2, 32, torch::kBFloat16);
  KvCache d = KvCache::Allocate(config, 2, 32, torch::kBFloat16);
  const torch::Tensor prompt_dense = dense->Step(torch::Tensor(), SlotBatch{}, chunk, &c);
  const torch::Tensor prompt_packed = packed->Step(torch::Tensor(), SlotBatch{}, chunk, &d);
  EXPECT_TRUE(torch::equal(prompt_dense, prompt_packed));
  SlotBatch batch;
  batch.slots = torch::tensor(std::vector<int64_t>{0});
  batch.positions = torch::tensor(std::vector<int64_t>{20});
  batch.max_length = 21;
  const torch::Tensor token = torch::tensor(std::vector<int64_t>{7});
  const torch::Tensor next_dense = dense->DecodeSlots(token, batch, &c).to(torch::kFloat);
  const torch::Tensor next_packed = packed->DecodeSlots(token, batch, &d).to(torch::kFloat);
  const double range = (next_dense.max() - next_dense.min()).item<double>();
  EXPECT_LT((next_packed - next_dense).abs().max().item<double>(), 0.05 * range);
}

}  // namespace
}  // namespace copyforge
