// Prefix caching in the serving engine, in process: requests built from one template (a shared
// prefix of --prefix-tokens tokens, then a short product line of their own) sent one at a time
// to an engine with the prefix cache and to one without, alternating. Prints the median time to
// first token of each and their ratio, and whether every greedy output is the same token for
// token either way.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "serving/engine.h"
#include "trainer/checkpoint/checkpoint.h"

namespace {

using namespace copyforge;

struct Outcome {
  std::vector<int32_t> ids;
  double ttft = 0;
  int64_t cached = 0;
  absl::Status status;
};

// Sends one greedy request and waits for its end.
Outcome Run(Engine& engine, std::vector<int32_t> prompt, int64_t max_new) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Outcome out;
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = max_new;
  r.ignore_eos = true;
  r.sampling.temperature = 0;
  r.on_chunk = [&](const EngineChunk& c) {
    std::lock_guard<std::mutex> lock(mu);
    out.ids.insert(out.ids.end(), c.ids.begin(), c.ids.end());
    if (!c.done) return;
    out.ttft = c.time_to_first_token_s;
    out.cached = c.cached_prompt_tokens;
    out.status = c.status;
    done = true;
    cv.notify_all();
  };
  out.status = engine.Submit(std::move(r));
  if (!out.status.ok()) return out;
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time to first token of templated requests with and without the prefix cache"};
  std::string checkpoint, dtype = "auto";
  int64_t prefix_tokens = 200, max_new = 8;
  int requests = 12;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  app.add_option("--checkpoint", checkpoint, "A checkpoint directory with tokenizer files")
      ->required();
  app.add_option("--prefix-tokens", prefix_tokens, "Tokens of the shared template")
      ->capture_default_str();
  app.add_option("--requests", requests, "Requests per engine")->capture_default_str();
  app.add_option("--max-new-tokens", max_new)->capture_default_str();
  app.add_option("--dtype", dtype, "float32, bfloat16, int8 (weight-only) or auto")
      ->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<Engine> engines[2];  // 0: prefix cache off, 1: on
  for (int on = 0; on < 2; ++on) {
    auto ckpt = LoadCheckpoint(checkpoint);
    if (!ckpt.ok()) {
      std::fprintf(stderr, "prefix_cache_bench: %s\n",
                   std::string(ckpt.status().message()).c_str());
      return 1;
    }
    EngineOptions o;
    o.threads = threads;
    o.dtype = dtype;
    o.max_batch = 2;
    o.prefix_cache_tokens = on ? -1 : 0;
    auto engine = Engine::Create(*std::move(ckpt), o, checkpoint);
    if (!engine.ok()) {
      std::fprintf(stderr, "prefix_cache_bench: %s\n",
                   std::string(engine.status().message()).c_str());
      return 1;
    }
    engines[on] = *std::move(engine);
  }
  // The template: store instructions repeated to the length asked for.
  std::vector<int32_t> prefix;
  const std::string instructions =
      " You write product descriptions for an online store. Be accurate and friendly, name the "
      "materials and the size, say who the product is for, and never invent a feature.";
  while (static_cast<int64_t>(prefix.size()) < prefix_tokens) {
    const std::vector<int32_t> more = engines[0]->Encode(instructions);
    prefix.insert(prefix.end(), more.begin(), more.end());
  }
  prefix.resize(static_cast<size_t>(prefix_tokens));
  const char* items[] = {"steel water bottle, 750 ml", "wool socks, 3 pairs",  "cast iron pan",
                         "kids' rain boots",           "bamboo cutting board", "LED desk lamp"};
  std::printf(
      "prefix_cache_bench: %s, %lld-token shared prefix, %d requests per engine one at a time, "
      "%lld new tokens, %d threads\n",
      checkpoint.c_str(), static_cast<long long>(prefix_tokens), requests,
      static_cast<long long>(max_new), threads);
  std::vector<double> ttft[2];
  int same = 0, compared = 0;
  int64_t cached = 0;
  for (int i = 0; i <= requests; ++i) {  // request 0 warms both engines (and fills the cache)
    std::vector<int32_t> prompt = prefix;
    const std::vector<int32_t> item = engines[0]->Encode(
        "\nProduct: " + std::string(items[i % 6]) + " (" + std::to_string(i) + ")\nDescription:");
    prompt.insert(prompt.end(), item.begin(), item.end());
    Outcome outcome[2];
    for (int on = 0; on < 2; ++on) {
      outcome[on] = Run(*engines[on], prompt, max_new);
      if (!outcome[on].status.ok()) {
        std::fprintf(stderr, "prefix_cache_bench: %s\n",
                     std::string(outcome[on].status.message()).c_str());
        return 1;
      }
    }
    if (i == 0) continue;
    for (int on = 0; on < 2; ++on) ttft[on].push_back(outcome[on].ttft);
    cached += outcome[1].cached;
    same += outcome[0].ids == outcome[1].ids;
    ++compared;
  }
  const double off = Median(ttft[0]), on = Median(ttft[1]);
  std::printf("  time to first token, median: cache off %.1f ms, on %.1f ms (%.1fx lower)\n",
              off * 1e3, on * 1e3, off / on);
  std::printf("  prompt tokens from the cache: %.1f per request (of %lld shared)\n",
              static_cast<double>(cached) / compared, static_cast<long long>(prefix_tokens));
  std::printf("  greedy outputs identical: %d/%d\n", same, compared);
  return same == compared ? 0 : 1;
}
