// What every front end of `copyforge serve` shares (the gRPC TextGeneration service and the
// OpenAI-compatible HTTP API): the engine once a model is loaded, the caller check, turning a
// GenerateRequest into engine requests (limits, template rendering, sampling checks) and
// queueing them, handing the engine's chunks to the request's thread, and the metrics.
#ifndef COPYFORGE_SERVING_FRONTEND_H_
#define COPYFORGE_SERVING_FRONTEND_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "protos/bearer_token.h"
#include "serving.pb.h"
#include "serving/engine.h"
#include "serving/metrics.h"
#include "serving/pii_stream.h"
#include "serving/request_limits.h"
#include "serving/token_mask.h"
#include "serving/watermark.h"
#include "trainer/data/ngram_index.h"
#include "trainer/data/templates.h"

namespace copyforge {

// The chunks of one request's sequences, handed from the engine thread to the request's thread.
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<uint32_t, EngineChunk>> chunks;  // guarded by mu
  std::atomic<bool> cancelled{false};
  // The output PII filter of each sequence (null scrubber: off); used by the request's thread.
  const PiiScrubber* scrubber = nullptr;
  std::map<uint32_t, PiiStreamFilter> filters;
  // The regurgitation guard of each sequence (used by the request's thread) and the sequences it
  // cut, which the engine drops at its next step (guarded by mu).
  struct CopyGuard {
    std::vector<int32_t> window;   // the last n generated tokens
    int64_t run = 0, longest = 0;  // consecutive indexed windows ending here; the most
    bool cut = false;
  };
  std::map<uint32_t, CopyGuard> guards;
  std::set<uint32_t> cut;
  bool watermarked = false;  // set by Submit: every sequence of the request carries the watermark
  // Called on the engine thread after each chunk is queued (set before Submit; may be empty):
  // how a callback front end learns there is something to take, without waiting on cv.
  std::function<void()> on_ready;
};

// A request's caller, as far as the engine needs it.
struct Caller {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<bool()> gone;  // true once the client has left (polled; may be empty)
};

struct FrontendOptions {
  RequestLimits limits;
  // Generated text passes the PII scrubber before it is returned (serving/pii_stream.h).
  bool pii_filter = true;
  // The regurgitation guard: with the training split's copy index (prepare's ngrams.bin), each
  // response reports the longest run it copies verbatim from a training text; a run longer than
  // max_copy_tokens (0: report only) cuts the sequence (finish reason COPY_LIMIT).
  std::string copy_index;
  int64_t max_copy_tokens = 0;
  // The watermark's key and strength, and the tasks watermarked when a request does not say
  // (of "review", "product_description", "blog_post", "prompt").
  WatermarkConfig watermark;
  std::set<std::string> watermark_tasks = {"review"};
};

class Frontend {
 public:
  // `tokens` null: callers need no token. Errors name the copy index file.
  static absl::StatusOr<std::unique_ptr<Frontend>> Create(const FrontendOptions& options,
                                                          TemplateSet templates,
                                                          std::unique_ptr<TokenFile> tokens);
  Frontend(const FrontendOptions& options, TemplateSet templates,
           std::unique_ptr<TokenFile> tokens);

  // The engine, or null until the first model is loaded. Publish is called once.
  Engine* live() const { return live_.load(std::memory_order_acquire); }
  void Publish(std::unique_ptr<Engine> engine);
  static absl::Status NotLoaded();
  void SetDraining() { draining_ = true; }
  bool draining() const { return draining_; }

  // Whether a caller presenting `bearer` may generate; a refusal is counted.
  bool Authorize(const std::string& bearer);
  // Validates `req` (INVALID_ARGUMENT naming the field), renders its prompt and queues one
  // engine request per return sequence, whose chunks arrive in `box` numbered from
  // `index_base`; *n is their number. A refusal (draining, no model, invalid, queue full) is
  // counted and nothing stays queued.
  absl::Status Submit(const v1::GenerateRequest& req, const Caller& caller,
                      const std::shared_ptr<Mailbox>& box, uint32_t* n, uint32_t index_base = 0);
  // Waits for the next chunk; marks the box cancelled once the caller is gone. With the PII
  // filter on, the chunk's text is what is safe to send (held-back text comes with later chunks,
  // the rest with the final one); a scrubbing failure withholds the text and fails the sequence.
  void Next(Mailbox& box, const Caller& caller, std::pair<uint32_t, EngineChunk>* out);
  // The same without waiting: false when no chunk is queued.
  bool TryNext(Mailbox& box, std::pair<uint32_t, EngineChunk>* out);
  // Scores text (tokenized by the served model) or ids for the watermark with the server's key.
  absl::StatusOr<WatermarkDetection> Detect(const std::string& text,
                                            const std::vector<int32_t>& ids);
  const WatermarkConfig& watermark() const { return watermark_; }
  // The constraint masks of a request's response_format (compiled and cached per schema);
  // null when it sets none. INVALID_ARGUMENT names the field and the schema path.
  absl::StatusOr<std::shared_ptr<SchemaMasks>> Masks(const v1::ResponseFormat& format,
                                                     const Engine& engine);
  // Counts a finished sequence (from its final chunk).
  void Record(const EngineChunk& done);
  ServingGauges Gauges() const;
  ServingMetrics& metrics() { return metrics_; }
  const RequestLimits& limits() const { return limits_; }
  // The metrics outcome of a status: success, invalid_argument, resource_exhausted, ...
  static std::string Outcome(const absl::Status& status);

 private:
  const RequestLimits limits_;
  const TemplateSet templates_;
  const std::unique_ptr<TokenFile> tokens_;
  const bool pii_filter_;
  const PiiScrubber scrubber_;
  std::unique_ptr<NgramIndex> copy_index_;  // null: no guard
  int64_t max_copy_tokens_ = 0;
  void GuardCopies(Mailbox& box, uint32_t index, EngineChunk& chunk);
  // The copy guard and the PII filter on a chunk taken from the box (the request's thread).
  void Deliver(Mailbox& box, std::pair<uint32_t, EngineChunk>* item);
  bool Watermarks(const v1::GenerateRequest& req) const;
  const WatermarkConfig watermark_;
  const std::set<std::string> watermark_tasks_;
  std::mutex masks_mu_;
  std::shared_ptr<const VocabularyTrie> vocabulary_;  // guarded by masks_mu_; built on first use
  std::map<std::string, std::shared_ptr<SchemaMasks>> masks_;  // guarded by masks_mu_
  std::unique_ptr<Engine> engine_;  // written once by Publish, before live_ publishes it
  std::atomic<Engine*> live_{nullptr};
  std::atomic<bool> draining_{false};
  ServingMetrics metrics_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_FRONTEND_H_
