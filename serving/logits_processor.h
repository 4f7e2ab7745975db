// A per-sequence hook into sampling: it shapes each step's logits before the draw (a grammar
// mask, a watermark bias) and hears which token was taken. The engine calls both on its thread,
// in order, once per generated token; every sequence has its own processors, so what they do to
// a row never depends on the rest of the batch.
#ifndef COPYFORGE_SERVING_LOGITS_PROCESSOR_H_
#define COPYFORGE_SERVING_LOGITS_PROCESSOR_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace copyforge {

class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  // `logits`: the next token's float logits over `vocab` ids, changed in place. An error fails
  // the sequence (nothing is sampled from logits a safety step could not shape).
  virtual absl::Status Process(float* logits, int64_t vocab) = 0;
  // The token the sequence took (end of text included).
  virtual absl::Status Accept(int32_t token) = 0;
};

// Several processors applied in order (a grammar mask first, then a watermark bias).
class LogitsProcessorChain : public LogitsProcessor {
 public:
  void Add(std::unique_ptr<LogitsProcessor> p) { chain_.push_back(std::move(p)); }
  bool empty() const { return chain_.empty(); }
  absl::Status Process(float* logits, int64_t vocab) override {
    for (auto& p : chain_) {
      absl::Status s = p->Process(logits, vocab);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  absl::Status Accept(int32_t token) override {
    for (auto& p : chain_) {
      absl::Status s = p->Accept(token);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<LogitsProcessor>> chain_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_LOGITS_PROCESSOR_H_
