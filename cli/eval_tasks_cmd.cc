// `copyforge eval-tasks`: content quality of a checkpoint on held-out task inputs. The model's
// outputs (generated here, or by a running server) are scored beside two reference rows measured
// in the same run: the held-out human texts (upper bound) and a freshly initialised model of the
// same configuration (lower bound).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/security_flags.h"
#include "protos/bearer_token.h"
#include "protos/grpc_status.h"
#include "serving.grpc.pb.h"
#include "serving/engine.h"
#include "serving/request_prompt.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/file_util.h"
#include "trainer/common/progress.h"
#include "trainer/common/status_macros.h"
#include "trainer/eval/task_report.h"
#include "trainer/train/train_state.h"

namespace copyforge {
namespace {

struct EvalTasksFlags {
  std::string checkpoint, data, server, token_file, json_out;
  TlsFiles tls;
  int count = 16;  // per kind
  uint64_t seed = 0;
  int64_t max_new_tokens = 96;
  double temperature = 0.8;
  int64_t top_k = 40;
  int threads = 0;
  int max_batch = 8;
  bool no_lower_bound = false;
  std::string device = "auto";
};

// The request a serving client would send for a sample.
v1::GenerateRequest RequestFor(const EvalSample& s, const EvalTasksFlags& f, uint64_t seed) {
  v1::GenerateRequest req;
  TaskInputFields fields = TaskFieldsOf(s.task);
  fields.topic = s.blog_topic;
  fields.products = s.blog_products;
  SetTaskInput(s.kind, fields, &req).IgnoreError();  // the kinds ChooseSamples makes
  req.mutable_sampling()->set_temperature(static_cast<float>(f.temperature));
  req.mutable_sampling()->set_top_k(static_cast<int32_t>(f.top_k));
  req.mutable_sampling()->set_seed(seed);
  req.mutable_stopping()->set_max_new_tokens(static_cast<uint32_t>(f.max_new_tokens));
  // The model's own text: a server would watermark reviews by default, which the local path
  // cannot (no key); the watermark's cost is measured by bench/output_control_bench.
  req.mutable_watermark()->set_mode(v1::WatermarkOptions::OFF);
  return req;
}

// Up to `count` held-out tasks of each kind, chosen with the seed; blog posts are built from
// pairs of held-out products (no blog corpus exists to hold out).
absl::StatusOr<std::vector<EvalSample>> ChooseSamples(std::vector<EvalTask> tasks,
                                                      const EvalTasksFlags& f,
                                                      const TemplateSet& templates) {
  std::mt19937_64 rng(f.seed);
  std::shuffle(tasks.begin(), tasks.end(), rng);
  std::vector<EvalSample> out;
  std::vector<const EvalTask*> products;
  int descriptions = 0, reviews = 0;
  for (const EvalTask& t : tasks) {
    if (t.kind == "product_description") products.push_back(&t);
    int& n = t.kind == "review" ? reviews : descriptions;
    if (n >= f.count) continue;
    ++n;
    out.push_back({t.kind, t, "", {}, ""});
  }
  for (size_t i = 0; i + 1 < products.size() && i / 2 < static_cast<size_t>(f.count); i += 2) {
    EvalSample s{"blog_post", *products[i], "", {products[i]->title, products[i + 1]->title}, ""};
    const std::vector<std::string> path = absl::StrSplit(products[i]->category, " > ");
    s.blog_topic = absl::StrCat("Our favourite ", path.back(), " this season");
    out.push_back(std::move(s));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    auto prompt = RenderRequestPrompt(RequestFor(out[i], f, 0), templates);
    if (!prompt.ok()) return prompt.status();
    out[i].prompt = *prompt;
  }
  return out;
}

using Outputs = std::vector<std::string>;

// Generates every sample with an Engine in this process (continuous batching, as serving does).
absl::StatusOr<Outputs> GenerateLocal(LoadedCheckpoint model, const std::string& name,
                                      const std::vector<EvalSample>& samples,
                                      const EvalTasksFlags& f) {
  EngineOptions o;
  o.max_batch = f.max_batch;
  o.max_queue = static_cast<int>(samples.size()) + 1;
  o.max_new_tokens = std::max<int64_t>(f.max_new_tokens, 1);
  o.threads = f.threads;
  o.device = f.device;
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(std::move(model), o, name));
  Outputs outputs(samples.size());
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  absl::Status failure;
  for (size_t i = 0; i < samples.size(); ++i) {
    const v1::GenerateRequest req = RequestFor(samples[i], f, f.seed + i);
    EngineRequest r;
    r.prompt = engine->Encode(samples[i].prompt);
    r.sampling.temperature = req.sampling().temperature();
    r.sampling.top_k = req.sampling().top_k();
    r.sampling.seed = req.sampling().seed();
    r.max_new_tokens = f.max_new_tokens;
    r.on_chunk = [&, i](const EngineChunk& chunk) {
      std::lock_guard<std::mutex> lock(mu);
      outputs[i] += chunk.text;
      if (!chunk.done) return;
      if (!chunk.status.ok() && failure.ok()) failure = chunk.status;
      ++done;
      cv.notify_all();
    };
    CF_RETURN_IF_ERROR(engine->Submit(std::move(r)));
  }
  Progress progress(absl::StrCat("eval-tasks ", name), "outputs",
                    static_cast<int64_t>(samples.size()));
  std::unique_lock<std::mutex> lock(mu);
  while (done < samples.size()) {
    cv.wait_for(lock, std::chrono::milliseconds(250));
    progress.Update(static_cast<int64_t>(done));
  }
  progress.Finish();
  if (!failure.ok()) return failure;
  return outputs;
}

// Sends every sample to a running `copyforge serve` (4 requests in flight, so it batches).
absl::StatusOr<Outputs> GenerateRemote(const std::vector<EvalSample>& samples,
                                       const EvalTasksFlags& f, std::string* served) {
  CF_ASSIGN_OR_RETURN(auto channel, OpenChannel(f.server, f.tls));
  CF_ASSIGN_OR_RETURN(auto token, OpenOptionalTokenFile(f.token_file));
  auto stub = v1::TextGeneration::NewStub(channel);
  Outputs outputs(samples.size());
  std::atomic<size_t> next{0}, done{0};
  std::mutex mu;
  absl::Status failure;
  auto client = [&] {
    for (size_t i = next++; i < samples.size(); i = next++) {
      grpc::ClientContext context;
      AttachBearer(token.get(), &context);
      v1::GenerateResponse resp;
      const grpc::Status st =
          stub->Generate(&context, RequestFor(samples[i], f, f.seed + i), &resp);
      std::lock_guard<std::mutex> lock(mu);
      if (!st.ok()) {
        if (failure.ok()) failure = FromGrpc(st, "Generate at " + f.server);
        next = samples.size();
        return;
      }
      outputs[i] = resp.completions_size() > 0 ? resp.completions(0).text() : "";
      *served = absl::StrCat(resp.checkpoint(), " (step ", resp.checkpoint_step(), ")");
      ++done;
    }
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) clients.emplace_back(client);
  Progress progress("eval-tasks server", "outputs", static_cast<int64_t>(samples.size()));
  while (done < samples.size() && next < samples.size() + 4) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    progress.Update(static_cast<int64_t>(done.load()));
    std::lock_guard<std::mutex> lock(mu);
    if (!failure.ok()) break;
  }
  for (auto& c : clients) c.join();
  progress.Finish();
  if (!failure.ok()) return failure;
  return outputs;
}

absl::Status RunEvalTasks(const EvalTasksFlags& f) {
  const std::string data = f.data;
  CF_ASSIGN_OR_RETURN(std::vector<EvalTask> tasks, LoadEvalTasks(data + "/" + kEvalTasksFile));
  if (tasks.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(data, "/", kEvalTasksFile, " holds no task (no validation-split pair)"));
  }
  CF_ASSIGN_OR_RETURN(TemplateSet templates, TemplateSet::LoadFile(data + "/templates.yaml"));
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(data + "/tokenizer"));
  absl::StatusOr<NgramIndex> index = NgramIndex::Load(data + "/" + kCopyIndexFile);
  if (!index.ok() && !absl::IsNotFound(index.status())) return index.status();
  if (!index.ok()) {
    std::fprintf(stderr, "eval-tasks: %s; copy runs are 0\n",
                 std::string(index.status().message()).c_str());
  }
  CF_ASSIGN_OR_RETURN(std::vector<EvalSample> samples, ChooseSamples(tasks, f, templates));

  PiiScrubber pii;
  ScoringContext context;
  context.tokenizer = tokenizer.get();
  context.copy_index = index.ok() ? &*index : nullptr;
  context.pii = &pii;
  for (const EvalTask& t : tasks) {
    if (!t.brand.empty()) context.brands.insert(t.brand);
  }
  std::fprintf(stderr, "eval-tasks: %zu held-out inputs (%s), seed %llu, %lld new tokens at most\n",
               samples.size(), data.c_str(), static_cast<unsigned long long>(f.seed),
               static_cast<long long>(f.max_new_tokens));

  CF_ASSIGN_OR_RETURN(LoadedCheckpoint checkpoint, LoadCheckpoint(f.checkpoint));
  if (checkpoint.tokenizer == nullptr) {
    CF_ASSIGN_OR_RETURN(checkpoint.tokenizer, Tokenizer::Load(data + "/tokenizer"));
  }
  const Gpt2Config config = checkpoint.config;
  std::string served =
      absl::StrCat(f.checkpoint, " (step ", ReadCheckpointStep(f.checkpoint).value_or(0), ")");
  Outputs model;
  if (f.server.empty()) {
    CF_ASSIGN_OR_RETURN(model, GenerateLocal(std::move(checkpoint), "model", samples, f));
  } else {
    CF_ASSIGN_OR_RETURN(model, GenerateRemote(samples, f, &served));
  }
  nlohmann::ordered_json systems;
  systems["model"] = ScoreOutputs(samples, model, context);
  Outputs human;
  std::vector<EvalSample> with_reference;
  for (const EvalSample& s : samples) {
    if (s.kind == "blog_post") continue;  // no human blog posts are held out
    with_reference.push_back(s);
    human.push_back(s.task.reference);
  }
  systems["human"] = ScoreOutputs(with_reference, human, context);
  Outputs fresh;
  if (!f.no_lower_bound) {
    LoadedCheckpoint init;
    init.config = config;
    init.model = Gpt2(config);
    init.model->InitWeights(f.seed);
    init.model->eval();
    CF_ASSIGN_OR_RETURN(init.tokenizer, Tokenizer::Load(data + "/tokenizer"));
    CF_ASSIGN_OR_RETURN(fresh, GenerateLocal(std::move(init), "fresh_init", samples, f));
    systems["fresh_init"] = ScoreOutputs(samples, fresh, context);
  }

  std::printf("eval-tasks: %s on %zu held-out inputs of %s (seed %llu)\n", served.c_str(),
              samples.size(), data.c_str(), static_cast<unsigned long long>(f.seed));
  std::printf("%s", FormatTaskTable(systems).c_str());
  nlohmann::ordered_json examples = nlohmann::ordered_json::array();
  for (size_t i = 0; i < samples.size(); ++i) {
    examples.push_back(
        {{"kind", samples[i].kind},
         {"prompt", samples[i].prompt},
         {"model", model[i]},
         {"reference", samples[i].kind == "blog_post" ? "" : samples[i].task.reference}});
  }
  for (const char* kind : {"product_description", "review", "blog_post"}) {
    for (size_t i = 0; i < samples.size(); ++i) {
      if (samples[i].kind != kind) continue;
      std::printf("\nexample %s:\n%s\n  -> %s\n", kind, samples[i].prompt.c_str(),
                  model[i].c_str());
      break;
    }
  }
  nlohmann::ordered_json report = {{"checkpoint", served},
                                   {"data", data},
                                   {"seed", f.seed},
                                   {"samples", samples.size()},
                                   {"max_new_tokens", f.max_new_tokens},
                                   {"temperature", f.temperature},
                                   {"top_k", f.top_k},
                                   {"systems", systems},
                                   {"examples", examples}};
  const std::string json = report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  if (!f.json_out.empty()) {
    CF_RETURN_IF_ERROR(WriteFileAtomic(f.json_out, json + "\n"));
    std::printf("\neval-tasks: wrote %s\n", f.json_out.c_str());
  } else {
    std::printf("\n%s\n", json.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterEvalTasks(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<EvalTasksFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval-tasks",
      "Content quality on held-out task inputs: attribute coverage and hallucinations of product "
      "descriptions, rating-sentiment agreement of reviews, diversity, repetition, template "
      "leakage, PII and verbatim copying, beside the human texts and a fresh model");
  cmd->add_option("--checkpoint", f->checkpoint,
                  "The checkpoint (generated from here unless --server; its configuration sizes "
                  "the freshly initialised reference)")
      ->required();
  cmd->add_option("--data", f->data,
                  "The prepared dataset (its eval/tasks.jsonl, ngrams.bin, templates and "
                  "tokenizer)")
      ->required();
  cmd->add_option("--server", f->server, "HOST:PORT of a `copyforge serve` to generate with");
  cmd->add_option("--token-file", f->token_file, "File with the server's bearer token");
  AddTlsFlags(cmd, &f->tls, /*server=*/false);
  cmd->add_option("--count", f->count, "Held-out inputs per kind")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", f->seed, "Chooses the inputs and seeds the sampling")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", f->max_new_tokens, "Tokens per output at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--temperature", f->temperature, "Sampling temperature")->capture_default_str();
  cmd->add_option("--top-k", f->top_k, "Top-k sampling (0: off)")->capture_default_str();
  cmd->add_option("--max-batch", f->max_batch, "Sequences decoded together (local generation)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--threads", f->threads, "Intra-op threads (0: the CPUs available)")
      ->capture_default_str();
  cmd->add_flag("--no-lower-bound", f->no_lower_bound,
                "Skip the freshly initialised model's reference row");
  cmd->add_option("--json", f->json_out, "Write the JSON report here (default: stdout)");
  AddDeviceOption(cmd, &f->device);
  cmd->callback([run, f] { *run = [f] { return ReportStatus("eval-tasks", RunEvalTasks(*f)); }; });
}

}  // namespace copyforge
