// copyforge tokenize: text -> GPT-2 ids as a JSON array, or back with --decode.
#include <cstdio>
#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {
namespace {

struct TokenizeFlags {
  std::string tokenizer_dir;
  std::string input = "-";
  bool decode = false;
  bool no_special = false;
};

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  if (path != "-") return ReadFile(path);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

absl::Status RunTokenize(const TokenizeFlags& flags) {
  CF_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Load(flags.tokenizer_dir));
  CF_ASSIGN_OR_RETURN(std::string input, ReadInput(flags.input));
  const std::string name = flags.input == "-" ? "stdin" : flags.input;
  if (flags.decode) {
    nlohmann::json j = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": expected a JSON array of token ids"));
    }
    std::vector<int32_t> ids;
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": element ", i, " is not an integer"));
      }
      ids.push_back(j[i].get<int32_t>());
    }
    auto text = tokenizer->Decode(ids);
    if (!text.ok())
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", text.status().message()));
    std::fwrite(text->data(), 1, text->size(), stdout);
    return absl::OkStatus();
  }
  EncodeOptions options;
  options.allow_special = !flags.no_special;
  std::vector<int32_t> ids = tokenizer->Encode(input, options);
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&out, i ? "," : "", ids[i]);
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return absl::OkStatus();
}

}  // namespace

void RegisterTokenize(CLI::App& app, CommandFn* run) {
  auto flags = std::make_shared<TokenizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Encode a file to GPT-2 token ids (JSON array) or decode ids back to text");
  cmd->add_option("--tokenizer", flags->tokenizer_dir,
                  "Directory with vocab.json and merges.txt (a checkpoint works)")
      ->required();
  cmd->add_option("--input", flags->input, "File to read; '-' reads stdin")->capture_default_str();
  cmd->add_flag("--decode", flags->decode, "Input is a JSON array of ids; print the text");
  cmd->add_flag("--no-special", flags->no_special,
                "Encode '<|endoftext|>' as plain text instead of the special id");
  cmd->callback(
      [run, flags] { *run = [flags] { return ReportStatus("tokenize", RunTokenize(*flags)); }; });
}

}  // namespace copyforge
