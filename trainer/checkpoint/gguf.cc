#include "trainer/checkpoint/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "trainer/checkpoint/safetensors.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/model/gpt2_config.h"

namespace copyforge {

uint16_t FloatToHalf(float x) {
  uint32_t f;
  std::memcpy(&f, &x, 4);
  const uint32_t sign = (f >> 16) & 0x8000u;
  uint32_t mag = f & 0x7FFFFFFFu;
  if (mag >= 0x7F800000u) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7C00u | (mag > 0x7F800000u ? 0x200u : 0));
  }
  if (mag >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504
  if (mag < 0x38800000u) {  // a subnormal half (or zero): scale, then round to nearest even
    const float a = std::fabs(x) * 16777216.0f;  // 2^24: units of the smallest subnormal
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a)));
  }
  // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
  const uint32_t rounded = mag + 0xFFFu + ((mag >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? std::nanf("") : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits |= sign;
  std::memcpy(&v, &bits, 4);
  return v;
}

namespace {

// GGUF value types and the ggml tensor types written here.
enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };
enum : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ8_0 = 8 };
constexpr uint64_t kAlignment = 32;
constexpr int kQ8Block = 32;

class Writer {
 public:
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void F32(float v) { Raw(&v, 4); }
  void Str(const std::string& s) {
    U64(s.size());
    out_.append(s);
  }
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void Pad() { out_.append((kAlignment - out_.size() % kAlignment) % kAlignment, '\0'); }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

// The metadata key/value section, counted as it is written.
class Metadata {
 public:
  void U32(const std::string& k, uint32_t v) {
    Key(k, kU32);
    w_.U32(v);
  }
  void F32(const std::string& k, float v) {
    Key(k, kF32);
    w_.F32(v);
  }
  void Bool(const std::string& k, bool v) {
    Key(k, kBool);
    const uint8_t b = v;
    w_.Raw(&b, 1);
  }
  void Str(const std::string& k, const std::string& v) {
    Key(k, kString);
    w_.Str(v);
  }
  void Strings(const std::string& k, const std::vector<std::string>& v) {
    Key(k, kArray);
    w_.U32(kString);
    w_.U64(v.size());
    for (const std::string& s : v) w_.Str(s);
  }
  void I32s(const std::string& k, const std::vector<int32_t>& v) {
    Key(k, kArray);
    w_.U32(kI32);
    w_.U64(v.size());
    w_.Raw(v.data(), v.size() * 4);
  }
  uint64_t count() const { return count_; }
  std::string& bytes() { return w_.out(); }

 private:
  void Key(const std::string& k, uint32_t type) {
    ++count_;
    w_.Str(k);
    w_.U32(type);
  }
  Writer w_;
  uint64_t count_ = 0;
};

// A checkpoint tensor as floats (F32, F16 or BF16 in the file).
absl::StatusOr<std::vector<float>> Floats(const SafetensorsFile& file, const std::string& name) {
  const TensorView* t = file.Find("transformer." + name);
  if (t == nullptr) t = file.Find(name);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(file.path(), ": tensor ", name, " is missing"));
  }
  const size_t n = t->nbytes / std::max<size_t>(1, SafetensorsDtypeSize(t->dtype));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t->dtype == "F32") {
      std::memcpy(&out[i], t->data + 4 * i, 4);
    } else if (t->dtype == "F16" || t->dtype == "BF16") {
      uint16_t h;
      std::memcpy(&h, t->data + 2 * i, 2);
      if (t->dtype == "F16") {
        out[i] = HalfToFloat(h);
      } else {
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor ", t->name,
                                                     " has dtype ", t->dtype,
                                                     " (F32, F16 or BF16 expected)"));
    }
  }
  return out;
}

// [rows, cols] -> [cols, rows]: HF GPT-2 keeps Conv1D weights as [in, out]; ggml wants each
// output's inputs contiguous.
std::vector<float> Transpose(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) y[c * rows + r] = x[r * cols + c];
  }
  return y;
}

struct Tensor {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order: the contiguous dimension first
  uint32_t type = kGgmlF32;
  std::string data;
};

Tensor Encode(std::string name, std::vector<uint64_t> ne, const std::vector<float>& x,
              uint32_t type) {
  Tensor t{std::move(name), std::move(ne), type, {}};
  if (type == kGgmlF32) {
    t.data.assign(reinterpret_cast<const char*>(x.data()), x.size() * 4);
  } else if (type == kGgmlF16) {
    t.data.resize(x.size() * 2);
    for (size_t i = 0; i < x.size(); ++i) {
      const uint16_t h = FloatToHalf(x[i]);
      std::memcpy(&t.data[2 * i], &h, 2);
    }
  } else {  // q8_0: per block of 32, d = max|x| / 127, q = round(x / d)
    t.data.reserve(x.size() / kQ8Block * 34);
    for (size_t b = 0; b < x.size(); b += kQ8Block) {
      float amax = 0;
      for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[b + j]));
      const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
      const uint16_t h = FloatToHalf(d);
      t.data.append(reinterpret_cast<const char*>(&h), 2);
      for (int j = 0; j < kQ8Block; ++j) {
        t.data.push_back(static_cast<char>(static_cast<int8_t>(std::lround(x[b + j] * id))));
      }
    }
  }
  return t;
}

// vocab.json (spelled token -> id) in id order, and merges.txt's rules.
absl::Status ReadTokenizer(const std::string& dir, int64_t vocab_size,
                           std::vector<std::string>* tokens, std::vector<std::string>* merges,
                           int32_t* eot) {
  const std::string vocab_path = dir + "/vocab.json";
  CF_ASSIGN_OR_RETURN(std::string vocab_text, ReadFile(vocab_path));
  const nlohmann::json vocab = nlohmann::json::parse(vocab_text, nullptr, false);
  if (!vocab.is_object()) return absl::InvalidArgumentError(vocab_path + ": not a JSON object");
  tokens->assign(static_cast<size_t>(vocab_size), "");
  for (const auto& [spelled, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_path, ": id of \"", spelled, "\" is outside the model's vocabulary"));
    }
    (*tokens)[id.get<size_t>()] = spelled;
    if (spelled == "<|endoftext|>") *eot = id.get<int32_t>();
  }
  for (size_t i = 0; i < tokens->size(); ++i) {
    // Padding ids beyond the tokenizer get placeholder tokens llama.cpp never produces.
    if ((*tokens)[i].empty()) (*tokens)[i] = absl::StrCat("[PAD", i, "]");
  }
  const std::string merges_path = dir + "/merges.txt";
  CF_ASSIGN_OR_RETURN(std::string merges_text, ReadFile(merges_path));
  for (absl::string_view line : absl::StrSplit(merges_text, '\n')) {
    if (line.empty() || absl::StartsWith(line, "#version")) continue;
    merges->emplace_back(line);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ExportGguf(const std::string& dir, const std::string& out,
                        const GgufExportOptions& options, GgufExportSummary* summary) {
  uint32_t matrix_type, file_type;
  if (options.dtype == "f32") {
    matrix_type = kGgmlF32, file_type = 0;
  } else if (options.dtype == "f16") {
    matrix_type = kGgmlF16, file_type = 1;
  } else if (options.dtype == "q8_0") {
    matrix_type = kGgmlQ8_0, file_type = 7;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype: \"", options.dtype, "\" is not f32, f16 or q8_0"));
  }
  const std::string config_path = dir + "/config.json";
  CF_ASSIGN_OR_RETURN(std::string config_text, ReadFile(config_path));
  CF_ASSIGN_OR_RETURN(Gpt2Config c, Gpt2Config::FromHfJson(config_text, config_path));
  const int64_t d = c.n_embd, ff = 4 * c.n_embd;
  if (matrix_type == kGgmlQ8_0 && d % kQ8Block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        config_path, ": n_embd ", d, " is not a multiple of 32, which q8_0 blocks need"));
  }
  std::vector<std::string> tokens, merges;
  int32_t eot = -1;
  CF_RETURN_IF_ERROR(ReadTokenizer(dir, c.vocab_size, &tokens, &merges, &eot));
  if (eot < 0) return absl::InvalidArgumentError(dir + "/vocab.json: no <|endoftext|> token");
  CF_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir + "/model.safetensors"));

  // Tensors in llama.cpp's gpt2 names; matrices in the chosen type, vectors in f32.
  std::vector<Tensor> tensors;
  auto add = [&](const std::string& from, const std::string& to, std::vector<uint64_t> ne,
                 bool transpose, uint32_t type) -> absl::Status {
    CF_ASSIGN_OR_RETURN(std::vector<float> x, Floats(*file, from));
    uint64_t n = 1;
    for (uint64_t e : ne) n *= e;
    if (x.size() != n) {
      return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor ", from, " has ",
                                                     x.size(), " values, config.json implies ", n));
    }
    if (transpose) x = Transpose(x, static_cast<int64_t>(ne[0]), static_cast<int64_t>(ne[1]));
    if (summary != nullptr) summary->parameters += static_cast<int64_t>(n);
    tensors.push_back(Encode(to, std::move(ne), x, type));
    return absl::OkStatus();
  };
  const uint32_t vec = kGgmlF32;
  const uint32_t pos_type = matrix_type == kGgmlQ8_0 ? kGgmlF32 : matrix_type;
  const uint64_t ud = static_cast<uint64_t>(d), uff = static_cast<uint64_t>(ff);
  CF_RETURN_IF_ERROR(add("wte.weight", "token_embd.weight",
                         {ud, static_cast<uint64_t>(c.vocab_size)}, false, matrix_type));
  CF_RETURN_IF_ERROR(add("wpe.weight", "position_embd.weight",
                         {ud, static_cast<uint64_t>(c.n_positions)}, false, pos_type));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string h = absl::StrCat("h.", i, "."), b = absl::StrCat("blk.", i, ".");
    // Transposed matrices are given as the checkpoint's [in, out]; ne becomes {in, out}.
    CF_RETURN_IF_ERROR(add(h + "ln_1.weight", b + "attn_norm.weight", {ud}, false, vec));
    CF_RETURN_IF_ERROR(add(h + "ln_1.bias", b + "attn_norm.bias", {ud}, false, vec));
    CF_RETURN_IF_ERROR(
        add(h + "attn.c_attn.weight", b + "attn_qkv.weight", {ud, 3 * ud}, true, matrix_type));
    CF_RETURN_IF_ERROR(add(h + "attn.c_attn.bias", b + "attn_qkv.bias", {3 * ud}, false, vec));
    CF_RETURN_IF_ERROR(
        add(h + "attn.c_proj.weight", b + "attn_output.weight", {ud, ud}, true, matrix_type));
    CF_RETURN_IF_ERROR(add(h + "attn.c_proj.bias", b + "attn_output.bias", {ud}, false, vec));
    CF_RETURN_IF_ERROR(add(h + "ln_2.weight", b + "ffn_norm.weight", {ud}, false, vec));
    CF_RETURN_IF_ERROR(add(h + "ln_2.bias", b + "ffn_norm.bias", {ud}, false, vec));
    CF_RETURN_IF_ERROR(
        add(h + "mlp.c_fc.weight", b + "ffn_up.weight", {ud, uff}, true, matrix_type));
    CF_RETURN_IF_ERROR(add(h + "mlp.c_fc.bias", b + "ffn_up.bias", {uff}, false, vec));
    CF_RETURN_IF_ERROR(
        add(h + "mlp.c_proj.weight", b + "ffn_down.weight", {uff, ud}, true, matrix_type));
    CF_RETURN_IF_ERROR(add(h + "mlp.c_proj.bias", b + "ffn_down.bias", {ud}, false, vec));
  }
  CF_RETURN_IF_ERROR(add("ln_f.weight", "output_norm.weight", {ud}, false, vec));
  CF_RETURN_IF_ERROR(add("ln_f.bias", "output_norm.bias", {ud}, false, vec));

  Metadata kv;
  kv.Str("general.architecture", "gpt2");
  kv.Str("general.name", options.name);
  kv.U32("general.file_type", file_type);
  kv.U32("general.quantization_version", 2);
  kv.U32("general.alignment", static_cast<uint32_t>(kAlignment));
  kv.U32("gpt2.context_length", static_cast<uint32_t>(c.n_positions));
  kv.U32("gpt2.embedding_length", static_cast<uint32_t>(d));
  kv.U32("gpt2.feed_forward_length", static_cast<uint32_t>(ff));
  kv.U32("gpt2.block_count", static_cast<uint32_t>(c.n_layer));
  kv.U32("gpt2.attention.head_count", static_cast<uint32_t>(c.n_head));
  kv.F32("gpt2.attention.layer_norm_epsilon", static_cast<float>(c.layer_norm_epsilon));
  kv.Str("tokenizer.ggml.model", "gpt2");
  kv.Str("tokenizer.ggml.pre", "gpt-2");
  kv.Strings("tokenizer.ggml.tokens", tokens);
  std::vector<int32_t> types(tokens.size(), 1);  // normal
  types[eot] = 3;                                // control
  kv.I32s("tokenizer.ggml.token_type", types);
  kv.Strings("tokenizer.ggml.merges", merges);
  kv.U32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(eot));
  kv.U32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eot));
  kv.Bool("tokenizer.ggml.add_bos_token", false);

  Writer w;
  w.Raw("GGUF", 4);
  w.U32(3);
  w.U64(tensors.size());
  w.U64(kv.count());
  w.out().append(kv.bytes());
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    w.Str(t.name);
    w.U32(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t e : t.ne) w.U64(e);
    w.U32(t.type);
    w.U64(offset);
    offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  w.Pad();
  for (const Tensor& t : tensors) {
    w.out().append(t.data);
    w.Pad();
  }
  if (summary != nullptr) {
    summary->tensors = static_cast<int64_t>(tensors.size());
    summary->bytes = static_cast<int64_t>(w.out().size());
  }
  return WriteFileAtomic(out, w.out());
}

}  // namespace copyforge
