#include "trainer/model/decode_step.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>

#include "trainer/model/layer_norm.h"
#include "trainer/model/slot_attention.h"

namespace copyforge {
namespace {

std::atomic<bool>& FusedEnabled() {
  static std::atomic<bool> enabled([] {
    const char* v = std::getenv("COPYFORGE_FUSED_DECODE");
    return !(v != nullptr && std::strcmp(v, "0") == 0);
  }());
  return enabled;
}

// The work of every stage of a step, handed out to `parts` threads: each stage's tasks are cut
// into `parts` contiguous shares; a thread drains its own share first, then the others'.
class Shares {
 public:
  Shares(const std::vector<int64_t>& counts, int parts)
      : parts_(parts), shares_(new Share[counts.size() * static_cast<size_t>(parts)]) {
    for (size_t s = 0; s < counts.size(); ++s) {
      for (int p = 0; p < parts; ++p) {
        Share& share = shares_[s * parts + p];
        share.next.store(counts[s] * p / parts, std::memory_order_relaxed);
        share.end = counts[s] * (p + 1) / parts;
      }
    }
  }

  template <typename F>
  void Drain(size_t stage, int me, F&& task) {
    for (int k = 0; k < parts_; ++k) {
      Share& share = shares_[stage * parts_ + (me + k) % parts_];
      for (int64_t i; (i = share.next.fetch_add(1, std::memory_order_relaxed)) < share.end;) {
        task(i);
      }
    }
  }

 private:
  struct alignas(64) Share {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };
  int parts_;
  std::unique_ptr<Share[]> shares_;
};

// A LayerNorm's parameters, float32 or bfloat16 (the two of one norm share a dtype).
struct Norm {
  const void* weight = nullptr;
  const void* bias = nullptr;
  bool bf16 = false;

  template <typename T>
  void Rows(const T* x, int64_t rows, int64_t C, float eps, T* y) const {
    if (bf16) {
      LayerNormRows(x, rows, C, static_cast<const c10::BFloat16*>(weight),
                    static_cast<const c10::BFloat16*>(bias), eps, y);
    } else {
      LayerNormRows(x, rows, C, static_cast<const float*>(weight), static_cast<const float*>(bias),
                    eps, y);
    }
  }
};

bool Floating(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16;
}

Norm NormOf(const torch::Tensor& weight, const torch::Tensor& bias, int64_t C) {
  TORCH_CHECK(weight.numel() == C && bias.numel() == C && weight.is_contiguous() &&
                  bias.is_contiguous() && Floating(weight) &&
                  bias.scalar_type() == weight.scalar_type(),
              "FusedDecodeStep: a LayerNorm's weight and bias must be [", C,
              "], contiguous, float32 or bfloat16 alike");
  return {weight.data_ptr(), bias.data_ptr(), weight.scalar_type() == torch::kBFloat16};
}

PackedProduct::Bias BiasOf(const torch::Tensor& bias, const PackedWeight& w) {
  TORCH_CHECK(!bias.defined() || (bias.numel() == w.out && bias.is_contiguous() && Floating(bias)),
              "FusedDecodeStep: a bias must be [", w.out, "], contiguous, float32 or bfloat16");
  return PackedProduct::Bias::Of(bias);
}

struct LayerPlan {
  const PackedWeight *qkv, *proj, *fc, *proj2;
  PackedProduct::Bias qkv_bias, proj_bias, fc_bias, proj2_bias;
  Norm ln1, ln2;
};

// The tasks of each stage of a step, in order: per layer the QKV projection's column groups, the
// attention's (row, head) pairs, the output projection's, the MLP's two; then the LM head's.
std::vector<int64_t> StageCounts(const std::vector<LayerPlan>& layers, const PackedWeight& lm_head,
                                 int64_t attention_tasks) {
  std::vector<int64_t> counts;
  for (const LayerPlan& l : layers) {
    for (const int64_t n : {l.qkv->packed.size(0), attention_tasks, l.proj->packed.size(0),
                            l.fc->packed.size(0), l.proj2->packed.size(0)}) {
      counts.push_back(n);
    }
  }
  counts.push_back(lm_head.packed.size(0));
  return counts;
}

template <typename T>
void Run(const FusedDecoder& model, const std::vector<LayerPlan>& layers, const Norm& lnf,
         std::vector<torch::Tensor>& keys, std::vector<torch::Tensor>& values, const int64_t* slots,
         const int64_t* positions, int64_t B, int64_t C, T* x, T* logits) {
  const int64_t H = keys[0].size(1);
  // Buffers of the stages' outputs, shared by the threads.
  std::vector<T> qkv(B * 3 * C), att(B * C), y(B * C), h(B * 4 * C);
  SlotDecodeTasks<T> attention;
  attention.qkv = qkv.data();
  attention.slots = slots;
  attention.positions = positions;
  attention.y = att.data();
  attention.B = B;
  attention.H = H;
  attention.capacity = keys[0].size(2);
  attention.D = keys[0].size(3);
  const int parts = omp_in_parallel() ? 1 : std::max(1, at::get_num_threads());
  Shares shares(StageCounts(layers, *model.lm_head, B * H), parts);
  // Each thread's LayerNorm output and attention scratch, allocated before the region (nothing
  // in it may throw outside `guarded`).
  std::vector<std::vector<T>> normed_by_thread(parts, std::vector<T>(B * C));
  std::vector<std::vector<float>> scratch_by_thread(parts);
  std::mutex error_mu;
  std::exception_ptr error;  // guarded by error_mu: the first failure (the threads still meet
                             // at every barrier and it is rethrown after the region)
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(parts)
  {
    const int me = omp_get_thread_num();
    size_t stage = 0;
    std::vector<T>& normed = normed_by_thread[me];
    std::vector<float>& scratch = scratch_by_thread[me];
    const auto guarded = [&](auto&& work) {
      if (!failed.load(std::memory_order_relaxed)) {
        try {
          work();
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
      ++stage;
#pragma omp barrier
    };
    const auto product = [&](const T* in, const PackedWeight& w, PackedProduct::Bias bias,
                             Epilogue epilogue, const T* residual, T* out) {
      guarded([&] {
        const PackedProduct p(in, B, w, bias, epilogue, residual, out);
        shares.Drain(stage, me, [&](int64_t g) { p.Run(g, g + 1); });
      });
    };
    for (size_t l = 0; l < layers.size(); ++l) {
      const LayerPlan& layer = layers[l];
      layer.ln1.Rows(x, B, C, model.eps, normed.data());
      product(normed.data(), *layer.qkv, layer.qkv_bias, Epilogue::kNone, nullptr, qkv.data());
      guarded([&] {
        SlotDecodeTasks<T> a = attention;
        a.keys = keys[l].data_ptr<T>();
        a.values = values[l].data_ptr<T>();
        shares.Drain(stage, me, [&](int64_t task) { a.Run(task, task + 1, scratch); });
      });
      product(att.data(), *layer.proj, layer.proj_bias, Epilogue::kNone, x, y.data());
      layer.ln2.Rows(y.data(), B, C, model.eps, normed.data());
      product(normed.data(), *layer.fc, layer.fc_bias, Epilogue::kGeluTanh, nullptr, h.data());
      product(h.data(), *layer.proj2, layer.proj2_bias, Epilogue::kNone, y.data(), x);
    }
    lnf.Rows(x, B, C, model.eps, normed.data());
    product(normed.data(), *model.lm_head, {}, Epilogue::kNone, nullptr, logits);
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace

torch::Tensor FusedDecodeStep(const FusedDecoder& model, const torch::Tensor& x_in,
                              std::vector<torch::Tensor>& keys, std::vector<torch::Tensor>& values,
                              const torch::Tensor& slots_in, const torch::Tensor& positions_in) {
  TORCH_CHECK(x_in.device().is_cpu() && x_in.dim() == 2 && Floating(x_in),
              "FusedDecodeStep: x must be [B, C] float32 or bfloat16 on the CPU");
  TORCH_CHECK(model.lm_head != nullptr && !model.layers.empty() &&
                  keys.size() == model.layers.size() && values.size() == keys.size(),
              "FusedDecodeStep: one KV pool per layer and an LM head are needed");
  const int64_t B = x_in.size(0), C = x_in.size(1);
  const torch::Tensor slots = slots_in.to(torch::kLong).contiguous();
  const torch::Tensor positions = positions_in.to(torch::kLong).contiguous();
  TORCH_CHECK(slots.numel() == B && positions.numel() == B,
              "FusedDecodeStep: one slot and one position per row");
  for (size_t l = 0; l < keys.size(); ++l) {
    TORCH_CHECK(
        keys[l].dim() == 4 && keys[l].is_contiguous() && values[l].is_contiguous() &&
            keys[l].sizes() == keys[0].sizes() && values[l].sizes() == keys[0].sizes() &&
            keys[l].scalar_type() == x_in.scalar_type() &&
            values[l].scalar_type() == x_in.scalar_type() && keys[0].size(1) * keys[0].size(3) == C,
        "FusedDecodeStep: layer ", l, "'s KV pools must be [S, H, capacity, D], H x D = ", C,
        ", contiguous, in x's dtype");
  }
  CheckSlotDecodeRows(B, slots.data_ptr<int64_t>(), positions.data_ptr<int64_t>(), keys[0]);
  std::vector<LayerPlan> plans;
  for (const FusedLayer& l : model.layers) {
    TORCH_CHECK(l.qkv && l.proj && l.fc && l.proj2, "FusedDecodeStep: a layer lacks a weight");
    TORCH_CHECK(l.qkv->in == C && l.qkv->out == 3 * C && l.proj->in == C && l.proj->out == C &&
                    l.fc->in == C && l.fc->out == 4 * C && l.proj2->in == 4 * C &&
                    l.proj2->out == C,
                "FusedDecodeStep: the weights do not fit GPT-2's block of width ", C);
    plans.push_back({l.qkv, l.proj, l.fc, l.proj2, BiasOf(l.qkv_bias, *l.qkv),
                     BiasOf(l.proj_bias, *l.proj), BiasOf(l.fc_bias, *l.fc),
                     BiasOf(l.proj2_bias, *l.proj2), NormOf(l.ln1_weight, l.ln1_bias, C),
                     NormOf(l.ln2_weight, l.ln2_bias, C)});
  }
  TORCH_CHECK(model.lm_head->in == C, "FusedDecodeStep: the LM head does not take width ", C);
  const Norm lnf = NormOf(model.lnf_weight, model.lnf_bias, C);
  // The residual stream, updated in place (a copy: the caller's x stays as it was).
  torch::Tensor x = x_in.clone(torch::MemoryFormat::Contiguous);
  torch::Tensor logits = torch::empty({B, model.lm_head->out}, x.options());
  if (x.scalar_type() == torch::kFloat) {
    Run<float>(model, plans, lnf, keys, values, slots.data_ptr<int64_t>(),
               positions.data_ptr<int64_t>(), B, C, x.data_ptr<float>(), logits.data_ptr<float>());
  } else {
    Run<c10::BFloat16>(model, plans, lnf, keys, values, slots.data_ptr<int64_t>(),
                       positions.data_ptr<int64_t>(), B, C, x.data_ptr<c10::BFloat16>(),
                       logits.data_ptr<c10::BFloat16>());
  }
  return logits;
}

bool UseFusedDecode() { return FusedEnabled().load(std::memory_order_relaxed); }

bool SetFusedDecodeForTesting(bool enabled) { return FusedEnabled().exchange(enabled); }

}  // namespace copyforge
