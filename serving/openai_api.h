// The OpenAI completions protocol on our request types: a POST /v1/completions body becomes one
// GenerateRequest per prompt (n becomes num_return_sequences), and engine results become
// OpenAI's response and stream-chunk objects. Our task inputs and controls ride as extra body
// fields (product_description, review, blog_post, top_k, repetition_penalty, watermark);
// response_format takes OpenAI's json_schema form. Torch-free.
#ifndef COPYFORGE_SERVING_OPENAI_API_H_
#define COPYFORGE_SERVING_OPENAI_API_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "serving.pb.h"

namespace copyforge {

struct CompletionRequest {
  std::vector<v1::GenerateRequest> requests;  // one per prompt
  std::vector<std::string> echo_text;         // the prompt text of each, for `echo`
  uint32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;
  int logprobs = -1;  // -1: none; else how many alternatives were asked for (0-5)
};

// A bad body: the HTTP status, OpenAI's error type and the offending field (`param`).
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
  nlohmann::ordered_json ToJson() const;
};

// An admission or engine refusal as OpenAI's error: 400 (naming the field the message starts
// with), 401, 408, 429 (queue full), 503 (loading or draining), else 500.
ApiError ErrorFromStatus(const absl::Status& status);

// Parses a completions body; `model` is the served model's id (a request may name it or omit
// it). Unknown fields are errors, so a misspelt parameter is never silently ignored.
absl::StatusOr<CompletionRequest> ParseCompletionRequest(const std::string& body,
                                                         const std::string& model, ApiError* error);

// One choice of a response, as the engine finished it.
struct ChoiceResult {
  std::string text;
  std::vector<std::string> tokens;  // for logprobs
  std::vector<float> logprobs;
  std::string finish_reason;  // "stop", "length" or "copy_limit"
  int64_t longest_copy = -1;  // the regurgitation guard's measure (-1: no copy index)
  bool watermarked = false;
};

// A call's token counts; cached_tokens: prompt tokens taken from the prefix cache.
struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};
// OpenAI's usage object, with prompt_tokens_details.cached_tokens.
nlohmann::ordered_json UsageJson(const Usage& usage);

nlohmann::ordered_json CompletionResponse(const std::string& id, int64_t created,
                                          const std::string& model,
                                          const std::vector<ChoiceResult>& choices,
                                          const Usage& usage, bool with_logprobs);
// One server-sent event's object: new text of choice `index` (finish_reason null until the
// choice's last chunk).
nlohmann::ordered_json CompletionChunk(const std::string& id, int64_t created,
                                       const std::string& model, uint32_t index,
                                       const std::string& text, const std::string& finish_reason);
// The logprobs object of a choice: each token, its logprob, itself as the only alternative,
// and its text offset.
nlohmann::ordered_json LogprobsJson(const std::vector<std::string>& tokens,
                                    const std::vector<float>& logprobs, size_t offset);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_OPENAI_API_H_
