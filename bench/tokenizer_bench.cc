// Encode throughput of our GPT-2 tokenizer against tiktoken (npm) on the same text, single
// thread, measured in the same run. Prints MB/s for both and the ratio.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "nlohmann/json.hpp"
#include "trainer/common/file_util.h"
#include "trainer/tokenizer/tokenizer.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Seconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tokenizer encode throughput: copyforge vs tiktoken (npm), one thread each"};
  std::string tokenizer_dir, npm_dir, source_dir;
  std::vector<std::string> inputs;
  int iterations = 10;
  app.add_option("--tokenizer", tokenizer_dir, "GPT-2 vocab.json + merges.txt directory")
      ->required();
  app.add_option("--npm-dir", npm_dir, "Folder whose node_modules holds tiktoken")->required();
  app.add_option("--source-dir", source_dir, "copyforge source tree (for bench/tiktoken_bench.js)")
      ->required();
  app.add_option("--input", inputs, "Text files to encode (concatenated)")->required();
  app.add_option("--iterations", iterations, "Timed passes after the first")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string text;
  for (const auto& path : inputs) {
    auto t = copyforge::ReadFile(path);
    if (!t.ok()) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    text += *t;
  }
  auto tokenizer = copyforge::Tokenizer::Load(tokenizer_dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n",
                 std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  const std::string joined = copyforge::Sha256Hex(text).substr(0, 12);
  const std::string text_path = "/tmp/copyforge-tokbench-" + joined + ".txt";
  if (!copyforge::WriteFileAtomic(text_path, text).ok()) return 1;

  // Ours: the first pass starts with an empty piece cache; later passes reuse it.
  auto t0 = std::chrono::steady_clock::now();
  size_t tokens = (*tokenizer)->Encode(text).size();
  const double ours_cold = Seconds(t0);
  std::vector<double> ours_runs;
  for (int i = 0; i < iterations; ++i) {
    t0 = std::chrono::steady_clock::now();
    tokens = (*tokenizer)->Encode(text).size();
    ours_runs.push_back(Seconds(t0));
  }

  const std::string cmd = "NODE_PATH=" + npm_dir + "/node_modules node " + source_dir +
                          "/bench/tiktoken_bench.js " + text_path + " " +
                          std::to_string(iterations);
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    if (::pclose(p) != 0) out.clear();
  }
  std::remove(text_path.c_str());
  nlohmann::json base = nlohmann::json::parse(out, nullptr, false);
  if (base.is_discarded()) {
    std::fprintf(stderr, "tokenizer_bench: tiktoken baseline failed (%s)\n", cmd.c_str());
    return 1;
  }
  const double mb = text.size() / 1e6;
  const double tik_cold = base["cold_s"].get<double>();
  const double tik_warm = Median(base["runs_s"].get<std::vector<double>>());
  const double ours_warm = Median(ours_runs);
  std::printf(
      "tokenizer_bench: %.2f MB of text, %zu tokens (tiktoken: %lld), %d passes, 1 thread\n", mb,
      tokens, base["tokens"].get<long long>(), iterations);
  std::printf("  %-28s %10s %10s\n", "", "first pass", "median");
  std::printf("  %-28s %8.1f MB/s %6.1f MB/s\n", "copyforge", mb / ours_cold, mb / ours_warm);
  std::printf("  %-28s %8.1f MB/s %6.1f MB/s\n", "tiktoken 1.0.22 (npm, wasm)", mb / tik_cold,
              mb / tik_warm);
  std::printf("  %-28s %9.2fx %9.2fx\n", "ratio copyforge/tiktoken", tik_cold / ours_cold,
              tik_warm / ours_warm);
  return 0;
}
