// gguf_parity: exports a checkpoint to GGUF and runs it through llama.cpp's CPU libraries (npm
// node-llama-cpp) beside our own model: the same tokenization of fixed prompts, how many greedy
// tokens agree (ours in float32 from the checkpoint; a disagreement before our top-2 logit gap
// first falls under --tie-margin fails), and the perplexity of a fixed text under both.
// Exit status 1 when a check fails: the export test runs it on a small model, `make bench` on
// the demo's trained checkpoint.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/gguf.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

struct Flags {
  std::string checkpoint, npm_dir, source_dir, work_dir;
  std::vector<std::string> dtypes = {"f16", "q8_0"};
  int new_tokens = 32;
  int threads = 2;
  double tie_margin = 0.05;     // logits closer than this may order differently in f16
  double ppl_tolerance = 0.01;  // relative, for f16 (q8_0 gets 4x)
  int min_agree = 0;            // each prompt's greedy must agree at least this far
};

const std::vector<std::string> kPrompts = {
    "Product: stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours.",
    "Review (5 stars): I bought this lamp for my desk and",
    "The best pizza in town is",
    "Blog: ten gifts for runners this winter.",
    "Brand: Acme. Category: Kitchen > Small Appliances. Features: quiet motor,",
    "Title: Trail running shoe\nDescription:"};
const char* kScoreText =
    "We ordered the coffee maker after our old one broke, and it has been a pleasant surprise. "
    "The carafe pours without dripping, the warming plate keeps the coffee hot for an hour, and "
    "the timer is easy to set. The only downside is the loud beep when it finishes brewing. "
    "Customer service answered our question about the filter within a day. Four stars.";

struct Ours {
  std::vector<int32_t> greedy;
  int first_tie = -1;  // the first step whose top-2 gap is under the margin (-1: none)
};

Ours Greedy(LoadedCheckpoint& c, const std::vector<int32_t>& prompt, int n, double margin) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  Ours out;
  for (int step = 0; step < n && static_cast<int64_t>(ids.size()) < c.config.n_positions; ++step) {
    const torch::Tensor logits = c.model->forward(torch::tensor(ids).unsqueeze(0))[0][-1];
    const auto top = logits.topk(2);
    const double gap = (std::get<0>(top)[0] - std::get<0>(top)[1]).item<double>();
    if (gap < margin && out.first_tie < 0) out.first_tie = step;
    const int32_t id = static_cast<int32_t>(std::get<1>(top)[0].item<int64_t>());
    if (id == c.tokenizer->eot_id()) break;
    out.greedy.push_back(id);
    ids.push_back(id);
  }
  return out;
}

double Perplexity(const std::vector<double>& logprobs) {
  double sum = 0;
  for (double lp : logprobs) sum += lp;
  return std::exp(-sum / static_cast<double>(logprobs.size()));
}

int Main(const Flags& f) {
  auto ckpt = LoadCheckpoint(f.checkpoint);
  if (!ckpt.ok() || ckpt->tokenizer == nullptr) {
    std::fprintf(stderr, "gguf_parity: %s\n",
                 ckpt.ok() ? "the checkpoint has no tokenizer"
                           : std::string(ckpt.status().message()).c_str());
    return 2;
  }
  const Tokenizer& tok = *ckpt->tokenizer;
  nlohmann::json input = {
      {"new_tokens", f.new_tokens}, {"threads", f.threads}, {"context", ckpt->config.n_positions}};
  std::vector<Ours> ours;
  for (const std::string& p : kPrompts) {
    const std::vector<int32_t> ids = tok.Encode(p);
    input["prompts"].push_back({{"text", p}, {"ids", ids}});
    ours.push_back(Greedy(*ckpt, ids, f.new_tokens, f.tie_margin));
  }
  std::vector<int32_t> score_ids = tok.Encode(kScoreText);
  input["score_ids"] = score_ids;
  std::vector<double> our_logprobs;
  {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> ids(score_ids.begin(), score_ids.end());
    const torch::Tensor logp =
        torch::log_softmax(ckpt->model->forward(torch::tensor(ids).unsqueeze(0))[0], -1);
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      our_logprobs.push_back(logp[static_cast<int64_t>(i)][ids[i + 1]].item<double>());
    }
  }
  const double our_ppl = Perplexity(our_logprobs);
  const std::string input_path = f.work_dir + "/llama_input.json";
  if (!WriteFileAtomic(input_path, input.dump()).ok()) return 2;
  bool ok = true;
  for (const std::string& dtype : f.dtypes) {
    const std::string gguf = absl::StrCat(f.work_dir, "/model-", dtype, ".gguf");
    GgufExportOptions options;
    options.dtype = dtype;
    GgufExportSummary summary;
    if (absl::Status st = ExportGguf(f.checkpoint, gguf, options, &summary); !st.ok()) {
      std::fprintf(stderr, "gguf_parity: %s\n", std::string(st.message()).c_str());
      return 2;
    }
    const std::string out_path = f.work_dir + "/llama_" + dtype + ".json";
    const std::string cmd =
        absl::StrCat("node ", f.source_dir, "/tests/fixtures/llama_gguf.mjs ", f.npm_dir,
                     "/node_modules ", gguf, " ", input_path, " > ", out_path);
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "gguf_parity: llama.cpp run failed: %s\n", cmd.c_str());
      return 2;
    }
    const nlohmann::json llama = nlohmann::json::parse(*ReadFile(out_path));
    int same_tokens = 0, agree_total = 0, compared = 0;
    std::string per_prompt;
    for (size_t p = 0; p < kPrompts.size(); ++p) {
      same_tokens += llama["tokenized"][p].get<std::vector<int32_t>>() == tok.Encode(kPrompts[p]);
      const auto theirs = llama["greedy"][p].get<std::vector<int32_t>>();
      size_t agree = 0;
      while (agree < theirs.size() && agree < ours[p].greedy.size() &&
             theirs[agree] == ours[p].greedy[agree]) {
        ++agree;
      }
      const bool whole = agree == theirs.size() && agree == ours[p].greedy.size();
      const int must =
          ours[p].first_tie < 0 ? static_cast<int>(ours[p].greedy.size()) : ours[p].first_tie;
      // q8_0 changes the weights themselves: only the f16 and f32 exports must follow ours.
      if (dtype != "q8_0" && !whole && static_cast<int>(agree) < std::max(must, f.min_agree))
        ok = false;
      agree_total += static_cast<int>(agree);
      compared += static_cast<int>(ours[p].greedy.size());
      absl::StrAppend(&per_prompt, p ? " " : "", agree, "/", ours[p].greedy.size());
    }
    if (same_tokens != static_cast<int>(kPrompts.size())) ok = false;
    const double their_ppl = Perplexity(llama["score_logprobs"].get<std::vector<double>>());
    const double rel = their_ppl / our_ppl - 1;
    const double tol = dtype == "q8_0" ? 4 * f.ppl_tolerance : f.ppl_tolerance;
    if (std::fabs(rel) > tol) ok = false;
    std::printf(
        "gguf %-5s %6.1f MB: tokenization identical on %d/%zu prompts; greedy tokens agreeing "
        "with ours %d/%d (per prompt %s); perplexity of a %zu-token text: ours (float32) %.3f, "
        "llama.cpp %.3f (%+.2f%%, tolerance %.0f%%)\n",
        dtype.c_str(), summary.bytes / 1e6, same_tokens, kPrompts.size(), agree_total, compared,
        per_prompt.c_str(), score_ids.size(), our_ppl, their_ppl, 100 * rel, 100 * tol);
  }
  std::printf("gguf_parity: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace copyforge

int main(int argc, char** argv) {
  copyforge::Flags f;
  CLI::App app{"GGUF export checked against llama.cpp's CPU libraries (npm node-llama-cpp)"};
  app.add_option("--checkpoint", f.checkpoint, "Checkpoint with its tokenizer")->required();
  app.add_option("--npm-dir", f.npm_dir, "The npm cache with node-llama-cpp")->required();
  app.add_option("--source-dir", f.source_dir, "The source tree (tests/fixtures)")->required();
  app.add_option("--work-dir", f.work_dir, "Where the GGUF files go")->required();
  app.add_option("--dtype", f.dtypes, "Export types to check")->capture_default_str();
  app.add_option("--new-tokens", f.new_tokens, "Greedy tokens per prompt")->capture_default_str();
  app.add_option("--threads", f.threads, "llama.cpp threads")->capture_default_str();
  app.add_option("--tie-margin", f.tie_margin, "Top-2 logit gap under which order may differ")
      ->capture_default_str();
  app.add_option("--ppl-tolerance", f.ppl_tolerance, "Relative perplexity tolerance (f16)")
      ->capture_default_str();
  app.add_option("--min-agree", f.min_agree, "Greedy tokens every prompt must agree on")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return copyforge::Main(f);
}
