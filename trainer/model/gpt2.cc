#include "trainer/model/gpt2.h"

#include <cmath>

#include "trainer/device/torch_compat.h"
#include "trainer/model/decode_step.h"
#include "trainer/model/layer_norm.h"
#include "trainer/model/slot_attention.h"

namespace copyforge {
namespace F = torch::nn::functional;

namespace {

// Math libraries round a single row (matrix-vector) differently from a row among several; a lone
// row is run as two so that its result does not depend on what else is in the batch.
torch::Tensor RowStable(const torch::Tensor& t) { return t.size(0) == 1 ? torch::cat({t, t}) : t; }

// A step's LayerNorm over rows [0, decode) decode tokens and the rest prompt rows. With packed
// weights the decode rows go through RowLayerNorm (one float32 pass; ATen's bfloat16 LayerNorm
// costs several microseconds a call at one row); prompt rows keep ATen's, so prompt results stay
// those of the unpacked model. Each row's result depends on its kind only.
torch::Tensor StepNorm(torch::nn::LayerNorm& ln, const torch::Tensor& x, int64_t decode,
                       bool packed) {
  if (!packed || decode == 0) return ln->forward(x);
  const auto fused = [&](const torch::Tensor& rows) {
    return RowLayerNorm(rows, ln->weight, ln->bias, ln->options.eps());
  };
  const int64_t n = x.size(0);
  if (decode == n) return fused(x);
  return torch::cat({fused(x.narrow(0, 0, decode)), ln->forward(x.narrow(0, decode, n - decode))});
}

}  // namespace

KvCache KvCache::Allocate(const Gpt2Config& config, int64_t batch, int64_t capacity,
                          const torch::TensorOptions& options) {
  KvCache cache;
  cache.capacity = capacity;
  for (int64_t l = 0; l < config.n_layer; ++l) {
    cache.keys.push_back(
        torch::zeros({batch, config.n_head, capacity, config.head_dim()}, options));
    cache.values.push_back(
        torch::zeros({batch, config.n_head, capacity, config.head_dim()}, options));
  }
  return cache;
}

Conv1DImpl::Conv1DImpl(int64_t in, int64_t out) {
  weight = register_parameter("weight", torch::empty({in, out}));
  bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor Conv1DImpl::Step(const torch::Tensor& x, int64_t decode, Epilogue epilogue,
                               const torch::Tensor& residual) {
  const int64_t n = x.size(0);
  if (packed != nullptr && (weight.numel() == 0 || decode == n)) {
    return PackedLinear(x, *packed, bias, epilogue, residual);
  }
  const auto dense = [&](const torch::Tensor& rows, const torch::Tensor& res) {
    torch::Tensor y = torch::addmm(bias, RowStable(rows), weight).narrow(0, 0, rows.size(0));
    if (epilogue == Epilogue::kGeluTanh) y = at::gelu(y, "tanh");
    return res.defined() ? res + y : y;
  };
  if (packed == nullptr) return dense(x, residual);
  const auto part = [&](const torch::Tensor& t, int64_t from, int64_t count) {
    return t.defined() ? t.narrow(0, from, count) : torch::Tensor();
  };
  torch::Tensor prompt = dense(x.narrow(0, decode, n - decode), part(residual, decode, n - decode));
  if (decode == 0) return prompt;
  return torch::cat(
      {PackedLinear(x.narrow(0, 0, decode), *packed, bias, epilogue, part(residual, 0, decode)),
       prompt});
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor& x) {
  if (packed != nullptr && weight.numel() == 0) return PackedLinear(x, *packed, bias);
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(1);
  return torch::addmm(bias, x.reshape({-1, x.size(-1)}), weight).view(sizes);
}

AttentionImpl::AttentionImpl(const Gpt2Config& config)
    : n_head_(config.n_head),
      head_dim_(config.head_dim()),
      attn_pdrop_(config.attn_pdrop),
      resid_pdrop_(config.resid_pdrop) {
  c_attn = register_module("c_attn", Conv1D(config.n_embd, 3 * config.n_embd));
  c_proj = register_module("c_proj", Conv1D(config.n_embd, config.n_embd));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, KvCache* cache, int64_t layer) {
  return F::dropout(c_proj(Attend(c_attn(x), cache, layer)),
                    F::DropoutFuncOptions().p(resid_pdrop_).training(is_training()));
}

torch::Tensor AttentionImpl::Attend(const torch::Tensor& qkv_in, KvCache* cache, int64_t layer) {
  const int64_t B = qkv_in.size(0), T = qkv_in.size(1), C = qkv_in.size(2) / 3;
  auto qkv = qkv_in.split(C, /*dim=*/2);
  auto heads = [&](const torch::Tensor& t) {
    return t.view({B, T, n_head_, head_dim_}).transpose(1, 2);
  };
  torch::Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
  int64_t past = 0;
  if (cache != nullptr) {
    past = cache->length;
    TORCH_CHECK(past + T <= cache->capacity, "KV cache of capacity ", cache->capacity,
                " cannot hold ", past + T, " positions");
    cache->keys[layer].narrow(2, past, T).copy_(k);
    cache->values[layer].narrow(2, past, T).copy_(v);
    k = cache->keys[layer].narrow(2, 0, past + T);
    v = cache->values[layer].narrow(2, 0, past + T);
  }
  if (compat::kHasSdpa && q.is_cuda() && past == 0 && T > 1) {
    // Fused causal attention on the GPU (flash / memory-efficient kernels of libtorch 2.x).
    const double p = is_training() ? attn_pdrop_ : 0.0;
    return compat::CausalSdpa(q, k, v, p).transpose(1, 2).reshape({B, T, C});
  }
  torch::Tensor att =
      torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim_)));
  if (T > 1) {
    // Query i sits at absolute position past + i and may attend to keys 0 .. past + i.
    auto future = torch::ones({T, past + T}, torch::dtype(torch::kBool).device(qkv_in.device()))
                      .triu(past + 1);
    att = att.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  att = torch::softmax(att, -1);
  att = F::dropout(att, F::DropoutFuncOptions().p(attn_pdrop_).training(is_training()));
  return torch::matmul(att, v).transpose(1, 2).reshape({B, T, C});
}

torch::Tensor AttentionImpl::Step(const torch::Tensor& x, KvCache* pool, KvCache* prefill_cache,
                                  int64_t layer, const StepRows& rows,
                                  const torch::Tensor& residual) {
  const int64_t C = x.size(1), B = rows.decode, T = rows.prefill;
  const torch::Tensor qkv = c_attn->Step(x, B);  // [N, 3C]
  std::vector<torch::Tensor> parts;
  if (B > 0) {
    const torch::Tensor q = qkv.narrow(0, 0, B);
    const SlotBatch& d = *rows.slots;
    // On the CPU each slot's keys and values are read in place; elsewhere they are gathered.
    parts.push_back(
        x.device().is_cpu()
            ? SlotDecodeAttention(q, pool->keys[layer], pool->values[layer], d.slots, d.positions)
            : SlotDecodeAttentionReference(q, pool->keys[layer], pool->values[layer], d.slots,
                                           d.positions, d.max_length));
  }
  if (T > 0 && x.device().is_cpu()) {
    // Row by row like decoding, so the result does not depend on the chunk's length.
    parts.push_back(SlotPrefillAttention(qkv.narrow(0, B, T), pool->keys[layer],
                                         pool->values[layer], rows.prefill_slot,
                                         rows.prefill_start));
  } else if (T > 0) {
    parts.push_back(Attend(qkv.narrow(0, B, T).unsqueeze(0), prefill_cache, layer)[0]);
  }
  torch::Tensor y = parts.size() == 1 ? parts[0] : torch::cat(parts);
  if (x.size(0) > B + T) y = torch::cat({y, y.narrow(0, 0, x.size(0) - B - T)});  // padding
  return c_proj->Step(y.view({x.size(0), C}), B, Epilogue::kNone, residual);
}

MlpImpl::MlpImpl(const Gpt2Config& config) : resid_pdrop_(config.resid_pdrop) {
  c_fc = register_module("c_fc", Conv1D(config.n_embd, 4 * config.n_embd));
  c_proj = register_module("c_proj", Conv1D(4 * config.n_embd, config.n_embd));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = c_proj(at::gelu(c_fc(x), "tanh"));
  return F::dropout(y, F::DropoutFuncOptions().p(resid_pdrop_).training(is_training()));
}

BlockImpl::BlockImpl(const Gpt2Config& config) {
  auto ln = [&] {
    return torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon));
  };
  ln_1 = register_module("ln_1", ln());
  attn = register_module("attn", Attention(config));
  ln_2 = register_module("ln_2", ln());
  mlp = register_module("mlp", Mlp(config));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, KvCache* cache, int64_t layer) {
  torch::Tensor y = x + attn(ln_1(x), cache, layer);
  return y + mlp(ln_2(y));
}

torch::Tensor BlockImpl::Step(const torch::Tensor& x, KvCache* pool, KvCache* prefill_cache,
                              int64_t layer, const StepRows& rows) {
  const bool packed = attn->c_attn->packed != nullptr;
  const torch::Tensor y =
      attn->Step(StepNorm(ln_1, x, rows.decode, packed), pool, prefill_cache, layer, rows, x);
  const torch::Tensor h =
      mlp->c_fc->Step(StepNorm(ln_2, y, rows.decode, packed), rows.decode, Epilogue::kGeluTanh);
  return mlp->c_proj->Step(h, rows.decode, Epilogue::kNone, y);
}

Gpt2Impl::Gpt2Impl(const Gpt2Config& config) : config_(config) {
  wte = register_module("wte", torch::nn::Embedding(config.vocab_size, config.n_embd));
  wpe = register_module("wpe", torch::nn::Embedding(config.n_positions, config.n_embd));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layer; ++i) {
    blocks_.push_back(Block(config));
    h->push_back(blocks_.back());
  }
  ln_f = register_module(
      "ln_f", torch::nn::LayerNorm(
                  torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon)));
}

torch::Tensor Gpt2Impl::Hidden(const torch::Tensor& input_ids, KvCache* cache) {
  const int64_t T = input_ids.size(1);
  const int64_t start = cache != nullptr ? cache->length : 0;
  TORCH_CHECK(start + T <= config_.n_positions, "sequence of ", start + T,
              " positions exceeds n_positions ", config_.n_positions);
  auto positions =
      torch::arange(start, start + T, torch::dtype(torch::kLong).device(input_ids.device()));
  torch::Tensor x = wte(input_ids) + wpe(positions).unsqueeze(0);
  x = F::dropout(x, F::DropoutFuncOptions().p(config_.embd_pdrop).training(is_training()));
  for (int64_t l = 0; l < config_.n_layer; ++l) x = blocks_[l]->forward(x, cache, l);
  if (cache != nullptr) cache->length += T;
  return ln_f(x);
}

torch::Tensor Gpt2Impl::DecodeSlots(const torch::Tensor& tokens, const SlotBatch& batch,
                                    KvCache* pool) {
  return Step(tokens, batch, PrefillChunk{}, pool);
}

torch::Tensor Gpt2Impl::Step(const torch::Tensor& decode_tokens, const SlotBatch& decode,
                             const PrefillChunk& prefill, KvCache* pool) {
  StepRows rows;
  rows.slots = &decode;
  rows.decode = decode_tokens.defined() ? decode_tokens.numel() : 0;
  rows.prefill = prefill.tokens.defined() ? prefill.tokens.numel() : 0;
  rows.prefill_slot = prefill.slot;
  rows.prefill_start = prefill.start;
  TORCH_CHECK(rows.decode + rows.prefill > 0, "Step needs decode rows or a prefill chunk");
  std::vector<torch::Tensor> ids, positions;
  if (rows.decode > 0) {
    ids.push_back(decode_tokens.view({-1}));
    positions.push_back(decode.positions.view({-1}));
  }
  // The prefill chunk's rows use a view of its slot, filled up to its start.
  KvCache view;
  if (rows.prefill > 0) {
    TORCH_CHECK(prefill.slot >= 0 && prefill.slot < pool->keys[0].size(0), "prefill slot ",
                prefill.slot, " is outside the pool");
    TORCH_CHECK(prefill.start + rows.prefill <= config_.n_positions, "sequence of ",
                prefill.start + rows.prefill, " positions exceeds n_positions ",
                config_.n_positions);
    view.capacity = pool->capacity;
    view.length = prefill.start;
    for (size_t l = 0; l < pool->keys.size(); ++l) {
      view.keys.push_back(pool->keys[l].narrow(0, prefill.slot, 1));
      view.values.push_back(pool->values[l].narrow(0, prefill.slot, 1));
    }
    ids.push_back(prefill.tokens.view({-1}));
    positions.push_back(torch::arange(prefill.start, prefill.start + rows.prefill,
                                      torch::dtype(torch::kLong).device(prefill.tokens.device())));
  }
  const torch::Tensor id = ids.size() == 1 ? ids[0] : torch::cat(ids);
  const torch::Tensor position = positions.size() == 1 ? positions[0] : torch::cat(positions);
  torch::Tensor x = wte(id) + wpe(position);  // [N, C]
  if (packed() && rows.prefill == 0 && UseFusedDecode()) {
    return FusedDecodeStep(Decoder(), x, pool->keys, pool->values, decode.slots, decode.positions);
  }
  if (!packed()) x = RowStable(x);  // packed decode rows are computed alone in any case
  for (int64_t l = 0; l < config_.n_layer; ++l) x = blocks_[l]->Step(x, pool, &view, l, rows);
  // Logits only for the rows that sample: every decode row, and the chunk's last token when the
  // prompt ends with it.
  torch::Tensor out = x.narrow(0, 0, rows.decode);
  if (prefill.logits) out = torch::cat({out, x.narrow(0, rows.decode + rows.prefill - 1, 1)});
  const int64_t n = out.size(0);
  if (n == 0) return torch::empty({0, config_.vocab_size}, x.options());
  if (!packed()) return LmHead(ln_f(RowStable(out))).narrow(0, 0, n);
  return StepLogits(StepNorm(ln_f, out, rows.decode, /*packed=*/true), rows.decode);
}

FusedDecoder Gpt2Impl::Decoder() const {
  FusedDecoder d;
  for (const Block& b : blocks_) {
    const Conv1D &qkv = b->attn->c_attn, &proj = b->attn->c_proj, &fc = b->mlp->c_fc,
                 &proj2 = b->mlp->c_proj;
    d.layers.push_back({qkv->packed.get(), proj->packed.get(), fc->packed.get(),
                        proj2->packed.get(), qkv->bias, proj->bias, fc->bias, proj2->bias,
                        b->ln_1->weight, b->ln_1->bias, b->ln_2->weight, b->ln_2->bias});
  }
  d.lnf_weight = ln_f->weight;
  d.lnf_bias = ln_f->bias;
  d.eps = static_cast<float>(ln_f->options.eps());
  d.lm_head = lm_head_packed_.get();
  return d;
}

torch::Tensor Gpt2Impl::StepLogits(const torch::Tensor& hidden, int64_t decode) {
  const int64_t n = hidden.size(0);
  if (!dense_prompts_ || decode == n) return PackedLinear(hidden, *lm_head_packed_, {});
  const torch::Tensor last = hidden.narrow(0, decode, 1);  // the prompt's last row
  const torch::Tensor prompt = torch::matmul(RowStable(last), wte->weight.t()).narrow(0, 0, 1);
  if (decode == 0) return prompt;
  return torch::cat({PackedLinear(hidden.narrow(0, 0, decode), *lm_head_packed_, {}), prompt});
}

torch::Tensor Gpt2Impl::LmHead(const torch::Tensor& hidden) {
  return packed() && !dense_prompts_ ? PackedLinear(hidden, *lm_head_packed_, {})
                                     : torch::matmul(hidden, wte->weight.t());
}

void Gpt2Impl::Pack(PackedWeight (*pack)(const torch::Tensor&), bool keep_dense) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(wte->weight.device().is_cpu(), "packed weights are served on the CPU");
  // Packed in the order a step reads them, then laid out back to back in that order.
  std::vector<std::pair<Conv1D*, PackedWeight>> packed;
  for (Block& b : blocks_) {
    for (Conv1D* c : {&b->attn->c_attn, &b->attn->c_proj, &b->mlp->c_fc, &b->mlp->c_proj}) {
      packed.emplace_back(c, pack((*c)->weight));
      if (!keep_dense) (*c)->weight.set_data(torch::empty({0}, (*c)->weight.options()));
    }
  }
  PackedWeight head = pack(wte->weight.t());
  std::vector<PackedWeight*> order;
  for (auto& [conv, w] : packed) order.push_back(&w);
  order.push_back(&head);
  PlaceInOneArena(order);
  for (auto& [conv, w] : packed)
    (*conv)->packed = std::make_shared<const PackedWeight>(std::move(w));
  lm_head_packed_ = std::make_shared<const PackedWeight>(std::move(head));
  dense_prompts_ = keep_dense;
}

void Gpt2Impl::PackInt8() { Pack(&PackedWeight::Int8, /*keep_dense=*/false); }
void Gpt2Impl::PackBf16() { Pack(&PackedWeight::Bf16, /*keep_dense=*/true); }

torch::Tensor Gpt2Impl::forward(const torch::Tensor& input_ids, KvCache* cache) {
  return LmHead(Hidden(input_ids, cache));
}

torch::Tensor Gpt2Impl::Loss(const torch::Tensor& logits, const torch::Tensor& targets,
                             int64_t ignore_index) {
  return F::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat),
                          targets.reshape({-1}),
                          F::CrossEntropyFuncOptions().ignore_index(ignore_index));
}

void Gpt2Impl::InitWeights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = config_.initializer_range;
  const double proj_std = std / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  for (auto& [name, t] : NamedTensors()) {
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool is_ln = name.find("ln_") != std::string::npos;
    if (is_ln && !is_bias) {
      t.fill_(1.0);
    } else if (is_bias) {
      t.zero_();
    } else {
      const bool residual = name.find("c_proj.weight") != std::string::npos;
      // Drawn on the CPU so the same seed gives the same weights on every device.
      torch::Tensor w =
          torch::empty(t.sizes(), torch::kFloat).normal_(0.0, residual ? proj_std : std, gen);
      t.copy_(w);
    }
  }
}

std::vector<std::pair<std::string, torch::Tensor>> Gpt2Impl::NamedTensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : named_parameters(/*recurse=*/true))
    out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace copyforge
