// copyforge export: a checkpoint as a GGUF file llama.cpp (and Ollama, LM Studio, node-llama-cpp)
// loads as a gpt2 model with our tokenizer.
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "trainer/checkpoint/gguf.h"
#include "trainer/checkpoint/manifest.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace {

struct ExportFlags {
  std::string checkpoint, out, format = "gguf";
  GgufExportOptions gguf;
};

absl::Status RunExport(const ExportFlags& f) {
  if (f.format != "gguf") {
    return absl::InvalidArgumentError("--format: \"" + f.format + "\" is not supported (gguf)");
  }
  // A checkpoint with a manifest is verified first: nothing corrupt is converted.
  if (std::filesystem::exists(f.checkpoint + "/manifest.json")) {
    CF_RETURN_IF_ERROR(VerifyManifest(f.checkpoint).status());
  }
  GgufExportSummary s;
  CF_RETURN_IF_ERROR(ExportGguf(f.checkpoint, f.out, f.gguf, &s));
  std::printf("export: %s -> %s (gguf %s, %lld tensors, %.1fM parameters, %.1f MB)\n",
              f.checkpoint.c_str(), f.out.c_str(), f.gguf.dtype.c_str(),
              static_cast<long long>(s.tensors), s.parameters / 1e6, s.bytes / 1e6);
  return absl::OkStatus();
}

}  // namespace

void RegisterExport(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<ExportFlags>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Write a checkpoint as GGUF for llama.cpp-based runtimes (gpt2 architecture)");
  cmd->add_option("--checkpoint", f->checkpoint, "Checkpoint directory (with its tokenizer)")
      ->required();
  cmd->add_option("--out", f->out, "The file to write (atomically)")->required();
  cmd->add_option("--format", f->format, "Output format")->capture_default_str();
  cmd->add_option("--dtype", f->gguf.dtype,
                  "Matrix weights: f32, f16 or q8_0 (norms and biases stay f32)")
      ->capture_default_str();
  cmd->add_option("--name", f->gguf.name, "general.name in the file")->capture_default_str();
  cmd->callback([run, f] { *run = [f] { return ReportStatus("export", RunExport(*f)); }; });
}

}  // namespace copyforge
