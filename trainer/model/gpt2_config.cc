#include "trainer/model/gpt2_config.h"

#include <yaml-cpp/yaml.h>

#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "trainer/common/yaml_util.h"

namespace copyforge {
namespace {

absl::Status FieldError(const std::string& source, const std::string& field,
                        const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", field, " ", why));
}

}  // namespace

absl::Status Gpt2Config::Validate(const std::string& source) const {
  auto positive = [&](const char* name, int64_t v) -> absl::Status {
    if (v <= 0) return FieldError(source, name, absl::StrCat("must be positive, got ", v));
    return absl::OkStatus();
  };
  for (auto [name, v] : {std::pair<const char*, int64_t>{"n_layer", n_layer},
                         {"n_head", n_head},
                         {"n_embd", n_embd},
                         {"n_positions", n_positions},
                         {"vocab_size", vocab_size}}) {
    if (absl::Status st = positive(name, v); !st.ok()) return st;
  }
  // Far beyond any GPT-2, and small enough that shapes and byte counts cannot overflow.
  for (auto [name, v, most] : {std::tuple<const char*, int64_t, int64_t>{"n_layer", n_layer, 1024},
                               {"n_head", n_head, 1024},
                               {"n_embd", n_embd, 1 << 16},
                               {"n_positions", n_positions, 1 << 20},
                               {"vocab_size", vocab_size, 1 << 24}}) {
    if (v > most) return FieldError(source, name, absl::StrCat("is ", v, ", more than ", most));
  }
  if (n_embd % n_head != 0) {
    return FieldError(source, "n_embd",
                      absl::StrCat("(", n_embd, ") must be divisible by n_head (", n_head, ")"));
  }
  for (auto [name, v] : {std::pair<const char*, double>{"embd_pdrop", embd_pdrop},
                         {"attn_pdrop", attn_pdrop},
                         {"resid_pdrop", resid_pdrop}}) {
    if (!(v >= 0.0 && v < 1.0))
      return FieldError(source, name, absl::StrCat("must be in [0, 1), got ", v));
  }
  if (!(layer_norm_epsilon > 0))
    return FieldError(source, "layer_norm_epsilon", "must be positive");
  if (!(initializer_range > 0)) return FieldError(source, "initializer_range", "must be positive");
  if (activation_function != "gelu_new" && activation_function != "gelu_pytorch_tanh") {
    return FieldError(
        source, "activation_function",
        absl::StrCat("\"", activation_function, "\" is not supported (GPT-2 uses \"gelu_new\")"));
  }
  return absl::OkStatus();
}

int64_t Gpt2Config::NumParameters() const {
  const int64_t d = n_embd;
  const int64_t per_layer =
      2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d);
  return vocab_size * d + n_positions * d + n_layer * per_layer + 2 * d;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Gpt2Config::TensorShapes() const {
  const int64_t d = n_embd;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out = {
      {"wte.weight", {vocab_size, d}}, {"wpe.weight", {n_positions, d}}};
  for (int64_t i = 0; i < n_layer; ++i) {
    const std::string h = absl::StrCat("h.", i, ".");
    for (auto [name, shape] : std::vector<std::pair<const char*, std::vector<int64_t>>>{
             {"ln_1.weight", {d}},
             {"ln_1.bias", {d}},
             {"attn.c_attn.weight", {d, 3 * d}},
             {"attn.c_attn.bias", {3 * d}},
             {"attn.c_proj.weight", {d, d}},
             {"attn.c_proj.bias", {d}},
             {"ln_2.weight", {d}},
             {"ln_2.bias", {d}},
             {"mlp.c_fc.weight", {d, 4 * d}},
             {"mlp.c_fc.bias", {4 * d}},
             {"mlp.c_proj.weight", {4 * d, d}},
             {"mlp.c_proj.bias", {d}}}) {
      out.emplace_back(h + name, shape);
    }
  }
  out.push_back({"ln_f.weight", {d}});
  out.push_back({"ln_f.bias", {d}});
  return out;
}

double Gpt2Config::TrainingFlopsPerToken(int64_t seq_len) const {
  const double n = static_cast<double>(NumParameters() - n_positions * n_embd);
  return 6.0 * n + 12.0 * n_layer * n_embd * static_cast<double>(seq_len);
}

absl::StatusOr<Gpt2Config> Gpt2Config::FromHfJson(const std::string& json_text,
                                                  const std::string& source) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  if (j.contains("model_type") && j["model_type"] != "gpt2") {
    return FieldError(source, "model_type",
                      absl::StrCat("is ", j["model_type"].dump(), ", expected \"gpt2\""));
  }
  Gpt2Config c;
  auto get_int = [&](const char* key, int64_t* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!j[key].is_number_integer()) return FieldError(source, key, "must be an integer");
    *out = j[key].get<int64_t>();
    return absl::OkStatus();
  };
  auto get_double = [&](const char* key, double* out) -> absl::Status {
    if (!j.contains(key) || j[key].is_null()) return absl::OkStatus();
    if (!j[key].is_number()) return FieldError(source, key, "must be a number");
    *out = j[key].get<double>();
    return absl::OkStatus();
  };
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"n_layer", &c.n_layer},
                          {"n_head", &c.n_head},
                          {"n_embd", &c.n_embd},
                          {"n_positions", &c.n_positions},
                          {"vocab_size", &c.vocab_size}}) {
    if (absl::Status st = get_int(key, out); !st.ok()) return st;
  }
  for (auto [key, out] :
       {std::pair<const char*, double*>{"layer_norm_epsilon", &c.layer_norm_epsilon},
        {"embd_pdrop", &c.embd_pdrop},
        {"attn_pdrop", &c.attn_pdrop},
        {"resid_pdrop", &c.resid_pdrop},
        {"initializer_range", &c.initializer_range}}) {
    if (absl::Status st = get_double(key, out); !st.ok()) return st;
  }
  if (j.contains("activation_function")) {
    if (!j["activation_function"].is_string())
      return FieldError(source, "activation_function", "must be a string");
    c.activation_function = j["activation_function"].get<std::string>();
  }
  // Options of Hugging Face's GPT-2 that change the computation: read without trusting their
  // type, and refused when they ask for something this model does not compute.
  for (const char* key : {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_boolean()) return FieldError(source, key, "must be true or false");
    if (j[key].get<bool>()) return FieldError(source, key, "true is not supported");
  }
  if (j.contains("scale_attn_weights") && !j["scale_attn_weights"].is_null() &&
      j["scale_attn_weights"] != true) {
    return FieldError(source, "scale_attn_weights", "only true is supported");
  }
  if (j.contains("n_inner") && !j["n_inner"].is_null() &&
      (!j["n_inner"].is_number_integer() || j["n_inner"].get<int64_t>() != 4 * c.n_embd)) {
    return FieldError(source, "n_inner",
                      absl::StrCat("must be null or 4 * n_embd (", 4 * c.n_embd, ")"));
  }
  if (absl::Status st = c.Validate(source); !st.ok()) return st;
  return c;
}

std::string Gpt2Config::ToHfJson() const {
  nlohmann::ordered_json j;
  j["model_type"] = "gpt2";
  j["architectures"] = {"GPT2LMHeadModel"};
  j["vocab_size"] = vocab_size;
  j["n_positions"] = n_positions;
  j["n_ctx"] = n_positions;
  j["n_embd"] = n_embd;
  j["n_layer"] = n_layer;
  j["n_head"] = n_head;
  j["n_inner"] = nullptr;
  j["activation_function"] = activation_function;
  j["resid_pdrop"] = resid_pdrop;
  j["embd_pdrop"] = embd_pdrop;
  j["attn_pdrop"] = attn_pdrop;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["initializer_range"] = initializer_range;
  j["scale_attn_weights"] = true;
  j["use_cache"] = true;
  j["bos_token_id"] = vocab_size >= 50257 ? 50256 : vocab_size - 1;
  j["eos_token_id"] = vocab_size >= 50257 ? 50256 : vocab_size - 1;
  j["tie_word_embeddings"] = true;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

absl::StatusOr<Gpt2Config> Gpt2Config::FromYamlFile(const std::string& path) {
  auto loaded = LoadYamlFile(path, "model config");
  if (!loaded.ok()) return loaded.status();
  YAML::Node root = *loaded;
  if (root["model"]) root = root["model"];
  if (!root.IsMap())
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a mapping of model keys"));
  static const std::set<std::string> kInts = {"n_layer", "n_head", "n_embd", "n_positions",
                                              "vocab_size"};
  static const std::set<std::string> kDoubles = {"layer_norm_epsilon", "embd_pdrop",
                                                 "attn_pdrop",         "resid_pdrop",
                                                 "initializer_range",  "dropout"};
  Gpt2Config c;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", kv.first.Mark().line + 1, ": a key must be a plain name"));
    }
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    const std::string where = absl::StrCat(path, ":", v.Mark().line + 1);
    try {
      if (kInts.count(key)) {
        int64_t x = v.as<int64_t>();
        if (key == "n_layer") c.n_layer = x;
        if (key == "n_head") c.n_head = x;
        if (key == "n_embd") c.n_embd = x;
        if (key == "n_positions") c.n_positions = x;
        if (key == "vocab_size") c.vocab_size = x;
      } else if (kDoubles.count(key)) {
        double x = v.as<double>();
        if (key == "layer_norm_epsilon") c.layer_norm_epsilon = x;
        if (key == "initializer_range") c.initializer_range = x;
        if (key == "embd_pdrop" || key == "dropout") c.embd_pdrop = x;
        if (key == "attn_pdrop" || key == "dropout") c.attn_pdrop = x;
        if (key == "resid_pdrop" || key == "dropout") c.resid_pdrop = x;
      } else if (key == "activation_function") {
        c.activation_function = v.as<std::string>();
      } else if (key != "name" && key != "description") {
        return absl::InvalidArgumentError(absl::StrCat(where, ": unknown model key \"", key, "\""));
      }
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": model key \"", key, "\" has a value of the wrong type"));
    }
  }
  if (absl::Status st = c.Validate(path); !st.ok()) return st;
  return c;
}

}  // namespace copyforge
