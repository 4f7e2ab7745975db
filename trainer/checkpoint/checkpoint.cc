#include "trainer/checkpoint/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "trainer/checkpoint/safetensors.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace fs = std::filesystem;
namespace {

constexpr char kPrefix[] = "transformer.";

absl::StatusOr<std::string> SafetensorsDtype(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat:
      return std::string("F32");
    case torch::kBFloat16:
      return std::string("BF16");
    case torch::kHalf:
      return std::string("F16");
    default:
      return absl::InvalidArgumentError("checkpoints hold float32, bfloat16 or float16 weights");
  }
}

absl::StatusOr<torch::Dtype> TorchDtype(const std::string& dtype) {
  if (dtype == "F32") return torch::kFloat;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F16") return torch::kHalf;
  if (dtype == "F64") return torch::kDouble;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", dtype, " is not a floating-point weight type"));
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& dir, Gpt2& model, const Tokenizer* tokenizer,
                            const SaveOptions& options) {
  if (tokenizer != nullptr && tokenizer->vocab_size() > model->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer has ", tokenizer->vocab_size(),
                                                   " tokens but the model's vocab_size is ",
                                                   model->config().vocab_size));
  }
  // Snapshot the weights as contiguous CPU tensors before touching the file system.
  std::vector<torch::Tensor> cpu;
  std::vector<TensorToWrite> tensors;
  for (auto& [name, t] : model->NamedTensors()) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    CF_ASSIGN_OR_RETURN(std::string dtype, SafetensorsDtype(c.scalar_type()));
    cpu.push_back(c);
    tensors.push_back({kPrefix + name, dtype, c.sizes().vec(),
                       std::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes())});
  }
  Gpt2Config config = model->config();
  return WriteDirectoryAtomic(
      dir, options.overwrite, [&](const std::string& staging) -> absl::Status {
        CF_RETURN_IF_ERROR(
            WriteSafetensors(staging + "/" + kModelFile, tensors, {{"format", "pt"}}));
        CF_RETURN_IF_ERROR(WriteFileSynced(staging + "/" + kConfigFile, config.ToHfJson()));
        if (tokenizer != nullptr) CF_RETURN_IF_ERROR(tokenizer->SaveFiles(staging));
        if (options.extra_files) CF_RETURN_IF_ERROR(options.extra_files(staging));
        return WriteManifest(staging);
      });
}

absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& dir,
                                                const LoadOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(absl::StrCat("checkpoint directory ", dir, " does not exist"));
  if (options.verify_checksums && fs::exists(dir + "/" + kManifestFile, ec)) {
    CF_RETURN_IF_ERROR(VerifyManifest(dir).status());
  }
  const std::string config_path = dir + "/" + kConfigFile;
  CF_ASSIGN_OR_RETURN(std::string config_text, ReadFile(config_path));
  LoadedCheckpoint out;
  CF_ASSIGN_OR_RETURN(out.config, Gpt2Config::FromHfJson(config_text, config_path));

  const std::string model_path = dir + "/" + kModelFile;
  CF_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(model_path));
  // Match every tensor the config implies against the file before allocating the model, so a
  // wrong or hostile config.json fails with a message instead of a huge allocation.
  // The deepest layer the config names must exist; checked first so that an absurd n_layer
  // costs nothing.
  const std::string last_layer = absl::StrCat("h.", out.config.n_layer - 1, ".ln_1.weight");
  if (file->Find(kPrefix + last_layer) == nullptr && file->Find(last_layer) == nullptr) {
    return absl::NotFoundError(absl::StrCat(model_path, ": tensor ", kPrefix, last_layer,
                                            " is missing (", config_path,
                                            " says n_layer=", out.config.n_layer, ")"));
  }
  std::vector<const TensorView*> views;
  std::set<std::string> used;
  for (const auto& [name, shape] : out.config.TensorShapes()) {
    const TensorView* view = file->Find(kPrefix + name);
    if (view == nullptr) view = file->Find(name);
    if (view == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(model_path, ": tensor ", kPrefix, name, " is missing"));
    }
    if (view->shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_path, ": tensor ", view->name, " has shape [", absl::StrJoin(view->shape, ", "),
          "] but config.json implies [", absl::StrJoin(shape, ", "), "]"));
    }
    if (!TorchDtype(view->dtype).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(model_path, ": tensor ", view->name, ": ",
                                                     TorchDtype(view->dtype).status().message()));
    }
    used.insert(view->name);
    views.push_back(view);
  }
  for (const TensorView& t : file->tensors()) {
    if (used.count(t.name)) continue;
    // HF keeps the causal-mask buffers in older files, and may store the tied LM head.
    if (absl::EndsWith(t.name, ".attn.bias") || absl::EndsWith(t.name, ".attn.masked_bias"))
      continue;
    if (t.name == "lm_head.weight") {
      const TensorView* wte = file->Find("transformer.wte.weight");
      if (wte == nullptr) wte = file->Find("wte.weight");
      if (wte != nullptr &&
          (t.nbytes != wte->nbytes || std::memcmp(t.data, wte->data, t.nbytes) != 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat(model_path, ": lm_head.weight differs from wte.weight; GPT-2 ties them"));
      }
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat(model_path, ": unexpected tensor ", t.name,
                     " (not part of a GPT-2 model with this config)"));
  }
  try {
    out.model = Gpt2(out.config);
    torch::NoGradGuard no_grad;
    auto params = out.model->NamedTensors();
    for (size_t i = 0; i < params.size(); ++i) {
      const TensorView* view = views[i];
      // Copy out of the mapping (which may be unaligned) before converting.
      torch::Tensor raw =
          torch::empty(params[i].second.sizes(), torch::dtype(*TorchDtype(view->dtype)));
      std::memcpy(raw.data_ptr(), view->data, view->nbytes);
      params[i].second.copy_(raw);
    }
    out.model->to(options.device, options.dtype);
    out.model->eval();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("loading ", model_path, ": ", e.what_without_backtrace()));
  }
  if (options.load_tokenizer && fs::exists(dir + "/vocab.json", ec)) {
    CF_ASSIGN_OR_RETURN(out.tokenizer, Tokenizer::Load(dir));
    if (out.tokenizer->vocab_size() > out.config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/vocab.json has ", out.tokenizer->vocab_size(),
                       " tokens but config.json's vocab_size is ", out.config.vocab_size));
    }
  }
  return out;
}

}  // namespace copyforge
