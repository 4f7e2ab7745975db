#include "serving/engine.h"

#include "serving/admission.h"
#include "serving/kv_prefix_cache.h"
#include "serving/step_plan.h"
#include "serving/text_stream.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/common/cpu_features.h"
#include "trainer/common/status_macros.h"
#include "trainer/common/threads.h"
#include "trainer/device/device.h"
#include "trainer/tokenizer/unicode.h"

namespace copyforge {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A loaded model; shared by the sequences admitted while it was current.
struct ModelSlot {
  LoadedCheckpoint checkpoint;
  std::string name;
  int64_t step = 0;
  uint64_t generation = 0;  // unique per prepared model (the prefix cache's owner)
};

// A checkpoint made ready to serve: inference mode, weights on the device in the served dtype.
std::shared_ptr<ModelSlot> PrepareModel(LoadedCheckpoint checkpoint, const std::string& dtype,
                                        const torch::Device& device, const std::string& name,
                                        int64_t step) {
  checkpoint.model->eval();
  if (dtype == "int8") {
    // Quantized from the checkpoint's own precision; the rest serves in bfloat16 where the CPU
    // has it.
    checkpoint.model->PackInt8();
    checkpoint.model->to(device, CpuHasBf16() ? torch::kBFloat16 : torch::kFloat);
  } else {
    checkpoint.model->to(device, dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat);
    // Decode rows stream packed copies of the weights (trainer/model/packed_linear.h).
    if (dtype == "bfloat16" && device.is_cpu()) checkpoint.model->PackBf16();
  }
  auto slot = std::make_shared<ModelSlot>();
  slot->checkpoint = std::move(checkpoint);
  slot->name = name;
  slot->step = step;
  static std::atomic<uint64_t> generations{0};
  slot->generation = ++generations;
  return slot;
}

// One request in the engine.
struct Sequence {
  std::shared_ptr<ModelSlot> model;
  EngineRequest request;
  std::unique_ptr<Sampler> sampler;
  int slot = -1;
  int64_t reserved = 0;          // KV tokens reserved in the budget
  int64_t length = 0;            // positions in the KV cache
  int32_t next = -1;             // sampled, not yet in the cache
  bool prefilling = true;        // the prompt is still going into the cache, chunk by chunk
  int64_t prefilled = 0;         // prompt tokens in the cache so far
  int64_t cached = 0;            // of them, copied from the prefix cache
  bool finished = false;         // the final chunk was sent; the slot is released at Reap
  std::vector<int32_t> history;  // prompt + generated (repetition penalty)
  std::vector<int32_t> generated;
  TextStream stream;  // the text of `generated`: stop sequences, UTF-8 boundaries
  Clock::time_point queued_at = Clock::now(), started_at, first_token_at;
  bool has_first = false;
};

// Weights plus the KV pool (max_batch slots of n_positions keys and values per layer) against
// the budget, before anything is allocated.
absl::Status CheckMemoryBudget(const Gpt2Config& c, const EngineOptions& o,
                               const torch::Device& device) {
  const double element = o.dtype == "bfloat16" || (o.dtype == "int8" && CpuHasBf16()) ? 2 : 4;
  const double kv = 2.0 * static_cast<double>(c.n_layer) *
                    static_cast<double>(o.max_batch * c.n_positions + o.prefix_cache_tokens) *
                    static_cast<double>(c.n_embd) * element;
  // int8: a byte per weight plus the embeddings kept for lookups; bfloat16 on the CPU: the dense
  // weights for prompts and the packed copy for decoding.
  const double copies = o.dtype == "bfloat16" && device.is_cpu() ? 2 : 1;
  const double weights =
      o.dtype == "int8"
          ? static_cast<double>(c.NumParameters()) +
                static_cast<double>((c.vocab_size + c.n_positions) * c.n_embd) * element
          : static_cast<double>(c.NumParameters()) * element * copies;
  double budget = o.max_memory_gb * 1e9;
  if (budget <= 0 && device.is_cpu()) {
    budget = 0.9 * static_cast<double>(::sysconf(_SC_PHYS_PAGES)) *
             static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  }
  if (budget <= 0 || kv + weights <= budget) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the KV pool (%d slots x %d positions + %d prefix-cache tokens, x %d layers) needs %.2f GB "
      "and the weights %.2f GB, more than the %.2f GB memory budget (--max-memory-gb); lower "
      "--max-batch or --prefix-cache-tokens",
      o.max_batch, c.n_positions, o.prefix_cache_tokens, c.n_layer, kv / 1e9, weights / 1e9,
      budget / 1e9));
}

}  // namespace

class Engine::Impl {
 public:
  // `options.dtype` is resolved (float32 or bfloat16).
  Impl(LoadedCheckpoint checkpoint, const EngineOptions& options, const torch::Device& device,
       const std::string& name, int64_t step)
      : options_(options), device_(device), config_(checkpoint.config) {
    current_ = PrepareModel(std::move(checkpoint), options_.dtype, device_, name, step);
    const Gpt2Config& c = config_;
    if (options_.max_prompt_tokens <= 0) options_.max_prompt_tokens = c.n_positions - 1;
    if (options_.max_batch_tokens <= 0) {
      options_.max_batch_tokens = static_cast<int64_t>(options_.max_batch) * c.n_positions;
    }
    const auto params = current_->checkpoint.model->parameters();
    const auto kv_options = torch::TensorOptions().dtype(params[0].scalar_type()).device(device_);
    pool_ = KvCache::Allocate(c, options_.max_batch, c.n_positions, kv_options);
    if (options_.prefix_cache_tokens >= options_.prefix_block_tokens) {
      prefix_ = std::make_unique<KvPrefixCache>(c, options_.prefix_cache_tokens,
                                                options_.prefix_block_tokens, kv_options);
    }
    admission_ = std::make_unique<Admission<Sequence>>(
        options_.max_batch, options_.max_batch_tokens, options_.max_queue);
    stats_.free_slots = options_.max_batch;
    stats_.checkpoint = name;
    stats_.checkpoint_step = step;
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  absl::Status Submit(EngineRequest r) {
    const Gpt2Config& c = config_;
    if (r.prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
    if (static_cast<int64_t>(r.prompt.size()) > options_.max_prompt_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("prompt has ", r.prompt.size(),
                                                     " tokens, over the limit max_prompt_tokens ",
                                                     options_.max_prompt_tokens));
    }
    if (r.max_new_tokens == 0) r.max_new_tokens = options_.default_max_new_tokens;
    if (r.max_new_tokens < 0 || r.max_new_tokens > options_.max_new_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("stopping.max_new_tokens ", r.max_new_tokens,
                                                     " is over the limit max_new_tokens ",
                                                     options_.max_new_tokens));
    }
    if (absl::Status st = r.sampling.Validate(); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("sampling.", st.message()));
    }
    for (const std::string& s : r.stop) {
      if (s.empty()) return absl::InvalidArgumentError("stopping.stop has an empty sequence");
    }
    auto seq = std::make_unique<Sequence>();
    seq->reserved =
        std::min<int64_t>(c.n_positions, static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens);
    if (seq->reserved > options_.max_batch_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("prompt + max_new_tokens = ", seq->reserved,
                                                     " tokens is over the limit max_batch_tokens ",
                                                     options_.max_batch_tokens));
    }
    seq->stream = TextStream(r.stop);
    seq->sampler = std::make_unique<Sampler>(r.sampling);
    seq->history = r.prompt;
    seq->request = std::move(r);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return absl::UnavailableError("the server is shutting down");
      if (absl::Status st = admission_->Enqueue(std::move(seq)); !st.ok()) return st;
    }
    cv_.notify_all();
    return absl::OkStatus();
  }

  EngineStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  absl::Status Swap(LoadedCheckpoint checkpoint, const std::string& name, int64_t step) {
    const Gpt2Config& a = config_;
    const Gpt2Config& b = checkpoint.config;
    if (a.n_layer != b.n_layer || a.n_head != b.n_head || a.n_embd != b.n_embd ||
        a.n_positions != b.n_positions || a.vocab_size != b.vocab_size) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " has another shape (n_layer ", b.n_layer, ", n_head ", b.n_head,
                       ", n_embd ", b.n_embd, ", n_positions ", b.n_positions, ", vocab_size ",
                       b.vocab_size, ") than the served model (", a.n_layer, ", ", a.n_head, ", ",
                       a.n_embd, ", ", a.n_positions, ", ", a.vocab_size, ")"));
    }
    if (checkpoint.tokenizer == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(name, " has no tokenizer files"));
    }
    auto slot = PrepareModel(std::move(checkpoint), options_.dtype, device_, name, step);
    std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(slot);
    stats_.checkpoint = current_->name;
    stats_.checkpoint_step = current_->step;
    return absl::OkStatus();
  }

  std::shared_ptr<ModelSlot> current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }

  EngineOptions options_;
  torch::Device device_;  // resolved; constant after construction
  Gpt2Config config_;

 private:
  void Loop() {
    torch::NoGradGuard no_grad;
    torch::set_num_threads(ResolveThreads(options_.threads));
    PrepareDevice(device_);  // this thread's current GPU
    while (true) {
      std::unique_ptr<Sequence> admitted;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || admission_->queued() > 0 || !running_.empty(); });
        if (stopping_) break;
        // Admit one waiting request per step, so prefills interleave with decoding.
        admitted = admission_->Admit();
        if (admitted) admitted->model = current_;
      }
      if (admitted) {
        admitted->started_at = Clock::now();
        if (prefix_ != nullptr) {
          admitted->cached = prefix_->Reuse(admitted->model->generation, admitted->request.prompt,
                                            pool_, admitted->slot);
          admitted->prefilled = admitted->cached;
          prefix_hits_ += admitted->cached;
        }
        running_.push_back(std::move(admitted));
      }
      Step();
      Reap();
      std::lock_guard<std::mutex> lock(mu_);
      stats_.running = static_cast<int>(running_.size());
      stats_.queued = admission_->queued();
      stats_.free_slots = admission_->free_slots();
      stats_.reserved_tokens = admission_->reserved();
      stats_.steps = steps_;
      stats_.prefix_hit_tokens = prefix_hits_;
      stats_.prefix_cached_tokens = prefix_ != nullptr ? prefix_->cached_tokens() : 0;
      std::vector<const ModelSlot*> live = {current_.get()};
      for (const auto& s : running_) {
        if (std::find(live.begin(), live.end(), s->model.get()) == live.end()) {
          live.push_back(s->model.get());
        }
      }
      stats_.models = static_cast<int>(live.size());
    }
    // Shutting down: everyone hears CANCELLED.
    std::vector<std::unique_ptr<Sequence>> waiting;
    {
      std::lock_guard<std::mutex> lock(mu_);
      waiting = admission_->DropWaiting([](const Sequence&) { return true; });
    }
    for (auto& s : waiting) Finish(*s, FinishReason::kNone, absl::CancelledError("server stopped"));
    for (auto& s : running_)
      Finish(*s, FinishReason::kNone, absl::CancelledError("server stopped"));
    running_.clear();
  }

  static bool Decoding(const Sequence& s) { return !s.finished && !s.prefilling && s.next >= 0; }

  // One continuous-batching step over the passes PlanStep chose (serving/step_plan.h).
  void Step() {
    std::vector<StepCandidate> candidates;
    for (const auto& s : running_) {
      candidates.push_back({s->model.get(), Decoding(*s), s->prefilling && !s->finished,
                            static_cast<int64_t>(s->request.prompt.size()), s->prefilled});
    }
    const std::vector<ModelPass> passes = PlanStep(candidates, options_.prefill_chunk);
    for (const ModelPass& pass : passes) {
      ModelSlot* m = static_cast<ModelSlot*>(const_cast<void*>(pass.model));
      std::vector<Sequence*> rows;
      std::vector<int64_t> tokens, slots, positions;
      SlotBatch batch;
      for (size_t i : pass.decode) {
        Sequence* s = running_[i].get();
        rows.push_back(s);
        tokens.push_back(s->next);
        slots.push_back(s->slot);
        positions.push_back(s->length);
        batch.max_length = std::max(batch.max_length, s->length + 1);
      }
      PrefillChunk chunk;
      Sequence* prefill = pass.prefill >= 0 ? running_[pass.prefill].get() : nullptr;
      Sequence* prefilled = nullptr;  // the sequence whose prompt ends in this step
      if (prefill != nullptr) {
        const auto& prompt = prefill->request.prompt;
        chunk.slot = prefill->slot;
        chunk.start = pass.chunk_start;
        chunk.tokens =
            ToDevice(std::vector<int64_t>(prompt.begin() + pass.chunk_start,
                                          prompt.begin() + pass.chunk_start + pass.chunk_tokens));
        chunk.logits = pass.chunk_ends_prompt;
        if (chunk.logits) prefilled = prefill;
      }
      torch::Tensor input;
      if (!rows.empty()) {
        input = ToDevice(tokens);
        batch.slots = ToDevice(slots);
        batch.positions = ToDevice(positions);
      }
      std::vector<Sequence*> sampling = rows;
      if (prefilled != nullptr) sampling.push_back(prefilled);
      std::vector<int64_t> ids;
      torch::Tensor logits;
      try {
        logits = m->checkpoint.model->Step(input, batch, chunk, &pool_);
        std::vector<Sampler*> samplers;
        std::vector<absl::Span<const int32_t>> histories;
        for (Sequence* s : rows) s->history.push_back(s->next);
        for (Sequence* s : sampling) {
          samplers.push_back(s->sampler.get());
          histories.push_back(s->history);
        }
        if (!sampling.empty()) {
          logits = ShapeLogits(logits, sampling);
          ids = Sampler::SampleBatch(logits, samplers, histories);
        }
      } catch (const c10::Error& e) {
        // The step's sequences fail; their slots are freed at Reap and the engine goes on.
        std::vector<Sequence*> failed = rows;
        if (chunk.tokens.defined()) failed.push_back(prefill);
        for (Sequence* s : failed) {
          Finish(*s, FinishReason::kNone,
                 absl::InternalError(absl::StrCat("step failed: ", e.what_without_backtrace())));
        }
        continue;
      }
      if (chunk.tokens.defined()) prefill->prefilled += chunk.tokens.numel();
      if (prefilled != nullptr) {
        prefilled->prefilling = false;
        prefilled->length = prefilled->prefilled;
        if (prefix_ != nullptr) {
          prefix_->Store(prefilled->model->generation, prefilled->request.prompt, pool_,
                         prefilled->slot);
        }
      } else if (rows.empty()) {
        continue;  // only a chunk of a prompt went in
      }
      for (size_t row = 0; row < rows.size(); ++row) rows[row]->length += 1;
      for (size_t row = 0; row < sampling.size(); ++row) {
        if (sampling[row]->finished) continue;  // its logits processor failed
        Accept(*sampling[row], logits[static_cast<int64_t>(row)], ids[row]);
      }
    }
    if (!passes.empty()) ++steps_;
  }

  // Runs each sampled row's logits processor (row r of `logits` belongs to sampling[r]); a
  // processor's error fails its sequence, whose row is then sampled but never accepted.
  torch::Tensor ShapeLogits(torch::Tensor logits, const std::vector<Sequence*>& sampling) {
    bool any = false;
    for (Sequence* s : sampling) any = any || s->request.processor != nullptr;
    if (!any) return logits;
    torch::Tensor host = logits.to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t vocab = host.size(1);
    for (size_t row = 0; row < sampling.size(); ++row) {
      Sequence& s = *sampling[row];
      if (s.request.processor == nullptr || s.finished) continue;
      absl::Status status =
          s.request.processor->Process(host.data_ptr<float>() + row * vocab, vocab);
      if (!status.ok()) Finish(s, FinishReason::kNone, status);
    }
    return device_.is_cpu() ? host : host.to(device_);
  }

  // A step's ids, positions or slots on the model's device.
  torch::Tensor ToDevice(const std::vector<int64_t>& values) const {
    torch::Tensor t = torch::tensor(values, torch::kLong);
    return device_.is_cpu() ? t : t.to(device_);
  }

  // Takes `token`, sampled from `logits`, as the next token of `s` and emits what became final.
  void Accept(Sequence& s, const torch::Tensor& logits, int64_t token) {
    const EngineRequest& r = s.request;
    const int32_t id = static_cast<int32_t>(token);
    float logprob = 0;
    if (r.logprobs) logprob = torch::log_softmax(logits.to(torch::kFloat), -1)[id].item<float>();
    if (r.processor != nullptr) {
      absl::Status status = r.processor->Accept(id);
      if (!status.ok()) {
        s.next = -1;
        Finish(s, FinishReason::kNone, status);
        return;
      }
    }
    if (!s.has_first) {
      s.has_first = true;
      s.first_token_at = Clock::now();
    }
    const Tokenizer& tokenizer = *s.model->checkpoint.tokenizer;
    const int32_t eos = tokenizer.eot_id();
    if (id == eos && !r.ignore_eos) {
      s.next = -1;
      EngineChunk rest;  // what was held back for a stop sequence that can no longer complete
      rest.text = s.stream.Append("", /*last=*/true).text;
      if (!rest.text.empty()) Emit(s, std::move(rest));
      Finish(s, FinishReason::kEos, absl::OkStatus());
      return;
    }
    s.generated.push_back(id);
    const bool at_limit = static_cast<int64_t>(s.generated.size()) >= r.max_new_tokens ||
                          s.length + 1 >= config_.n_positions;
    // Byte-level BPE decodes by concatenation, so the text grows by this token's bytes (an id
    // beyond the tokenizer's vocabulary, possible with a padded embedding, adds none).
    TextStream::Update update = s.stream.Append(
        id < tokenizer.vocab_size() ? tokenizer.TokenBytes(id) : std::string_view(), at_limit);
    EngineChunk chunk;
    chunk.ids.push_back(id);
    if (r.logprobs) chunk.logprobs.push_back(logprob);
    chunk.text = std::move(update.text);
    if (update.stopped || at_limit) {
      s.next = -1;
      Emit(s, std::move(chunk));
      Finish(s, update.stopped ? FinishReason::kStopSequence : FinishReason::kLength,
             absl::OkStatus());
      return;
    }
    s.next = id;
    Emit(s, std::move(chunk));
  }

  void Emit(Sequence& s, EngineChunk chunk) {
    if (s.request.on_chunk) s.request.on_chunk(chunk);
  }

  void Finish(Sequence& s, FinishReason reason, absl::Status status) {
    EngineChunk done;
    done.done = true;
    done.reason = reason;
    done.status = std::move(status);
    done.prompt_tokens = static_cast<int64_t>(s.request.prompt.size());
    done.cached_prompt_tokens = s.cached;
    done.generated_tokens = static_cast<int64_t>(s.generated.size());
    const auto start = s.started_at == Clock::time_point{} ? Clock::now() : s.started_at;
    done.queue_s = std::chrono::duration<double>(start - s.queued_at).count();
    done.time_to_first_token_s =
        s.has_first ? std::chrono::duration<double>(s.first_token_at - s.queued_at).count() : 0;
    done.total_s = Since(s.queued_at);
    if (s.model) {
      done.checkpoint = s.model->name;
      done.checkpoint_step = s.model->step;
    }
    s.next = -1;
    s.finished = true;
    if (s.request.on_chunk) s.request.on_chunk(done);
    s.request.on_chunk = nullptr;  // exactly one final chunk
  }

  void Release(Sequence& s) {
    if (s.slot < 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    admission_->Release(s);
  }

  // Drops finished sequences and those whose client went away or whose deadline passed.
  void Reap() {
    const auto now = Clock::now();
    for (auto& s : running_) {
      if (s->finished) continue;
      if (s->request.cancelled && s->request.cancelled()) {
        Finish(*s, FinishReason::kNone, absl::CancelledError("cancelled by the client"));
      } else if (now > s->request.deadline) {
        Finish(*s, FinishReason::kNone, absl::DeadlineExceededError("deadline passed"));
      }
    }
    for (auto& s : running_) {
      if (s->finished) Release(*s);
    }
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [](const std::unique_ptr<Sequence>& s) { return s->slot < 0; }),
                   running_.end());
    // Waiting requests can be cancelled or expire too.
    std::vector<std::unique_ptr<Sequence>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      dropped = admission_->DropWaiting([now](const Sequence& s) {
        return (s.request.cancelled && s.request.cancelled()) || now > s.request.deadline;
      });
    }
    for (auto& s : dropped) {
      Finish(*s, FinishReason::kNone,
             now > s->request.deadline ? absl::DeadlineExceededError("deadline passed in the queue")
                                       : absl::CancelledError("cancelled by the client"));
    }
  }

  KvCache pool_;
  std::unique_ptr<KvPrefixCache> prefix_;           // engine thread; null when off
  int64_t prefix_hits_ = 0;                         // engine thread
  std::shared_ptr<ModelSlot> current_;              // guarded by mu_
  std::vector<std::unique_ptr<Sequence>> running_;  // engine thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Admission<Sequence>> admission_;  // guarded by mu_: queue, slots, budget
  int64_t steps_ = 0;                               // engine thread
  bool stopping_ = false;
  EngineStats stats_;
  std::thread thread_;
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(LoadedCheckpoint checkpoint,
                                                       const EngineOptions& options,
                                                       const std::string& name, int64_t step) {
  if (checkpoint.tokenizer == nullptr) {
    return absl::FailedPreconditionError(
        "the checkpoint has no tokenizer files (vocab.json, "
        "merges.txt); serving needs them");
  }
  if (options.max_batch < 1) return absl::InvalidArgumentError("max_batch must be >= 1");
  if (options.max_queue < 0) return absl::InvalidArgumentError("max_queue must be >= 0");
  EngineOptions o = options;
  auto device = ResolveDevice(o.device, "device");
  if (!device.ok()) return device.status();
  PrepareDevice(*device);
  o.device = device->str();
  if (o.dtype == "auto") o.dtype = device->is_cuda() || CpuHasBf16() ? "bfloat16" : "float32";
  if (o.prefix_block_tokens < 1) {
    return absl::InvalidArgumentError("prefix_block_tokens must be >= 1");
  }
  if (o.prefix_cache_tokens < -1) {
    return absl::InvalidArgumentError("prefix_cache_tokens must be >= 0 (or -1: the default)");
  }
  if (o.prefix_cache_tokens == -1) o.prefix_cache_tokens = 4 * checkpoint.config.n_positions;
  if (o.dtype != "float32" && o.dtype != "bfloat16" && o.dtype != "int8") {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype \"", o.dtype, "\" is not float32, bfloat16, int8 or auto"));
  }
  if (o.dtype == "int8" && !device->is_cpu()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype int8 is served on the CPU, not on ", o.device));
  }
  CF_RETURN_IF_ERROR(CheckMemoryBudget(checkpoint.config, o, *device));
  try {
    return std::unique_ptr<Engine>(
        new Engine(std::make_unique<Impl>(std::move(checkpoint), o, *device, name, step)));
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot set up the engine on ", o.device, ": ", e.what_without_backtrace()));
  }
}

absl::Status Engine::Submit(EngineRequest request) { return impl_->Submit(std::move(request)); }
EngineStats Engine::stats() const { return impl_->stats(); }
std::vector<int32_t> Engine::Encode(const std::string& text) const {
  const std::shared_ptr<ModelSlot> model = impl_->current();
  return model->checkpoint.tokenizer->Encode(text);
}
std::string Engine::TokenText(int32_t id) const {
  const std::shared_ptr<ModelSlot> model = impl_->current();
  const Tokenizer& tokenizer = *model->checkpoint.tokenizer;
  return id >= 0 && id < tokenizer.vocab_size() ? std::string(tokenizer.TokenBytes(id)) : "";
}
std::vector<std::string> Engine::TokenTexts() const {
  const std::shared_ptr<ModelSlot> model = impl_->current();
  const Tokenizer& tokenizer = *model->checkpoint.tokenizer;
  std::vector<std::string> out(static_cast<size_t>(impl_->config_.vocab_size));
  for (int32_t id = 0; id < std::min<int32_t>(tokenizer.vocab_size(), out.size()); ++id) {
    out[id] = std::string(tokenizer.TokenBytes(id));
  }
  return out;
}
int32_t Engine::EosId() const { return impl_->current()->checkpoint.tokenizer->eot_id(); }
const Gpt2Config& Engine::config() const { return impl_->config_; }
absl::Status Engine::Swap(LoadedCheckpoint checkpoint, const std::string& name, int64_t step) {
  return impl_->Swap(std::move(checkpoint), name, step);
}
const EngineOptions& Engine::options() const { return impl_->options_; }
void Engine::Stop() { impl_->Stop(); }

}  // namespace copyforge
