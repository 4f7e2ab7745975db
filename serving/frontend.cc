#include "serving/frontend.h"

#include <algorithm>
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
      max_copy_tokens_(options.max_copy_tokens) {}

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
    };
    if (absl::Status st = engine->Submit(std::move(r)); !st.ok()) {
      box->cancelled = true;  // the sequences already queued leave at the next step
      return refuse(st);
    }
  }
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
  g.serving = !draining_;
  return g;
}

}  // namespace copyforge
