// copyforge prepare: raw corpora -> token shards.
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "trainer/data/prepare.h"

namespace copyforge {
namespace {

struct PrepareFlags {
  std::string config;
  std::vector<std::string> inputs;
  std::string format;
  std::string tokenizer, templates, out;
  std::string objectives;
  double validation_ratio = -1;
  int64_t shard_tokens = 0, min_chars = -1, max_chars = -1, min_words = -1, pii_match_limit = 0,
          max_line_bytes = 0;
  std::string language;
  double near_threshold = -1;
  bool no_exact = false, no_near = false;
  std::string csv_text, csv_title, csv_id, csv_rating;
  int threads = -1;
  bool overwrite = false, quiet = false, if_missing = false;
};

absl::StatusOr<PrepareOptions> BuildOptions(const PrepareFlags& f) {
  PrepareOptions o;
  if (!f.config.empty()) {
    auto loaded = PrepareOptions::FromYamlFile(f.config);
    if (!loaded.ok()) return loaded.status();
    o = *loaded;
  }
  // Flags override the config, key by key.
  if (!f.inputs.empty()) {
    Format format = Format::kAuto;
    if (!f.format.empty()) {
      auto parsed = ParseFormat(f.format);
      if (!parsed.ok())
        return absl::InvalidArgumentError(absl::StrCat("--format: ", parsed.status().message()));
      format = *parsed;
    }
    o.inputs.clear();
    for (const auto& in : f.inputs) o.inputs.push_back({in, format});
  }
  if (!f.tokenizer.empty()) o.tokenizer = f.tokenizer;
  if (!f.templates.empty()) o.templates = f.templates;
  if (!f.out.empty()) o.out = f.out;
  if (!f.objectives.empty()) {
    o.pretrain = f.objectives == "pretrain" || f.objectives == "both";
    o.finetune = f.objectives == "finetune" || f.objectives == "both";
  }
  if (f.validation_ratio >= 0) o.validation_ratio = f.validation_ratio;
  if (f.shard_tokens > 0) o.shard_tokens = f.shard_tokens;
  if (f.min_chars >= 0) o.min_chars = f.min_chars;
  if (f.max_chars >= 0) o.max_chars = f.max_chars;
  if (f.pii_match_limit > 0) o.pii_match_limit = f.pii_match_limit;
  if (f.max_line_bytes > 0) o.max_line_bytes = f.max_line_bytes;
  if (f.min_words >= 0) o.min_words = f.min_words;
  if (!f.language.empty()) o.language = f.language;
  if (f.near_threshold >= 0) o.minhash.threshold = f.near_threshold;
  if (f.no_exact) o.exact_dedup = false;
  if (f.no_near) o.near_dedup = false;
  if (!f.csv_text.empty()) o.csv.text = f.csv_text;
  if (!f.csv_title.empty()) o.csv.title = f.csv_title;
  if (!f.csv_id.empty()) o.csv.id = f.csv_id;
  if (!f.csv_rating.empty()) o.csv.rating = f.csv_rating;
  if (f.threads >= 0) o.threads = f.threads;
  o.overwrite = f.overwrite;
  o.show_progress = !f.quiet;
  return o;
}

void PrintSummary(const PrepareOptions& o, const PrepareStats& s) {
  auto row = [](const char* name, int64_t v, const std::string& note = "") {
    std::printf("  %-26s %12lld  %s\n", name, static_cast<long long>(v), note.c_str());
  };
  std::printf("prepare: wrote %s\n", o.out.c_str());
  row("records read", s.records);
  row("kept", s.kept, absl::StrFormat("%d documents, %d pairs", s.documents, s.pairs));
  row("metadata records", s.metadata, "products and businesses joined into prompts");
  row("dropped: malformed", s.malformed);
  row("dropped: empty", s.empty);
  row("dropped: too short", s.too_short);
  row("dropped: filtered", s.filtered, "max_chars / language");
  row("dropped: pii_error", s.pii_error, "scrubbing failed (pii.match_limit)");
  row("dropped: line_too_long", s.line_too_long, "over max_line_bytes");
  row("dropped: duplicate", s.duplicate);
  row("dropped: near-duplicate", s.near_duplicate);
  row("PII replacements", s.pii_replacements);
  row("reviews without metadata", s.pairs_without_metadata, "no fine-tuning pair");
  row("tokens written", s.tokens);
  row("shards", s.shards);
  row("held-out task inputs", s.eval_tasks, "eval/tasks.jsonl (for eval-tasks)");
  row("copy index windows", s.copy_index_entries,
      absl::StrFormat("ngrams.bin, %d-token windows of the training split", o.copy_index_n));
  std::printf("  %-26s %12.1f  %.2f MB/s, %d threads, %.0f%% of thread time tokenizing\n",
              "seconds", s.seconds, s.input_bytes / 1e6 / std::max(1e-9, s.seconds), s.threads,
              100.0 * s.tokenize_seconds / std::max(1e-9, s.seconds * s.threads));
  for (const std::string& e : s.malformed_examples)
    std::fprintf(stderr, "prepare: skipped %s\n", e.c_str());
}

absl::Status RunPrepareCmd(const PrepareFlags& flags) {
  auto options = BuildOptions(flags);
  if (!options.ok()) return options.status();
  if (flags.if_missing && std::filesystem::exists(options->out + "/manifest.json")) {
    // Datasets are immutable once written: a job may be reading these shards.
    std::printf("prepare: %s already holds a prepared dataset; left as it is (--if-missing)\n",
                options->out.c_str());
    return absl::OkStatus();
  }
  auto stats = RunPrepare(*options);
  if (!stats.ok()) return stats.status();
  PrintSummary(*options, *stats);
  return absl::OkStatus();
}

}  // namespace

void RegisterPrepare(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<PrepareFlags>();
  CLI::App* cmd = app.add_subcommand(
      "prepare",
      "Clean, scrub, deduplicate, template and tokenize review corpora into token shards");
  cmd->add_option("--config", f->config,
                  "Data config YAML (configs/data/*.yaml); flags override its keys");
  cmd->add_option("--input", f->inputs,
                  "Input file or glob (.json/.jsonl/.csv, plain or .gz; repeatable)");
  cmd->add_option("--format", f->format, "Format of every --input (default: detected per file)");
  cmd->add_option("--tokenizer", f->tokenizer, "Directory with vocab.json + merges.txt");
  cmd->add_option("--templates", f->templates,
                  "Templates YAML (default: the built-in configs/templates/ecommerce.yaml)");
  cmd->add_option("--out", f->out, "Output directory");
  cmd->add_option("--objectives", f->objectives, "pretrain, finetune or both")
      ->check(CLI::IsMember({"pretrain", "finetune", "both"}));
  cmd->add_option("--validation-ratio", f->validation_ratio,
                  "Share of products/businesses in the validation split");
  cmd->add_option("--shard-tokens", f->shard_tokens, "Tokens per shard (at least)");
  cmd->add_option("--min-chars", f->min_chars, "Drop texts shorter than this");
  cmd->add_option("--max-chars", f->max_chars, "Drop texts longer than this");
  cmd->add_option("--max-line-bytes", f->max_line_bytes,
                  "Longer input lines (or CSV rows) are dropped and counted (dropped: "
                  "line_too_long); default 8 MiB");
  cmd->add_option("--pii-match-limit", f->pii_match_limit,
                  absl::StrCat("Most work one PII pattern match may take; a text needing more is "
                               "dropped (dropped: pii_error), never written unscrubbed (default ",
                               kDefaultPiiMatchLimit, ")"));
  cmd->add_option("--min-words", f->min_words, "Drop texts with fewer words");
  cmd->add_option("--language", f->language, "any, or en to keep English text only")
      ->check(CLI::IsMember({"any", "en"}));
  cmd->add_option("--near-dup-threshold", f->near_threshold,
                  "Estimated Jaccard similarity that marks a near duplicate");
  cmd->add_flag("--no-exact-dedup", f->no_exact, "Keep exact duplicates");
  cmd->add_flag("--no-near-dedup", f->no_near, "Skip MinHash near-duplicate detection");
  cmd->add_option("--csv-text", f->csv_text, "CSV column with the review text");
  cmd->add_option("--csv-title", f->csv_title, "CSV column with the title");
  cmd->add_option("--csv-id", f->csv_id, "CSV column with the product id (split key)");
  cmd->add_option("--csv-rating", f->csv_rating, "CSV column with the rating");
  cmd->add_option("--threads", f->threads, "Worker threads (0 = one per core)");
  cmd->add_flag("--overwrite", f->overwrite, "Replace an existing output directory");
  cmd->add_flag("--if-missing", f->if_missing,
                "Do nothing when the output directory already holds a prepared dataset (a "
                "re-run Job never rewrites shards a training job may be reading)");
  cmd->add_flag("--quiet", f->quiet, "No progress line");
  cmd->callback([run, f] { *run = [f] { return ReportStatus("prepare", RunPrepareCmd(*f)); }; });
}

}  // namespace copyforge
