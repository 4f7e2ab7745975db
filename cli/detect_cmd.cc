// copyforge detect: is this text watermarked? With the server's key locally (--key-file and a
// tokenizer) or by asking a running `copyforge serve` (its Detect RPC).
#include <cstdio>
#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/security_flags.h"
#include "nlohmann/json.hpp"
#include "protos/bearer_token.h"
#include "protos/grpc_status.h"
#include "serving.grpc.pb.h"
#include "serving/watermark.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {
namespace {

struct DetectFlags {
  std::string text, input;
  std::string server, token_file;
  TlsFiles tls;
  std::string key_file, tokenizer_dir;
  WatermarkConfig config;
  bool json = false;
};

absl::StatusOr<std::string> TextOf(const DetectFlags& f) {
  if (!f.text.empty() && !f.input.empty()) {
    return absl::InvalidArgumentError("give --text or --input, not both");
  }
  if (!f.text.empty()) return f.text;
  if (f.input.empty()) return absl::InvalidArgumentError("--text or --input is required");
  if (f.input != "-") return ReadFile(f.input);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

absl::Status Print(const DetectFlags& f, const WatermarkDetection& d, double threshold) {
  if (f.json) {
    nlohmann::json j = {{"z_score", d.z},
                        {"p_value", d.p_value},
                        {"watermarked", d.watermarked},
                        {"scored_tokens", d.scored},
                        {"green_tokens", d.green},
                        {"threshold", threshold}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << absl::StrFormat("%s: z=%.2f (threshold %.2f), p=%.3g, %d of %d tokens green\n",
                                 d.watermarked ? "watermarked" : "not watermarked", d.z, threshold,
                                 d.p_value, d.green, d.scored);
  }
  return absl::OkStatus();
}

absl::Status RunDetect(const DetectFlags& f) {
  CF_ASSIGN_OR_RETURN(std::string text, TextOf(f));
  if (!f.server.empty()) {
    if (!f.key_file.empty())
      return absl::InvalidArgumentError("--server uses the server's key; drop --key-file");
    CF_ASSIGN_OR_RETURN(auto channel, OpenChannel(f.server, f.tls));
    CF_ASSIGN_OR_RETURN(auto token, OpenOptionalTokenFile(f.token_file));
    auto stub = v1::TextGeneration::NewStub(channel);
    grpc::ClientContext context;
    AttachBearer(token.get(), &context);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::DetectRequest req;
    req.set_text(text);
    v1::DetectResponse resp;
    grpc::Status st = stub->Detect(&context, req, &resp);
    if (!st.ok()) return FromGrpc(st, "Detect at " + f.server);
    WatermarkDetection d;
    d.z = resp.z_score();
    d.p_value = resp.p_value();
    d.watermarked = resp.watermarked();
    d.scored = resp.scored_tokens();
    d.green = resp.green_tokens();
    return Print(f, d, resp.threshold());
  }
  if (f.key_file.empty() || f.tokenizer_dir.empty()) {
    return absl::InvalidArgumentError("give --server, or --key-file with --tokenizer");
  }
  WatermarkConfig config = f.config;
  CF_ASSIGN_OR_RETURN(config.key, KeyFromFile(f.key_file));
  CF_RETURN_IF_ERROR(config.Validate());
  CF_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Load(f.tokenizer_dir));
  const std::vector<int32_t> ids = tokenizer->Encode(text);
  if (ids.size() < 2) return absl::InvalidArgumentError("the text has fewer than 2 tokens");
  return Print(f, DetectWatermark(config, ids, tokenizer->eot_id()), config.z_threshold);
}

}  // namespace

void RegisterDetect(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<DetectFlags>();
  CLI::App* cmd = app.add_subcommand(
      "detect", "Score a text for the serving watermark: z-score, p-value and a verdict");
  cmd->add_option("--text", f->text, "The text to score");
  cmd->add_option("--input", f->input, "Read the text from this file ('-': stdin)");
  cmd->add_option("--server", f->server,
                  "HOST:PORT of a `copyforge serve`: score with its key (Detect RPC)");
  cmd->add_option("--token-file", f->token_file, "The server's bearer token");
  AddTlsFlags(cmd, &f->tls, /*server=*/false);
  cmd->add_option("--key-file", f->key_file,
                  "Score locally with this watermark secret (serve --watermark-key-file)");
  cmd->add_option("--tokenizer", f->tokenizer_dir,
                  "Local scoring: vocab.json and merges.txt (a checkpoint directory works)");
  cmd->add_option("--gamma", f->config.gamma, "Local scoring: the server's --watermark-gamma")
      ->capture_default_str();
  cmd->add_option("--z-threshold", f->config.z_threshold,
                  "Local scoring: a z-score above this is reported as watermarked")
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print one JSON object");
  cmd->callback([run, f] { *run = [f] { return ReportStatus("detect", RunDetect(*f)); }; });
}

}  // namespace copyforge
