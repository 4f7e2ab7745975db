// Per-request bounds of the TextGeneration API, checked before any text is tokenized, so one
// client cannot make the server do unbounded work for it (stop sequences are matched against
// every emitted byte; prompt text is tokenized on the RPC thread).
#ifndef COPYFORGE_SERVING_REQUEST_LIMITS_H_
#define COPYFORGE_SERVING_REQUEST_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "serving.pb.h"

namespace copyforge {

struct RequestLimits {
  int64_t max_prompt_bytes = 256 << 10;  // prompt text, task-input fields, Tokenize text
  int max_stop_sequences = 16;
  int64_t max_stop_bytes = 256;  // each stop sequence
  int64_t max_request_id_bytes = 256;
  uint32_t max_return_sequences = 16;  // also at most the server's KV slots
};

// INVALID_ARGUMENT naming the field and the limit, or OK. `slots` is the engine's max_batch.
absl::Status CheckGenerateRequest(const v1::GenerateRequest& request, const RequestLimits& limits,
                                  int slots);

// The text of a Tokenize request against max_prompt_bytes.
absl::Status CheckTokenizeRequest(const v1::TokenizeRequest& request, const RequestLimits& limits);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_REQUEST_LIMITS_H_
