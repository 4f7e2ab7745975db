#include "serving/grpc_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>

#include "protos/bearer_token.h"
#include "protos/grpc_status.h"
#include "serving/request_limits.h"
#include "trainer/tokenizer/unicode.h"

namespace copyforge {
namespace {

using Clock = std::chrono::steady_clock;

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return v1::LENGTH;
    case FinishReason::kEos:
      return v1::EOS;
    case FinishReason::kStopSequence:
      return v1::STOP_SEQUENCE;
    case FinishReason::kCopyLimit:
      return v1::COPY_LIMIT;
    default:
      return v1::FINISH_REASON_UNSPECIFIED;
  }
}

Caller CallerOf(const grpc::CallbackServerContext& context) {
  Caller caller;
  if (context.deadline() != std::chrono::system_clock::time_point::max()) {
    caller.deadline = Clock::now() + (context.deadline() - std::chrono::system_clock::now());
  }
  return caller;  // a client that leaves is heard through OnCancel
}

// How the engine's hand-off reaches a call: `call` is null once the RPC is done, so a chunk that
// arrives late touches nothing. Pump runs under `mu` and returns what must run after it is
// released (StartWrite or Finish, which may re-enter the reactor).
template <typename Call>
struct Link {
  std::mutex mu;
  Call* call = nullptr;  // guarded by mu
  std::atomic<bool> scheduled{false};

  // OnDone of `done`: later deliveries find no call; then the reactor deletes itself.
  void Close(Call* done) {
    {
      std::lock_guard<std::mutex> lock(mu);
      call = nullptr;
    }
    delete done;
  }
};

template <typename Call>
std::function<void()> OnReady(const std::shared_ptr<Link<Call>>& link, DeliveryPool* pool) {
  return [link, pool] {
    if (link->scheduled.exchange(true)) return;  // a delivery is already on its way
    pool->Post([link] {
      link->scheduled = false;
      std::function<void()> after;
      {
        std::lock_guard<std::mutex> lock(link->mu);
        if (link->call != nullptr) after = link->call->Pump();
      }
      if (after) after();
    });
  };
}

// Generate: the completions fill in as chunks arrive; Finish once every sequence is done.
class GenerateCall : public grpc::ServerUnaryReactor {
 public:
  GenerateCall(Frontend* front, DeliveryPool* pool, grpc::CallbackServerContext* context,
               const v1::GenerateRequest* req, v1::GenerateResponse* resp)
      : front_(front), req_(req), resp_(resp), link_(std::make_shared<Link<GenerateCall>>()) {
    link_->call = this;
    box_->on_ready = OnReady(link_, pool);
    absl::Status st;
    {
      std::lock_guard<std::mutex> lock(link_->mu);  // no delivery before the response is set up
      st = front_->Submit(*req, CallerOf(*context), box_, &n_);
      if (st.ok()) {
        for (uint32_t i = 0; i < n_; ++i) resp_->add_completions();
      } else {
        finishing_ = true;
      }
    }
    if (!st.ok()) Finish(ToGrpc(st));
  }

  std::function<void()> Pump() {
    if (finishing_) return nullptr;
    std::pair<uint32_t, EngineChunk> item;
    while (front_->TryNext(*box_, &item)) {
      auto& [i, chunk] = item;
      v1::Completion* c = resp_->mutable_completions(static_cast<int>(i));
      c->mutable_text()->append(chunk.text);
      for (int32_t id : chunk.ids) c->add_token_ids(id);
      for (float lp : chunk.logprobs) c->add_logprobs(lp);
      if (!chunk.done) continue;
      ++done_;
      front_->Record(chunk);
      c->set_finish_reason(ToProto(chunk.reason));
      c->set_longest_copied_tokens(static_cast<uint32_t>(std::max<int64_t>(0, chunk.longest_copy)));
      c->set_watermarked(box_->watermarked);
      if (!chunk.status.ok() && failure_.ok()) failure_ = chunk.status;
      resp_->mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(chunk.prompt_tokens));
      // Sequences of one prompt may differ (the first fills the cache): the most is reported.
      resp_->mutable_usage()->set_cached_prompt_tokens(
          std::max(resp_->usage().cached_prompt_tokens(),
                   static_cast<uint32_t>(chunk.cached_prompt_tokens)));
      resp_->mutable_usage()->set_generated_tokens(resp_->usage().generated_tokens() +
                                                   static_cast<uint32_t>(chunk.generated_tokens));
      resp_->set_checkpoint(chunk.checkpoint);
      resp_->set_checkpoint_step(chunk.checkpoint_step);
      Timings(chunk);
    }
    if (done_ < n_) return nullptr;
    finishing_ = true;
    if (failure_.ok()) resp_->set_request_id(req_->request_id());
    return [this, status = ToGrpc(failure_)] { Finish(status); };
  }

  void OnCancel() override { box_->cancelled = true; }
  void OnDone() override {
    const auto link = link_;  // outlives the reactor Close deletes
    link->Close(this);
  }

 private:
  void Timings(const EngineChunk& chunk) {
    v1::Timings* t = resp_->mutable_timings();
    t->set_queue_s(std::max(t->queue_s(), chunk.queue_s));
    t->set_time_to_first_token_s(std::max(t->time_to_first_token_s(), chunk.time_to_first_token_s));
    t->set_total_s(std::max(t->total_s(), chunk.total_s));
  }

  Frontend* const front_;
  const v1::GenerateRequest* const req_;
  v1::GenerateResponse* const resp_;
  std::shared_ptr<Mailbox> box_ = std::make_shared<Mailbox>();
  std::shared_ptr<Link<GenerateCall>> link_;
  // Guarded by link_->mu.
  uint32_t n_ = 0, done_ = 0;
  bool finishing_ = false;
  absl::Status failure_;
};

// GenerateStream: one message a chunk, written one at a time (the next from OnWriteDone).
class StreamCall : public grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
 public:
  StreamCall(Frontend* front, DeliveryPool* pool, grpc::CallbackServerContext* context,
             const v1::GenerateRequest* req)
      : front_(front), link_(std::make_shared<Link<StreamCall>>()) {
    link_->call = this;
    box_->on_ready = OnReady(link_, pool);
    absl::Status st;
    {
      std::lock_guard<std::mutex> lock(link_->mu);
      st = front_->Submit(*req, CallerOf(*context), box_, &n_);
      if (!st.ok()) finishing_ = true;
    }
    if (!st.ok()) Finish(ToGrpc(st));
  }

  std::function<void()> Pump() {
    if (finishing_) return nullptr;
    std::pair<uint32_t, EngineChunk> item;
    while (front_->TryNext(*box_, &item)) Take(item);
    if (writing_) return nullptr;
    if (!pending_.empty()) {
      writing_ = true;
      current_ = std::move(pending_.front());
      pending_.pop_front();
      return [this] { StartWrite(&current_); };
    }
    if (done_ < n_) return nullptr;
    finishing_ = true;
    const grpc::Status status =
        gone_ ? grpc::Status(grpc::StatusCode::CANCELLED, "the client went away")
              : ToGrpc(failure_);
    return [this, status] { Finish(status); };
  }

  void OnWriteDone(bool ok) override {
    std::function<void()> after;
    {
      std::lock_guard<std::mutex> lock(link_->mu);
      writing_ = false;
      if (!ok) {  // the client is gone: the engine drops the sequences at its next step
        gone_ = true;
        box_->cancelled = true;
        pending_.clear();
      }
      after = Pump();
    }
    if (after) after();
  }
  void OnCancel() override { box_->cancelled = true; }
  void OnDone() override {
    const auto link = link_;  // outlives the reactor Close deletes
    link->Close(this);
  }

 private:
  void Take(std::pair<uint32_t, EngineChunk>& item) {
    auto& [i, chunk] = item;
    v1::GenerateStreamResponse m;
    m.set_index(i);
    m.set_text(chunk.text);
    for (int32_t id : chunk.ids) m.add_token_ids(id);
    for (float lp : chunk.logprobs) m.add_logprobs(lp);
    if (chunk.done) {
      ++done_;
      front_->Record(chunk);
      if (!chunk.status.ok()) {
        if (failure_.ok()) failure_ = chunk.status;
        return;
      }
      m.set_finish_reason(ToProto(chunk.reason));
      m.set_longest_copied_tokens(static_cast<uint32_t>(std::max<int64_t>(0, chunk.longest_copy)));
      m.set_watermarked(box_->watermarked);
      m.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(chunk.prompt_tokens));
      m.mutable_usage()->set_cached_prompt_tokens(
          static_cast<uint32_t>(chunk.cached_prompt_tokens));
      m.mutable_usage()->set_generated_tokens(static_cast<uint32_t>(chunk.generated_tokens));
      m.mutable_timings()->set_queue_s(chunk.queue_s);
      m.mutable_timings()->set_time_to_first_token_s(chunk.time_to_first_token_s);
      m.mutable_timings()->set_total_s(chunk.total_s);
    } else if (m.text().empty() && m.token_ids().empty()) {
      return;
    }
    if (!gone_) pending_.push_back(std::move(m));
  }

  Frontend* const front_;
  std::shared_ptr<Mailbox> box_ = std::make_shared<Mailbox>();
  std::shared_ptr<Link<StreamCall>> link_;
  // Guarded by link_->mu.
  uint32_t n_ = 0, done_ = 0;
  bool finishing_ = false, writing_ = false, gone_ = false;
  absl::Status failure_;
  std::deque<v1::GenerateStreamResponse> pending_;
  v1::GenerateStreamResponse current_;  // the message being written
};

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const grpc::Status& st) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(st);
  return reactor;
}

}  // namespace

DeliveryPool::DeliveryPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
          if (tasks_.empty()) return;
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
        task();
      }
    });
  }
}

DeliveryPool::~DeliveryPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void DeliveryPool::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

TextGenerationService::TextGenerationService(Frontend* front, int delivery_threads)
    : front_(front), pool_(delivery_threads) {}

grpc::Status TextGenerationService::CheckCaller(const grpc::CallbackServerContext& context) {
  front_->metrics().FrontEnd("grpc");
  if (front_->Authorize(PresentedBearer(context.client_metadata()))) return grpc::Status::OK;
  return Unauthenticated();
}

grpc::ServerUnaryReactor* TextGenerationService::Generate(grpc::CallbackServerContext* context,
                                                          const v1::GenerateRequest* request,
                                                          v1::GenerateResponse* response) {
  if (grpc::Status st = CheckCaller(*context); !st.ok()) return Answer(context, st);
  return new GenerateCall(front_, &pool_, context, request, response);
}

grpc::ServerWriteReactor<v1::GenerateStreamResponse>* TextGenerationService::GenerateStream(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  if (grpc::Status st = CheckCaller(*context); !st.ok()) {
    // A reactor that only reports the refusal.
    class Refused : public grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
     public:
      explicit Refused(const grpc::Status& st) { Finish(st); }
      void OnDone() override { delete this; }
    };
    return new Refused(st);
  }
  return new StreamCall(front_, &pool_, context, request);
}

grpc::ServerUnaryReactor* TextGenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                          const v1::TokenizeRequest* req,
                                                          v1::TokenizeResponse* resp) {
  if (grpc::Status st = CheckCaller(*context); !st.ok()) return Answer(context, st);
  if (absl::Status st = CheckTokenizeRequest(*req, front_->limits()); !st.ok()) {
    return Answer(context,
                  grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(st.message())));
  }
  if (!IsValidUtf8(req->text())) {
    return Answer(context,
                  grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "text is not valid UTF-8"));
  }
  Engine* engine = front_->live();
  if (engine == nullptr) return Answer(context, ToGrpc(Frontend::NotLoaded()));
  for (int32_t id : engine->Encode(req->text())) resp->add_token_ids(id);
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* TextGenerationService::GetModelInfo(grpc::CallbackServerContext* context,
                                                              const v1::GetModelInfoRequest*,
                                                              v1::ModelInfo* info) {
  if (grpc::Status st = CheckCaller(*context); !st.ok()) return Answer(context, st);
  Engine* engine = front_->live();
  if (engine == nullptr) return Answer(context, ToGrpc(Frontend::NotLoaded()));
  const Gpt2Config& c = engine->config();
  const EngineOptions& o = engine->options();
  const EngineStats stats = engine->stats();
  info->set_checkpoint(stats.checkpoint);
  info->set_checkpoint_step(stats.checkpoint_step);
  info->set_n_layer(c.n_layer);
  info->set_n_head(c.n_head);
  info->set_n_embd(c.n_embd);
  info->set_n_positions(c.n_positions);
  info->set_vocab_size(c.vocab_size);
  info->set_dtype(o.dtype);
  info->set_device(o.device);
  info->set_max_prompt_tokens(static_cast<uint32_t>(o.max_prompt_tokens));
  info->set_max_new_tokens(static_cast<uint32_t>(o.max_new_tokens));
  info->set_max_batch(static_cast<uint32_t>(o.max_batch));
  info->set_max_queue(static_cast<uint32_t>(o.max_queue));
  info->set_max_batch_tokens(static_cast<uint64_t>(o.max_batch_tokens));
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* TextGenerationService::Detect(grpc::CallbackServerContext* context,
                                                        const v1::DetectRequest* req,
                                                        v1::DetectResponse* resp) {
  if (grpc::Status st = CheckCaller(*context); !st.ok()) return Answer(context, st);
  absl::StatusOr<WatermarkDetection> d = front_->Detect(
      req->text(), std::vector<int32_t>(req->token_ids().begin(), req->token_ids().end()));
  if (!d.ok()) return Answer(context, ToGrpc(d.status()));
  resp->set_z_score(d->z);
  resp->set_p_value(d->p_value);
  resp->set_watermarked(d->watermarked);
  resp->set_scored_tokens(static_cast<uint32_t>(d->scored));
  resp->set_green_tokens(static_cast<uint32_t>(d->green));
  resp->set_threshold(front_->watermark().z_threshold);
  resp->set_gamma(front_->watermark().gamma);
  return Answer(context, grpc::Status::OK);
}

}  // namespace copyforge
