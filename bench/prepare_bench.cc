// Throughput of `prepare` on the generated sample corpus at 1 and 2 threads, against the bare
// tokenizer on the same text in the same run (the bound a tokenization-bound pipeline approaches).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "trainer/common/file_util.h"
#include "trainer/data/prepare.h"
#include "trainer/data/sample_corpus.h"
#include "trainer/tokenizer/tokenizer.h"

namespace {

int64_t UncompressedBytes(const std::string& dir) {
  // reviews.txt is written beside the inputs and holds (about) their text; the inputs themselves
  // are measured by their size on disk.
  int64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename() != "reviews.txt")
      total += static_cast<int64_t>(e.file_size());
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"prepare throughput at 1 and 2 threads vs the bare tokenizer"};
  std::string tokenizer_dir, work = "/tmp/copyforge-prepare-bench";
  int64_t records = 60000;
  app.add_option("--tokenizer", tokenizer_dir, "GPT-2 tokenizer directory")->required();
  app.add_option("--records", records, "Reviews in the generated corpus")->capture_default_str();
  app.add_option("--work", work, "Scratch directory")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::filesystem::remove_all(work);
  copyforge::SampleCorpusOptions corpus;
  corpus.records = records;
  copyforge::SampleCorpusSummary planted;
  if (auto st = copyforge::WriteSampleCorpus(work + "/data", corpus, true, &planted); !st.ok()) {
    std::fprintf(stderr, "prepare_bench: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  const int64_t disk_bytes = UncompressedBytes(work + "/data");
  const std::string text = *copyforge::ReadFile(work + "/data/reviews.txt");

  // Baseline: one thread encoding the corpus text, fresh tokenizer (cold cache), as prepare does.
  auto tok = copyforge::Tokenizer::Load(tokenizer_dir);
  if (!tok.ok()) return 1;
  copyforge::PieceCache cache;
  std::vector<int32_t> ids;
  auto t0 = std::chrono::steady_clock::now();
  (*tok)->EncodeAppend(text, copyforge::EncodeOptions{false}, &ids, &cache);
  const double tok_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf(
      "prepare_bench: %lld reviews, %.1f MB on disk (Amazon 2018 gzipped), %.1f MB of review "
      "text\n",
      static_cast<long long>(planted.reviews), disk_bytes / 1e6, text.size() / 1e6);
  std::printf("  %-34s %8.1f MB/s of text\n", "tokenizer alone, 1 thread",
              text.size() / 1e6 / tok_s);
  double one = 0;
  for (int threads : {1, 2}) {
    copyforge::PrepareOptions o;
    const std::string d = work + "/data";
    o.inputs = {{d + "/amazon2018/*.gz", copyforge::Format::kAuto},
                {d + "/amazon2023/*", copyforge::Format::kAuto},
                {d + "/yelp/*", copyforge::Format::kAuto},
                {d + "/csv/reviews.csv", copyforge::Format::kCsv}};
    o.csv = {"text", "title", "product_id", "rating"};
    o.tokenizer = tokenizer_dir;
    o.out = work + "/out";
    o.overwrite = true;
    o.threads = threads;
    o.show_progress = false;
    // Best of three runs: the machine is shared, and the fastest run is the least disturbed.
    absl::StatusOr<copyforge::PrepareStats> s;
    for (int run = 0; run < 3; ++run) {
      auto r = copyforge::RunPrepare(o);
      if (!r.ok()) {
        std::fprintf(stderr, "prepare_bench: %s\n", std::string(r.status().message()).c_str());
        return 1;
      }
      if (!s.ok() || r->seconds < s->seconds) s = r;
    }
    if (threads == 1) one = s->seconds;
    std::printf(
        "  prepare, %d thread%s %19.1f MB/s of text (%.1f MB/s on disk), %4.1fs, %2.0f%% of thread "
        "time tokenizing\n",
        threads, threads == 1 ? ": " : "s:", text.size() / 1e6 / s->seconds,
        s->input_bytes / 1e6 / s->seconds, s->seconds,
        100.0 * s->tokenize_seconds / (s->seconds * threads));
    if (threads == 2) {
      std::printf("  %-34s %8.2fx\n", "speed-up 2 threads / 1 thread", one / s->seconds);
      std::printf("  %-34s %8.2fx\n", "prepare (2 threads) / tokenizer", tok_s / s->seconds);
    }
  }
  std::filesystem::remove_all(work);
  return 0;
}
