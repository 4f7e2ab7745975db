// copyforge sample-data: write the synthetic sample corpus used by the demo and tests.
#include <cstdio>
#include <filesystem>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "trainer/data/sample_corpus.h"

namespace copyforge {
namespace {

struct SampleDataFlags {
  std::string out;
  SampleCorpusOptions options;
  bool overwrite = false;
  bool if_missing = false;
};

absl::Status RunSampleData(const SampleDataFlags& flags) {
  if (flags.if_missing && std::filesystem::exists(flags.out)) {
    std::printf("sample-data: %s exists; left as it is (--if-missing)\n", flags.out.c_str());
    return absl::OkStatus();
  }
  SampleCorpusSummary s;
  absl::Status st = WriteSampleCorpus(flags.out, flags.options, flags.overwrite, &s);
  if (!st.ok()) return st;
  std::printf("sample-data: wrote %s\n", flags.out.c_str());
  std::printf("  reviews            %lld (Amazon 2018 gz, Amazon 2023, Yelp; %lld CSV rows)\n",
              static_cast<long long>(s.reviews), static_cast<long long>(s.csv_rows));
  std::printf("  products           %lld, businesses %lld\n", static_cast<long long>(s.products),
              static_cast<long long>(s.businesses));
  std::printf(
      "  planted            %lld exact duplicates, %lld near duplicates, %lld malformed lines, "
      "%lld with PII\n",
      static_cast<long long>(s.exact_duplicates), static_cast<long long>(s.near_duplicates),
      static_cast<long long>(s.malformed), static_cast<long long>(s.with_pii));
  std::printf("  reviews.txt        %lld bytes of review text\n",
              static_cast<long long>(s.text_bytes));
  return absl::OkStatus();
}

}  // namespace

void RegisterSampleData(CLI::App& app, CommandFn* run) {
  auto flags = std::make_shared<SampleDataFlags>();
  CLI::App* cmd = app.add_subcommand(
      "sample-data",
      "Write a deterministic synthetic Amazon/Yelp-format review corpus (for demos and tests)");
  cmd->add_option("--out", flags->out, "Output directory")->required();
  cmd->add_option("--records", flags->options.records, "Reviews over all sources")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", flags->options.seed, "Generator seed")->capture_default_str();
  cmd->add_flag("--overwrite", flags->overwrite, "Replace an existing output directory");
  cmd->add_flag("--if-missing", flags->if_missing, "Do nothing when the output directory exists");
  cmd->callback([run, flags] {
    *run = [flags] { return ReportStatus("sample-data", RunSampleData(*flags)); };
  });
}

}  // namespace copyforge
