#include "serving/frontend.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "serving/request_prompt.h"
#include "trainer/tokenizer/unicode.h"

namespace copyforge {

Frontend::Frontend(const FrontendOptions& options, TemplateSet templates,
                   std::unique_ptr<TokenFile> tokens)
    : limits_(options.limits),
      templates_(std::move(templates)),
      tokens_(std::move(tokens)),
      pii_filter_(options.pii_filter),
      max_copy_tokens_(options.max_copy_tokens),
      watermark_(options.watermark),
      watermark_tasks_(options.watermark_tasks) {}

absl::StatusOr<std::unique_ptr<Frontend>> Frontend::Create(const FrontendOptions& options,
                                                           TemplateSet templates,
                                                           std::unique_ptr<TokenFile> tokens) {
  auto front = std::make_unique<Frontend>(options, std::move(templates), std::move(tokens));
  if (!options.copy_index.empty()) {
    absl::StatusOr<NgramIndex> index = NgramIndex::Load(options.copy_index);
    if (!index.ok()) return index.status();
    front->copy_index_ = std::make_unique<NgramIndex>(*std::move(index));
  } else if (options.max_copy_tokens > 0) {
    return absl::InvalidArgumentError(
        "--max-copy-tokens needs --copy-index (prepare's ngrams.bin)");
  }
  if (absl::Status st = options.watermark.Validate(); !st.ok()) return st;
  for (const std::string& task : options.watermark_tasks) {
    const bool known = task == "none" || std::find(std::begin(kTaskNames), std::end(kTaskNames),
                                                   task) != std::end(kTaskNames);
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("--watermark-tasks: unknown task \"", task,
                       "\" (review, product_description, blog_post, prompt, none)"));
    }
  }
  return front;
}

void Frontend::GuardCopies(Mailbox& box, uint32_t index, EngineChunk& chunk) {
  Mailbox::CopyGuard& g = box.guards[index];
  const int n = copy_index_->n();
  for (int32_t id : chunk.ids) {
    g.window.push_back(id);
    if (static_cast<int>(g.window.size()) > n) g.window.erase(g.window.begin());
    if (static_cast<int>(g.window.size()) < n) continue;
    g.run = copy_index_->Contains(NgramHash(g.window.data(), n)) ? g.run + 1 : 0;
    g.longest = std::max(g.longest, g.run);
    if (max_copy_tokens_ > 0 && !g.cut && g.run + n - 1 > max_copy_tokens_) {
      g.cut = true;  // the engine drops the sequence at its next step
      std::lock_guard<std::mutex> lock(box.mu);
      box.cut.insert(index);
    }
  }
  if (!chunk.done) return;
  chunk.longest_copy = g.longest == 0 ? 0 : g.longest + n - 1;
  metrics_.Copied(chunk.longest_copy, g.cut);
  if (g.cut && absl::IsCancelled(chunk.status)) {
    chunk.status = absl::OkStatus();
    chunk.reason = FinishReason::kCopyLimit;
  }
}

void Frontend::Publish(std::unique_ptr<Engine> engine) {
  engine_ = std::move(engine);
  live_.store(engine_.get(), std::memory_order_release);
}

absl::Status Frontend::NotLoaded() {
  return absl::UnavailableError("no model loaded yet (waiting for the first checkpoint)");
}

bool Frontend::Authorize(const std::string& bearer) {
  if (tokens_ == nullptr || tokens_->Accepts(bearer)) return true;
  metrics_.Rejected("unauthenticated");
  return false;
}

std::string Frontend::Outcome(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return "success";
    case absl::StatusCode::kCancelled:
      return "cancelled";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    default:
      return "error";
  }
}

absl::Status Frontend::Submit(const v1::GenerateRequest& req, const Caller& caller,
                              const std::shared_ptr<Mailbox>& box, uint32_t* n,
                              uint32_t index_base) {
  auto refuse = [&](const absl::Status& st) {
    metrics_.Rejected(Outcome(st));
    return st;
  };
  if (draining_) return refuse(absl::UnavailableError("the server is draining (shutting down)"));
  Engine* engine = live();
  if (engine == nullptr) return refuse(NotLoaded());
  if (absl::Status st = CheckGenerateRequest(req, limits_, engine->options().max_batch); !st.ok()) {
    return refuse(st);
  }
  auto rendered = RenderRequestPrompt(req, templates_);
  if (!rendered.ok()) return refuse(rendered.status());
  const std::string& text = *rendered;
  if (text.empty()) return refuse(absl::InvalidArgumentError("prompt is empty"));
  if (!IsValidUtf8(text)) return refuse(absl::InvalidArgumentError("prompt is not valid UTF-8"));
  SamplingParams sampling;
  const v1::SamplingParams& s = req.sampling();
  sampling.temperature = s.temperature();
  sampling.top_k = s.top_k();
  sampling.top_p = s.top_p() == 0 ? 1.0 : s.top_p();
  sampling.repetition_penalty = s.repetition_penalty() == 0 ? 1.0 : s.repetition_penalty();
  sampling.seed = s.seed();
  if (absl::Status st = sampling.Validate(); !st.ok()) {
    return refuse(absl::InvalidArgumentError(absl::StrCat("sampling.", st.message())));
  }
  const std::vector<int32_t> prompt = engine->Encode(text);
  std::shared_ptr<SchemaMasks> masks;
  if (req.has_response_format()) {
    if (req.stopping().ignore_eos()) {
      return refuse(absl::InvalidArgumentError(
          "stopping.ignore_eos cannot be combined with response_format (the document ends "
          "with the end of text)"));
    }
    auto m = Masks(req.response_format(), *engine);
    if (!m.ok()) return refuse(m.status());
    masks = *std::move(m);
  }
  box->watermarked = Watermarks(req);
  if (pii_filter_) box->scrubber = &scrubber_;
  *n = std::max<uint32_t>(1, req.num_return_sequences());  // bounded above by the limits
  for (uint32_t i = 0; i < *n; ++i) {
    EngineRequest r;
    r.prompt = prompt;
    r.sampling = sampling;
    r.sampling.seed = sampling.seed + i;
    r.max_new_tokens = req.stopping().max_new_tokens();
    r.stop.assign(req.stopping().stop().begin(), req.stopping().stop().end());
    r.ignore_eos = req.stopping().ignore_eos();
    r.logprobs = req.return_logprobs();
    r.deadline = caller.deadline;
    auto chain = std::make_shared<LogitsProcessorChain>();
    if (masks != nullptr) chain->Add(std::make_unique<SchemaConstraint>(masks));
    if (box->watermarked)
      chain->Add(std::make_unique<WatermarkProcessor>(watermark_, prompt.back()));
    if (!chain->empty()) r.processor = chain;
    std::function<bool()> gone = caller.gone;
    r.cancelled = [box, gone, index = index_base + i] {
      if (box->cancelled.load() || (gone && gone())) return true;
      std::lock_guard<std::mutex> lock(box->mu);
      return box->cut.count(index) > 0;
    };
    r.on_chunk = [box, index = index_base + i](const EngineChunk& chunk) {
      {
        std::lock_guard<std::mutex> lock(box->mu);
        box->chunks.emplace_back(index, chunk);
      }
      box->cv.notify_all();
      if (box->on_ready) box->on_ready();
    };
    if (absl::Status st = engine->Submit(std::move(r)); !st.ok()) {
      box->cancelled = true;  // the sequences already queued leave at the next step
      return refuse(st);
    }
  }
  metrics_.OutputControl(static_cast<int>(*n), masks != nullptr, box->watermarked);
  return absl::OkStatus();
}

void Frontend::Next(Mailbox& box, const Caller& caller, std::pair<uint32_t, EngineChunk>* out) {
  std::unique_lock<std::mutex> lock(box.mu);
  while (box.chunks.empty()) {
    box.cv.wait_for(lock, std::chrono::milliseconds(50));
    if (caller.gone && caller.gone()) box.cancelled = true;
  }
  *out = std::move(box.chunks.front());
  box.chunks.pop_front();
  lock.unlock();
  Deliver(box, out);
}

bool Frontend::TryNext(Mailbox& box, std::pair<uint32_t, EngineChunk>* out) {
  {
    std::lock_guard<std::mutex> lock(box.mu);
    if (box.chunks.empty()) return false;
    *out = std::move(box.chunks.front());
    box.chunks.pop_front();
  }
  Deliver(box, out);
  return true;
}

void Frontend::Deliver(Mailbox& box, std::pair<uint32_t, EngineChunk>* out) {
  auto& [index, chunk] = *out;
  if (copy_index_ != nullptr) GuardCopies(box, index, chunk);
  if (box.scrubber == nullptr) return;
  PiiStreamFilter& filter = box.filters.try_emplace(index, box.scrubber).first->second;
  const int before = filter.replacements();
  absl::StatusOr<std::string> safe = filter.Push(chunk.text);
  if (safe.ok() && chunk.done) {
    absl::StatusOr<std::string> rest = filter.Finish();
    safe = rest.ok() ? absl::StatusOr<std::string>(*safe + *rest) : rest;
  }
  metrics_.OutputPii(filter.replacements() - before, !safe.ok());
  if (safe.ok()) {
    chunk.text = *std::move(safe);
    return;
  }
  chunk.text.clear();
  if (chunk.done && chunk.status.ok()) chunk.status = safe.status();
}

bool Frontend::Watermarks(const v1::GenerateRequest& req) const {
  switch (req.watermark().mode()) {
    case v1::WatermarkOptions::ON:
      return true;
    case v1::WatermarkOptions::OFF:
      return false;
    default:
      break;
  }
  return watermark_tasks_.count(TaskOf(req)) > 0;
}

absl::StatusOr<WatermarkDetection> Frontend::Detect(const std::string& text,
                                                    const std::vector<int32_t>& ids) {
  if (!text.empty() && !ids.empty()) {
    return absl::InvalidArgumentError("give text or token_ids, not both");
  }
  if (static_cast<int64_t>(text.size()) > limits_.max_prompt_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("text is longer than ", limits_.max_prompt_bytes, " bytes"));
  }
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text is not valid UTF-8");
  Engine* engine = live();
  if (engine == nullptr) return NotLoaded();
  if (static_cast<int64_t>(ids.size()) > engine->config().n_positions * 64) {
    return absl::InvalidArgumentError("token_ids: too many ids");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= engine->config().vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token_ids[", i, "]: ", ids[i], " is outside the vocabulary"));
    }
  }
  const std::vector<int32_t> tokens = ids.empty() ? engine->Encode(text) : ids;
  if (tokens.size() < 2) return absl::InvalidArgumentError("text or token_ids: at least 2 tokens");
  return DetectWatermark(watermark_, tokens, engine->EosId());
}

absl::StatusOr<std::shared_ptr<SchemaMasks>> Frontend::Masks(const v1::ResponseFormat& format,
                                                             const Engine& engine) {
  std::string text, field = "response_format.json_schema";
  switch (format.schema_case()) {
    case v1::ResponseFormat::kJsonSchema:
      text = format.json_schema();
      break;
    case v1::ResponseFormat::kNamedSchema:
      field = "response_format.named_schema";
      if (format.named_schema() != "product_listing") {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ": unknown schema \"", format.named_schema(), "\" (product_listing)"));
      }
      text = JsonSchema::ProductListing();
      break;
    default:
      return absl::InvalidArgumentError("response_format: set json_schema or named_schema");
  }
  if (text.size() > 64 * 1024) return absl::InvalidArgumentError(field + ": longer than 64 KiB");
  std::lock_guard<std::mutex> lock(masks_mu_);
  auto it = masks_.find(text);
  if (it != masks_.end()) return it->second;
  absl::StatusOr<std::shared_ptr<const JsonSchema>> schema = JsonSchema::Compile(text);
  if (!schema.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", schema.status().message()));
  }
  if (vocabulary_ == nullptr) {
    vocabulary_ = std::make_shared<const VocabularyTrie>(engine.TokenTexts(), engine.EosId());
  }
  if (masks_.size() >= 64) masks_.erase(masks_.begin());  // a bounded cache of schemas
  auto masks = std::make_shared<SchemaMasks>(*std::move(schema), vocabulary_);
  masks_.emplace(text, masks);
  return masks;
}

void Frontend::Record(const EngineChunk& done) {
  metrics_.Finished(Outcome(done.status), done.prompt_tokens, done.generated_tokens,
                    done.time_to_first_token_s, done.total_s);
}

ServingGauges Frontend::Gauges() const {
  ServingGauges g;
  g.serving = false;
  Engine* engine = live();
  if (engine == nullptr) return g;  // waiting for the first checkpoint: not serving
  const EngineStats s = engine->stats();
  const EngineOptions& o = engine->options();
  g.queue_size = s.queued;
  g.batch_size = s.running;
  g.free_slots = s.free_slots;
  g.slots = o.max_batch;
  g.kv_cache_usage = static_cast<double>(s.reserved_tokens) /
                     static_cast<double>(std::max<int64_t>(1, o.max_batch_tokens));
  g.model_step = s.checkpoint_step;
  g.engine_steps = s.steps;
  g.models_loaded = s.models;
  g.prefix_cache_tokens = s.prefix_cached_tokens;
  g.prefix_cache_hit_tokens = s.prefix_hit_tokens;
  g.serving = !draining_;
  return g;
}

}  // namespace copyforge
