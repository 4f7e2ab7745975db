// copyforge sample-data: write the synthetic sample corpus used by the demo and tests.
#include <cstdio>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "trainer/data/sample_corpus.h"

namespace copyforge {
namespace {

struct SampleDataFlags {
  std::string out;
  SampleCorpusOptions options;
  bool overwrite = false;
};

absl::Status RunSampleData(const SampleDataFlags& flags) {
  SampleCorpusSummary s;
  absl::Status st = WriteSampleCorpus(flags.out, flags.options, flags.overwrite, &s);
  if (!st.ok()) return st;
  std::printf("sample-data: wrote %s\n", flags.out.c_str());
  std::printf("  amazon2018/reviews.jsonl  %lld reviews of %lld products (meta.jsonl)\n",
              static_cast<long long>(s.amazon_reviews), static_cast<long long>(s.amazon_products));
  std::printf("  yelp/review.json          %lld reviews of %lld businesses (business.json)\n",
              static_cast<long long>(s.yelp_reviews), static_cast<long long>(s.yelp_businesses));
  std::printf("  reviews.txt               %lld bytes of review text\n",
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
  cmd->add_option("--reviews", flags->options.reviews, "Amazon reviews")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--products", flags->options.products, "Amazon products")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--yelp-reviews", flags->options.yelp_reviews, "Yelp reviews")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--businesses", flags->options.businesses, "Yelp businesses")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", flags->options.seed, "Generator seed")->capture_default_str();
  cmd->add_flag("--overwrite", flags->overwrite, "Replace an existing output directory");
  cmd->callback([run, flags] {
    *run = [flags] { return ReportStatus("sample-data", RunSampleData(*flags)); };
  });
}

}  // namespace copyforge
