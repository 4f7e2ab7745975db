// output_control_bench: what structured output and the watermark cost and achieve, through the
// serving front end (Frontend::Submit, as gRPC and HTTP requests go), on a trained checkpoint and
// its dataset's held-out tasks (prepare's eval/tasks.jsonl).
//
//  * Watermark: held-out review inputs generated with the watermark on and off (same seeds);
//    detection rate on watermarked outputs and false positives on unwatermarked outputs and on
//    the held-out human reviews at the threshold; perplexity of both under the model itself
//    (the quality cost of the bias).
//  * Structured output: product-listing documents at batch 1 with the schema versus the same
//    requests free (ms per token, the difference is the mask's cost), the share of finished
//    documents that parse, and the mask itself: a cold walk of the vocabulary trie against a
//    cache hit.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "serving/frontend.h"
#include "serving/request_prompt.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/threads.h"
#include "trainer/data/eval_tasks.h"

namespace copyforge {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string checkpoint, data;
  int count = 60;
  int listings = 6;
  int64_t max_new_tokens = 96;
  double temperature = 1.0;
  int64_t top_k = 0;
  int threads = 0;
  WatermarkConfig watermark;
};

struct Output {
  std::vector<int32_t> ids;
  std::string text;
  FinishReason reason = FinishReason::kNone;
  double seconds = 0;
};

// One request through the front end, waited for.
Output Run(Frontend& front, const v1::GenerateRequest& req) {
  auto box = std::make_shared<Mailbox>();
  uint32_t n = 0;
  const auto start = Clock::now();
  absl::Status st = front.Submit(req, Caller{}, box, &n);
  Output out;
  if (!st.ok()) {
    std::fprintf(stderr, "request refused: %s\n", std::string(st.message()).c_str());
    std::exit(1);
  }
  for (bool done = false; !done;) {
    std::pair<uint32_t, EngineChunk> item;
    front.Next(*box, Caller{}, &item);
    out.ids.insert(out.ids.end(), item.second.ids.begin(), item.second.ids.end());
    out.text += item.second.text;
    done = item.second.done;
    out.reason = item.second.reason;
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

// exp(mean negative log-likelihood) of `generated` after `prompt` under the model, unbiased.
double Perplexity(LoadedCheckpoint& model, const std::vector<int32_t>& prompt,
                  const std::vector<int32_t>& generated) {
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  ids.insert(ids.end(), generated.begin(), generated.end());
  if (generated.empty()) return 0;
  torch::NoGradGuard no_grad;
  const torch::Tensor logits =
      model.model->forward(torch::tensor(ids, torch::kLong).unsqueeze(0))[0].to(torch::kFloat);
  const torch::Tensor logp = torch::log_softmax(logits, -1);
  double nll = 0;
  for (size_t i = 0; i < generated.size(); ++i) {
    nll -= logp[static_cast<int64_t>(prompt.size() + i - 1)][generated[i]].item<double>();
  }
  return std::exp(nll / static_cast<double>(generated.size()));
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void PrintWatermark(size_t n, const Flags& f, int detected, int false_generated, int false_human,
                    const std::vector<double>& z_on, const std::vector<double>& z_off,
                    const std::vector<double>& z_human, const std::vector<double>& ppl_on,
                    const std::vector<double>& ppl_off) {
  std::printf(
      "\nwatermark over %zu held-out review inputs (temperature %.2f, top_k %lld, %lld new "
      "tokens):\n",
      n, f.temperature, static_cast<long long>(f.top_k), static_cast<long long>(f.max_new_tokens));
  std::printf("  detection rate (watermarked outputs)   %5.1f%%  median z %.2f\n",
              100.0 * detected / n, Median(z_on));
  std::printf("  false positives (unwatermarked outputs) %5.1f%%  median z %.2f\n",
              100.0 * false_generated / n, Median(z_off));
  std::printf("  false positives (human reviews)        %5.1f%%  median z %.2f\n",
              100.0 * false_human / n, Median(z_human));
  std::printf("  perplexity under the model: watermarked %.2f, plain %.2f (ratio %.3f)\n",
              Median(ppl_on), Median(ppl_off), Median(ppl_on) / Median(ppl_off));
}

int Main(const Flags& f) {
  auto tasks = LoadEvalTasks(f.data + "/eval/tasks.jsonl");
  if (!tasks.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tasks.status().message()).c_str());
    return 1;
  }
  LoadOptions load;
  auto ckpt = LoadCheckpoint(f.checkpoint, load);
  auto scorer = LoadCheckpoint(f.checkpoint, load);
  if (!ckpt.ok() || !scorer.ok()) {
    std::fprintf(stderr, "%s\n", std::string(ckpt.status().message()).c_str());
    return 1;
  }
  scorer->model->eval();
  EngineOptions eo;
  eo.threads = f.threads;
  eo.max_batch = 8;
  eo.dtype = "float32";
  eo.max_new_tokens = 512;
  auto engine = Engine::Create(*std::move(ckpt), eo, f.checkpoint);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", std::string(engine.status().message()).c_str());
    return 1;
  }
  FrontendOptions fo;
  fo.pii_filter = false;  // measured on the raw model output
  fo.watermark = f.watermark;
  fo.watermark_tasks = {};
  auto front = Frontend::Create(fo, *TemplateSet::Default(), nullptr);
  (*front)->Publish(*std::move(engine));
  Frontend& fe = **front;
  Engine& e = *fe.live();
  const Tokenizer& tok = *scorer->tokenizer;
  std::printf("checkpoint %s, %d threads, watermark gamma %.2f delta %.2f threshold z > %.1f\n",
              f.checkpoint.c_str(), f.threads > 0 ? f.threads : AvailableCpus(), f.watermark.gamma,
              f.watermark.delta, f.watermark.z_threshold);

  // --- Watermark ---
  std::vector<const EvalTask*> reviews, products;
  for (const EvalTask& t : *tasks) (t.kind == "review" ? reviews : products).push_back(&t);
  const size_t n = std::min<size_t>(reviews.size(), static_cast<size_t>(f.count));
  int detected = 0, false_generated = 0, false_human = 0;
  std::vector<double> z_on, z_off, z_human, ppl_on, ppl_off;
  const auto start = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    v1::GenerateRequest req;
    SetTaskInput("review", TaskFieldsOf(*reviews[i]), &req).IgnoreError();
    req.mutable_sampling()->set_temperature(static_cast<float>(f.temperature));
    req.mutable_sampling()->set_top_k(static_cast<int32_t>(f.top_k));
    req.mutable_sampling()->set_seed(1000 + i);
    req.mutable_stopping()->set_max_new_tokens(static_cast<uint32_t>(f.max_new_tokens));
    const std::vector<int32_t> prompt =
        e.Encode(*RenderRequestPrompt(req, *TemplateSet::Default()));
    for (bool on : {true, false}) {
      req.mutable_watermark()->set_mode(on ? v1::WatermarkOptions::ON : v1::WatermarkOptions::OFF);
      const Output out = Run(fe, req);
      const WatermarkDetection d = DetectWatermark(f.watermark, out.ids, e.EosId());
      (on ? z_on : z_off).push_back(d.z);
      (on ? ppl_on : ppl_off).push_back(Perplexity(*scorer, prompt, out.ids));
      if (on) detected += d.watermarked;
      if (!on) false_generated += d.watermarked;
    }
    const WatermarkDetection h =
        DetectWatermark(f.watermark, tok.Encode(reviews[i]->reference), tok.eot_id());
    z_human.push_back(h.z);
    false_human += h.watermarked;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "\rwatermark: %zu/%zu reviews, %.1f/s, ETA %.0f s ", i + 1, n,
                 (i + 1) / elapsed, (n - i - 1) * elapsed / (i + 1));
  }
  std::fprintf(stderr, "\n");
  if (n > 0)
    PrintWatermark(n, f, detected, false_generated, false_human, z_on, z_off, z_human, ppl_on,
                   ppl_off);

  // --- Structured output ---
  v1::ResponseFormat listing;
  listing.set_named_schema("product_listing");
  auto t0 = Clock::now();
  auto masks = fe.Masks(listing, e);
  const double setup = std::chrono::duration<double>(Clock::now() - t0).count();
  double con_s = 0, free_s = 0;
  int64_t con_tokens = 0, free_tokens = 0;
  int finished = 0, parsed = 0;
  for (int i = 0; i < f.listings && !products.empty(); ++i) {
    v1::GenerateRequest req;
    SetTaskInput("product_description", TaskFieldsOf(*products[i % products.size()]), &req)
        .IgnoreError();
    req.mutable_sampling()->set_temperature(static_cast<float>(f.temperature));
    req.mutable_sampling()->set_seed(7 + i);
    req.mutable_stopping()->set_max_new_tokens(static_cast<uint32_t>(f.max_new_tokens));
    req.mutable_watermark()->set_mode(v1::WatermarkOptions::OFF);
    v1::GenerateRequest free_req = req;
    free_req.mutable_stopping()->set_ignore_eos(true);
    *req.mutable_response_format() = listing;
    const Output con = Run(fe, req), free_run = Run(fe, free_req);
    con_s += con.seconds;
    free_s += free_run.seconds;
    con_tokens += static_cast<int64_t>(con.ids.size());
    free_tokens += static_cast<int64_t>(free_run.ids.size());
    if (con.reason == FinishReason::kEos) {
      ++finished;
      parsed += !nlohmann::json::parse(con.text, nullptr, false).is_discarded();
    }
  }
  const SchemaMasks::Stats stats = (*masks)->stats();
  // The mask alone: a cold walk of the trie from the states of one document, then cache hits.
  auto schema = JsonSchema::Compile(JsonSchema::ProductListing());
  SchemaState state = (*schema)->Start();
  const std::string doc =
      R"({"title": "Oak desk lamp", "bullets": ["Warm light", "Oak base"], "description": "A )"
      R"(lamp for long evenings of reading, with a soft warm light."})";
  std::vector<SchemaState> states;
  for (char c : doc) {
    states.push_back(state);
    (*schema)->Feed(state, static_cast<uint8_t>(c));
  }
  SchemaMasks fresh(*schema, std::make_shared<VocabularyTrie>(e.TokenTexts(), e.EosId()));
  t0 = Clock::now();
  for (const SchemaState& s : states) fresh.Allowed(s);
  const double walk = std::chrono::duration<double>(Clock::now() - t0).count();
  const int64_t cold = fresh.stats().misses;
  t0 = Clock::now();
  for (const SchemaState& s : states) fresh.Allowed(s);
  const double hit = std::chrono::duration<double>(Clock::now() - t0).count() / states.size();
  const double ms_con = 1e3 * con_s / std::max<int64_t>(1, con_tokens);
  const double ms_free = 1e3 * free_s / std::max<int64_t>(1, free_tokens);
  std::printf("\nstructured output (product_listing, batch 1, %d requests):\n", f.listings);
  std::printf("  schema compile + vocabulary trie (first request): %.0f ms\n", setup * 1e3);
  std::printf("  constrained %.2f ms/token, free %.2f ms/token: %+.2f ms/token (%.2fx)\n", ms_con,
              ms_free, ms_con - ms_free, ms_con / ms_free);
  std::printf("  mask cache in serving: %lld hits, %lld misses\n",
              static_cast<long long>(stats.hits), static_cast<long long>(stats.misses));
  std::printf("  mask alone: cold walk %.2f ms per new state (%lld states), cache hit %.1f us\n",
              1e3 * walk / std::max<int64_t>(1, cold), static_cast<long long>(cold), hit * 1e6);
  std::printf("  finished documents: %d of %d, parsed %d of %d\n", finished, f.listings, parsed,
              finished);
  // The watermark's own cost: the bias over the vocabulary, once per token.
  std::vector<float> logits(static_cast<size_t>(e.config().vocab_size), 0.0f);
  WatermarkProcessor bias(f.watermark, 0);
  t0 = Clock::now();
  for (int i = 0; i < 200; ++i) {
    bias.Process(logits.data(), static_cast<int64_t>(logits.size())).IgnoreError();
    bias.Accept(i).IgnoreError();
  }
  std::printf("\nwatermark bias: %.1f us per token (vocabulary %lld)\n",
              std::chrono::duration<double>(Clock::now() - t0).count() / 200 * 1e6,
              static_cast<long long>(logits.size()));
  return 0;
}

}  // namespace
}  // namespace copyforge

int main(int argc, char** argv) {
  copyforge::Flags f;
  f.watermark.key = 0x5eed;
  CLI::App app{"Structured output and watermark: their cost and what they achieve"};
  app.add_option("--checkpoint", f.checkpoint, "A trained checkpoint directory")->required();
  app.add_option("--data", f.data, "Its prepared dataset (with eval/tasks.jsonl)")->required();
  app.add_option("--count", f.count, "Held-out reviews to generate")->capture_default_str();
  app.add_option("--listings", f.listings, "Product listings to generate")->capture_default_str();
  app.add_option("--max-new-tokens", f.max_new_tokens, "Tokens per output")->capture_default_str();
  app.add_option("--temperature", f.temperature, "Sampling temperature")->capture_default_str();
  app.add_option("--top-k", f.top_k, "Top-k (0: off)")->capture_default_str();
  app.add_option("--threads", f.threads, "Threads (0: all cores)")->capture_default_str();
  app.add_option("--gamma", f.watermark.gamma, "Watermark gamma")->capture_default_str();
  app.add_option("--delta", f.watermark.delta, "Watermark delta")->capture_default_str();
  app.add_option("--z", f.watermark.z_threshold, "Detection threshold")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return copyforge::Main(f);
}
