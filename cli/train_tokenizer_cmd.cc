// copyforge train-tokenizer: learn a byte-level BPE vocabulary from text files.
#include <cstdio>

#include "absl/strings/str_format.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/tokenizer/bpe_trainer.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {
namespace {

struct TrainTokenizerFlags {
  std::vector<std::string> inputs;
  std::string out;
  int32_t vocab_size = 8192;
  int64_t min_frequency = 2;
  bool overwrite = false;
};

absl::Status RunTrainTokenizer(const TrainTokenizerFlags& flags) {
  BpeTrainer trainer(
      BpeTrainerOptions().set_vocab_size(flags.vocab_size).set_min_frequency(flags.min_frequency));
  for (const std::string& path : flags.inputs) {
    CF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    CF_RETURN_IF_ERROR(trainer.Add(text));
  }
  CF_ASSIGN_OR_RETURN(BpeTrainerResult result, trainer.Train());
  // Check that the files load before they are published.
  CF_ASSIGN_OR_RETURN(auto tokenizer,
                      Tokenizer::FromContents(result.vocab_json, result.merges_txt, flags.out));
  CF_RETURN_IF_ERROR(WriteDirectoryAtomic(flags.out, flags.overwrite, [&](const std::string& dir) {
    return tokenizer->SaveFiles(dir);
  }));
  std::printf("train-tokenizer: %s\n", flags.out.c_str());
  std::printf("  input bytes      %lld\n", static_cast<long long>(result.input_bytes));
  std::printf("  distinct pieces  %lld\n", static_cast<long long>(result.words));
  std::printf("  merges           %lld\n", static_cast<long long>(result.num_merges));
  std::printf("  vocab size       %d%s\n", result.vocab_size,
              result.vocab_size < flags.vocab_size
                  ? " (stopped early: no pair reached --min-frequency)"
                  : "");
  return absl::OkStatus();
}

}  // namespace

void RegisterTrainTokenizer(CLI::App& app, CommandFn* run) {
  auto flags = std::make_shared<TrainTokenizerFlags>();
  CLI::App* cmd = app.add_subcommand(
      "train-tokenizer", "Learn a GPT-2-style byte-level BPE vocabulary (vocab.json + merges.txt)");
  cmd->add_option("--input", flags->inputs, "Text files to learn from (repeatable)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", flags->out, "Output directory")->required();
  cmd->add_option("--vocab-size", flags->vocab_size,
                  "Vocabulary size including 256 byte tokens and <|endoftext|>")
      ->capture_default_str()
      ->check(CLI::Range(258, 1 << 20));
  cmd->add_option("--min-frequency", flags->min_frequency, "Do not merge pairs seen fewer times")
      ->capture_default_str();
  cmd->add_flag("--overwrite", flags->overwrite, "Replace an existing output directory");
  cmd->callback([run, flags] {
    *run = [flags] { return ReportStatus("train-tokenizer", RunTrainTokenizer(*flags)); };
  });
}

}  // namespace copyforge
