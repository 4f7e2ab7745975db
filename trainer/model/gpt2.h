// The GPT-2 language model (Radford et al. 2019) in libtorch, laid out like Hugging Face's
// GPT2LMHeadModel so that checkpoints map one-to-one: learned position embeddings, pre-LayerNorm
// blocks, causal self-attention, a tanh-GELU MLP, a final LayerNorm, and an LM head tied to the
// token embedding. Linear layers use HF's Conv1D layout: weight [in, out], y = x W + b.
#ifndef COPYFORGE_TRAINER_MODEL_GPT2_H_
#define COPYFORGE_TRAINER_MODEL_GPT2_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "trainer/model/gpt2_config.h"
#include "trainer/model/packed_linear.h"

namespace copyforge {

struct FusedDecoder;  // trainer/model/decode_step.h

// Keys and values of past positions for one batch of sequences that advance together.
// Owned by the caller; valid for the model it was allocated for.
struct KvCache {
  std::vector<torch::Tensor> keys;    // per layer [batch, n_head, capacity, head_dim]
  std::vector<torch::Tensor> values;  // per layer, same shape
  int64_t length = 0;                 // positions filled so far
  int64_t capacity = 0;

  static KvCache Allocate(const Gpt2Config& config, int64_t batch, int64_t capacity,
                          const torch::TensorOptions& options);
};

// One decode step of sequences that sit at different positions of a slot-based KV cache (a
// KvCache whose batch dimension is a pool of slots, as continuous batching uses): row b of the step
// is the sequence in pool slot slots[b], whose new token is at position positions[b].
struct SlotBatch {
  torch::Tensor slots;      // [B] int64
  torch::Tensor positions;  // [B] int64
  int64_t max_length = 0;   // max(positions) + 1
};

// A chunk of one sequence's prompt that joins an engine step (see Gpt2Impl::Step).
struct PrefillChunk {
  int64_t slot = -1;     // the sequence's slot in the pool
  int64_t start = 0;     // position of tokens[0]; the slot holds positions 0 .. start - 1
  torch::Tensor tokens;  // [T] int64; undefined: no prefill in this step
  bool logits = false;   // return the logits of the chunk's last token (the prompt ends here)
};

// The rows of one engine step: `decode` single-token rows (positions in *slots), then `prefill`
// rows of one chunk, then padding.
struct StepRows {
  const SlotBatch* slots = nullptr;
  int64_t decode = 0, prefill = 0;
  int64_t prefill_slot = -1, prefill_start = 0;  // where the prefill rows go
};

// y = x W + b with W stored [in, out] (Hugging Face's Conv1D).
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  // A serving step's rows: [0, decode) decode tokens, the rest a prompt chunk; then `epilogue`
  // and `residual` (same rows) added. Decode rows go through the packed weight when there is
  // one; prompt rows through the dense weight when it was kept (one row run as two, see
  // Gpt2Impl::Step), else the packed one. Each row's result depends on its kind only.
  torch::Tensor Step(const torch::Tensor& x, int64_t decode, Epilogue epilogue = Epilogue::kNone,
                     const torch::Tensor& residual = {});
  torch::Tensor weight, bias;
  // Set by Gpt2Impl::PackInt8 / PackBf16 (trainer/model/packed_linear.h); after PackInt8
  // `weight` is empty and forward uses the packed one too.
  std::shared_ptr<const PackedWeight> packed;
};
TORCH_MODULE(Conv1D);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const Gpt2Config& config);
  // x [B, T, C]. With `cache`, x holds positions cache->length .. +T and K/V of layer `layer`
  // are appended (the caller advances cache->length once all layers ran).
  torch::Tensor forward(const torch::Tensor& x, KvCache* cache, int64_t layer);
  // Attention of qkv [B, T, 3C] (c_attn's output) as in forward, before c_proj.
  torch::Tensor Attend(const torch::Tensor& qkv, KvCache* cache, int64_t layer);
  // x [N, C], the rows of an engine step (see StepRows): decode rows write their K/V into the
  // pool at their slot's position and attend to that slot's keys 0 .. position; prefill rows
  // extend `prefill_cache` (a view of their slot) causally.
  // Returns residual + the attention's output.
  torch::Tensor Step(const torch::Tensor& x, KvCache* pool, KvCache* prefill_cache, int64_t layer,
                     const StepRows& rows, const torch::Tensor& residual);
  Conv1D c_attn{nullptr}, c_proj{nullptr};

 private:
  int64_t n_head_, head_dim_;
  double attn_pdrop_, resid_pdrop_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const Gpt2Config& config);
  torch::Tensor forward(const torch::Tensor& x);
  Conv1D c_fc{nullptr}, c_proj{nullptr};

 private:
  double resid_pdrop_;
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const Gpt2Config& config);
  torch::Tensor forward(const torch::Tensor& x, KvCache* cache, int64_t layer);
  torch::Tensor Step(const torch::Tensor& x, KvCache* pool, KvCache* prefill_cache, int64_t layer,
                     const StepRows& rows);
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

class Gpt2Impl : public torch::nn::Module {
 public:
  explicit Gpt2Impl(const Gpt2Config& config);

  // input_ids [B, T] (int64). Returns logits [B, T, vocab_size]. Without a cache, positions are
  // 0..T-1; with one, they continue from cache->length, and the cache advances by T.
  torch::Tensor forward(const torch::Tensor& input_ids, KvCache* cache = nullptr);
  // One decode step for the sequences of `batch` in the slot pool `pool` (see SlotBatch):
  // tokens [B] int64 are the new tokens; returns logits [B, vocab_size].
  torch::Tensor DecodeSlots(const torch::Tensor& tokens, const SlotBatch& batch, KvCache* pool);
  // One continuous-batching step: the decode rows (`decode_tokens` [B] at `decode`, B may be 0
  // with undefined tensors) and an optional prompt chunk go through every layer together, so
  // the weights are read once for both. Returns logits [B (+1 with prefill.logits), vocab].
  torch::Tensor Step(const torch::Tensor& decode_tokens, const SlotBatch& decode,
                     const PrefillChunk& prefill, KvCache* pool);
  // Final hidden states [B, T, C] (before the LM head).
  torch::Tensor Hidden(const torch::Tensor& input_ids, KvCache* cache = nullptr);
  // Mean cross-entropy of logits [B, T, V] against targets [B, T]; targets equal to
  // `ignore_index` do not count (fine-tuning masks the prompt this way).
  static torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& targets,
                            int64_t ignore_index = -100);

  // GPT-2 initialisation from `seed`: weights N(0, initializer_range), residual projections
  // scaled by 1/sqrt(2 n_layer), biases 0, LayerNorm weight 1.
  void InitWeights(uint64_t seed);

  // For serving only: every block's projection weights and the LM head become int8 with a scale
  // per output column (trainer/model/packed_linear.h); the float projection weights are freed.
  // The embeddings, layer norms and biases keep their dtype. CPU only.
  void PackInt8();
  // For serving on the CPU: decode rows of Step stream bfloat16 copies of the projection weights
  // and the LM head packed for the decode kernel; prompt chunks keep the dense weights.
  void PackBf16();
  bool packed() const { return lm_head_packed_ != nullptr; }
  // Logits of final hidden states: the tied embedding, or its int8 copy after PackInt8.
  torch::Tensor LmHead(const torch::Tensor& hidden);

  // Parameters under their Hugging Face names without the "transformer." prefix
  // ("wte.weight", "h.0.attn.c_attn.weight", ...), in a fixed order.
  std::vector<std::pair<std::string, torch::Tensor>> NamedTensors() const;

  const Gpt2Config& config() const { return config_; }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  Gpt2Config config_;
  std::vector<Block> blocks_;
  // Step's logits for rows [0, decode) decode tokens and the rest prompt rows.
  torch::Tensor StepLogits(const torch::Tensor& hidden, int64_t decode);
  // The packed weights and the other parameters a fused decode step reads (decode_step.h).
  FusedDecoder Decoder() const;
  // Packs every projection and the LM head with `pack`; frees the dense projections unless kept.
  void Pack(PackedWeight (*pack)(const torch::Tensor&), bool keep_dense);
  std::shared_ptr<const PackedWeight> lm_head_packed_;  // wte transposed, once packed
  bool dense_prompts_ = true;  // prompt rows use the dense weights (false after PackInt8)
};
TORCH_MODULE(Gpt2);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_MODEL_GPT2_H_
