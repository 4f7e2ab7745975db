// copyforge init-model / eval / generate: the model-level commands of a single process.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/security_flags.h"
#include "nlohmann/json.hpp"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/common/threads.h"
#include "trainer/device/device.h"
#include "trainer/eval/evaluate.h"
#include "trainer/model/sampler.h"

namespace copyforge {
namespace {

// Sets libtorch's intra-op thread count; 0 means one per core.
void SetTorchThreads(int threads) { torch::set_num_threads(ResolveThreads(threads)); }

struct InitModelFlags {
  std::string model_config;
  std::string tokenizer_dir;
  std::string out;
  uint64_t seed = 0;
  bool overwrite = false;
};

absl::Status RunInitModel(const InitModelFlags& flags) {
  CF_ASSIGN_OR_RETURN(Gpt2Config config, Gpt2Config::FromYamlFile(flags.model_config));
  std::unique_ptr<Tokenizer> tokenizer;
  if (!flags.tokenizer_dir.empty()) {
    CF_ASSIGN_OR_RETURN(tokenizer, Tokenizer::Load(flags.tokenizer_dir));
  }
  Gpt2 model(config);
  model->InitWeights(flags.seed);
  CF_RETURN_IF_ERROR(
      SaveCheckpoint(flags.out, model, tokenizer.get(), SaveOptions{flags.overwrite, {}}));
  std::printf(
      "init-model: wrote %s (%s, %.2fM parameters, seed %llu)\n", flags.out.c_str(),
      absl::StrFormat("n_layer=%d n_head=%d n_embd=%d n_positions=%d vocab_size=%d", config.n_layer,
                      config.n_head, config.n_embd, config.n_positions, config.vocab_size)
          .c_str(),
      config.NumParameters() / 1e6, static_cast<unsigned long long>(flags.seed));
  if (tokenizer == nullptr)
    std::printf(
        "init-model: no --tokenizer given, so the checkpoint has no vocab.json/merges.txt\n");
  return absl::OkStatus();
}

// Loads a checkpoint and the tokenizer (from --tokenizer when given, else from the checkpoint).
// The model goes onto `device` (a --device name, resolved here: a bad one is an error before
// anything is read).
absl::StatusOr<LoadedCheckpoint> LoadWithTokenizer(const std::string& dir,
                                                   const std::string& tokenizer_dir,
                                                   const std::string& device) {
  LoadOptions options;
  CF_ASSIGN_OR_RETURN(options.device, ResolveDevice(device, "--device"));
  PrepareDevice(options.device);
  options.load_tokenizer = tokenizer_dir.empty();
  CF_ASSIGN_OR_RETURN(LoadedCheckpoint ckpt, LoadCheckpoint(dir, options));
  if (!tokenizer_dir.empty()) {
    CF_ASSIGN_OR_RETURN(ckpt.tokenizer, Tokenizer::Load(tokenizer_dir));
  }
  if (ckpt.tokenizer == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(dir, " has no vocab.json/merges.txt; pass --tokenizer DIR"));
  }
  if (ckpt.tokenizer->vocab_size() > ckpt.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer has ", ckpt.tokenizer->vocab_size(),
                                                   " tokens but the model's vocab_size is ",
                                                   ckpt.config.vocab_size));
  }
  return ckpt;
}

struct EvalFlags {
  std::string checkpoint;
  std::string text_file;
  std::string tokenizer_dir;
  int64_t batch_size = 4;
  int64_t max_tokens = 0;
  int threads = 0;
  std::string device = "auto";
};

absl::Status RunEval(const EvalFlags& flags) {
  SetTorchThreads(flags.threads);
  CF_ASSIGN_OR_RETURN(LoadedCheckpoint ckpt,
                      LoadWithTokenizer(flags.checkpoint, flags.tokenizer_dir, flags.device));
  CF_ASSIGN_OR_RETURN(std::string text, ReadFile(flags.text_file));
  std::vector<int32_t> ids = ckpt.tokenizer->Encode(text);
  if (flags.max_tokens > 0 && static_cast<int64_t>(ids.size()) > flags.max_tokens)
    ids.resize(flags.max_tokens);
  auto result = EvaluateTokens(ckpt.model, ids, EvalOptions{flags.batch_size, true});
  if (!result.ok())
    return absl::Status(result.status().code(),
                        absl::StrCat(flags.text_file, ": ", result.status().message()));
  nlohmann::ordered_json j = {
      {"loss", result->loss}, {"perplexity", result->perplexity}, {"tokens", result->tokens}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

struct GenerateFlags {
  std::string checkpoint;
  std::string tokenizer_dir;
  std::string prompt;
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  bool stream = false;
  bool no_stop = false;
  int threads = 0;
  std::string device = "auto";
  std::string server;
  std::vector<std::string> stop;
  RemoteGenerateArgs task;  // the task-input flags
};

absl::Status RunGenerate(const GenerateFlags& flags) {
  if (!flags.server.empty()) {
    RemoteGenerateArgs a = flags.task;
    a.server = flags.server;
    a.prompt = flags.prompt;
    a.max_new_tokens = flags.max_new_tokens;
    a.sampling = flags.sampling;
    a.stop = flags.stop;
    a.stream = flags.stream;
    a.no_stop = flags.no_stop;
    return RunRemoteGenerate(a);
  }
  if (flags.checkpoint.empty())
    return absl::InvalidArgumentError("--checkpoint or --server is required");
  if (!flags.stop.empty() || !flags.task.task.empty()) {
    return absl::InvalidArgumentError("--stop and --task need --server");
  }
  SetTorchThreads(flags.threads);
  CF_RETURN_IF_ERROR(flags.sampling.Validate());
  CF_ASSIGN_OR_RETURN(LoadedCheckpoint ckpt,
                      LoadWithTokenizer(flags.checkpoint, flags.tokenizer_dir, flags.device));
  std::vector<int32_t> prompt = ckpt.tokenizer->Encode(flags.prompt);
  if (prompt.empty() && ckpt.tokenizer->eot_id() >= 0) prompt.push_back(ckpt.tokenizer->eot_id());
  GenerateOptions options;
  options.max_new_tokens = flags.max_new_tokens;
  options.sampling = flags.sampling;
  options.stop_token = flags.no_stop ? -1 : ckpt.tokenizer->eot_id();
  const Tokenizer& tok = *ckpt.tokenizer;
  std::fwrite(flags.prompt.data(), 1, flags.prompt.size(), stdout);
  std::function<void(int32_t)> on_token;
  if (flags.stream) {
    on_token = [&](int32_t id) {
      if (id == options.stop_token) return;
      std::string_view bytes = tok.TokenBytes(id);
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      std::fflush(stdout);
    };
  }
  CF_ASSIGN_OR_RETURN(std::vector<int32_t> out,
                      GenerateTokens(ckpt.model, prompt, options, on_token));
  if (!flags.stream) {
    if (!out.empty() && out.back() == options.stop_token) out.pop_back();
    CF_ASSIGN_OR_RETURN(std::string text, tok.Decode(out));
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  std::printf("\n");
  return absl::OkStatus();
}

}  // namespace

void RegisterInitModel(CLI::App& app, CommandFn* run) {
  auto flags = std::make_shared<InitModelFlags>();
  CLI::App* cmd = app.add_subcommand("init-model", "Write a freshly initialised GPT-2 checkpoint");
  cmd->add_option("--model-config", flags->model_config, "Model YAML (configs/model/*.yaml)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--seed", flags->seed, "Initialisation seed")->capture_default_str();
  cmd->add_option("--out", flags->out, "Checkpoint directory to create")->required();
  cmd->add_option("--tokenizer", flags->tokenizer_dir,
                  "Directory with vocab.json + merges.txt to include");
  cmd->add_flag("--overwrite", flags->overwrite, "Replace an existing checkpoint directory");
  cmd->callback([run, flags] {
    *run = [flags] { return ReportStatus("init-model", RunInitModel(*flags)); };
  });
}

void RegisterEval(CLI::App& app, CommandFn* run) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Mean next-token loss and perplexity of a checkpoint on a text file (JSON)");
  cmd->add_option("--checkpoint", flags->checkpoint, "Checkpoint directory")->required();
  cmd->add_option("--text-file", flags->text_file, "Text to evaluate, encoded as one sequence")
      ->required();
  cmd->add_option("--tokenizer", flags->tokenizer_dir,
                  "Tokenizer directory (default: the checkpoint's)");
  cmd->add_option("--batch-size", flags->batch_size, "Windows per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-tokens", flags->max_tokens, "Evaluate only the first N tokens (0 = all)")
      ->capture_default_str();
  cmd->add_option("--threads", flags->threads, "Intra-op threads (0 = one per core)")
      ->capture_default_str();
  AddDeviceOption(cmd, &flags->device);
  cmd->callback([run, flags] { *run = [flags] { return ReportStatus("eval", RunEval(*flags)); }; });
}

void RegisterGenerate(CLI::App& app, CommandFn* run) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Generate text from a checkpoint in this process, or from a running server");
  cmd->add_option("--checkpoint", flags->checkpoint, "Checkpoint directory (local mode)");
  cmd->add_option("--server", flags->server, "HOST:PORT of a `copyforge serve` (remote mode)");
  cmd->add_option("--token-file", flags->task.token_file, "File with the server's bearer token");
  AddTlsFlags(cmd, &flags->task.tls, /*server=*/false);
  cmd->add_option("--stop", flags->stop, "Stop sequence (remote mode; repeatable)");
  RemoteGenerateArgs& t = flags->task;
  cmd->add_option("--task", t.task, "Remote task input instead of --prompt")
      ->check(CLI::IsMember({"product_description", "review", "blog_post"}));
  cmd->add_option("--title", t.fields.title, "Task: product title");
  cmd->add_option("--brand", t.fields.brand, "Task: brand");
  cmd->add_option("--category", t.fields.category, "Task: category");
  cmd->add_option("--price", t.fields.price, "Task: price");
  cmd->add_option("--feature", t.fields.features, "Task: a product feature (repeatable)");
  cmd->add_option("--rating", t.fields.rating, "Task review: rating 1-5");
  cmd->add_option("--business", t.fields.business_name, "Task review: business name");
  cmd->add_option("--business-categories", t.fields.business_categories, "Task review: categories");
  cmd->add_option("--city", t.fields.city, "Task review: city");
  cmd->add_option("--state", t.fields.state, "Task review: state");
  cmd->add_option("--topic", t.fields.topic, "Task blog_post: topic");
  cmd->add_option("--product", t.fields.products, "Task blog_post: a product (repeatable)");
  cmd->add_option("--response-format", t.response_format,
                  "Remote: structured output: product_listing, or @FILE with a JSON Schema");
  cmd->add_option("--watermark", t.watermark, "Remote: on or off (default: the server's choice)")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--tokenizer", flags->tokenizer_dir,
                  "Tokenizer directory (default: the checkpoint's)");
  cmd->add_option("--prompt", flags->prompt, "Prompt text (empty: start from <|endoftext|>)");
  cmd->add_option("--max-new-tokens", flags->max_new_tokens, "Tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", flags->sampling.temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", flags->sampling.top_k, "Keep the k most likely tokens (0 = all)")
      ->capture_default_str();
  cmd->add_option("--top-p", flags->sampling.top_p, "Nucleus sampling mass (1 = off)")
      ->capture_default_str();
  cmd->add_option("--repetition-penalty", flags->sampling.repetition_penalty,
                  "Penalty for repeated tokens (1 = off)")
      ->capture_default_str();
  cmd->add_option("--seed", flags->sampling.seed, "Sampling seed")->capture_default_str();
  cmd->add_flag("--stream", flags->stream, "Print tokens as they are generated");
  cmd->add_flag("--no-stop", flags->no_stop, "Do not stop at <|endoftext|>");
  cmd->add_option("--threads", flags->threads, "Intra-op threads (0 = one per core)")
      ->capture_default_str();
  AddDeviceOption(cmd, &flags->device);
  cmd->callback(
      [run, flags] { *run = [flags] { return ReportStatus("generate", RunGenerate(*flags)); }; });
}

}  // namespace copyforge
