// The generation engine behind `copyforge serve`: continuous batching over a slot-based KV cache.
// Requests wait in a bounded queue; between steps the engine admits a waiting request into a free
// slot of the preallocated KV pool when a slot and enough of the token budget are free. Each step
// is one forward pass over every running sequence's next token together with the next chunk of
// a prompt still being prefilled (straight into its slot). Finished, cancelled and expired
// sequences leave the batch at the next step and free their slot. Each sequence samples with its
// own generator and every row is computed as it would be alone, so a seed fixes its output
// whatever else is in the batch.
#ifndef COPYFORGE_SERVING_ENGINE_H_
#define COPYFORGE_SERVING_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "serving/logits_processor.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/model/sampler.h"

namespace copyforge {

struct EngineOptions {
  int max_batch = 16;             // KV cache slots = sequences decoded together
  int64_t max_prompt_tokens = 0;  // 0: n_positions - 1
  int64_t max_new_tokens = 512;   // the most a request may ask for
  int64_t default_max_new_tokens = 64;
  int max_queue = 64;  // waiting requests; more is RESOURCE_EXHAUSTED at once
  int64_t max_batch_tokens =
      0;  // KV budget: sum of prompt + max_new over running (0: slots x n_positions)
  int64_t prefill_chunk = 256;  // prompt tokens prefilled per step (long prompts take several)
  int threads = 0;              // intra-op threads (0: one per core)
  // Prefix cache (serving/prefix_cache.h): the keys and values of prompt prefixes are kept in
  // blocks of prefix_block_tokens, up to prefix_cache_tokens tokens in all (0: off; -1: four
  // times n_positions); a request whose prompt starts with cached blocks has them copied into
  // its slot and prefills only the rest.
  int64_t prefix_cache_tokens = -1;
  int64_t prefix_block_tokens = 16;
  // Weights and KV cache: "float32", "bfloat16", "int8" (weight-only int8 projections and LM
  // head, trainer/model/int8_linear.h; the rest and the KV cache in bfloat16 where the CPU has
  // avx512_bf16, else float32; CPU only), or "auto" (bfloat16 on a GPU or when the CPU has
  // avx512_bf16, float32 otherwise).
  std::string dtype = "auto";
  // Where the weights, the KV pool and sampling live: auto, cpu, cuda or cuda:N
  // (trainer/device/device.h); "auto" on a GPU serves bfloat16 under dtype auto.
  std::string device = "auto";
  // What the weights and the preallocated KV pool may take together, in GB; 0: 90% of the
  // machine's memory on the CPU (on a GPU, libtorch's allocation error is reported instead).
  // More is refused at start-up with the figures.
  double max_memory_gb = 0;
};

// kCopyLimit: the front end's regurgitation guard cut the sequence (serving/frontend.h).
enum class FinishReason { kNone, kLength, kEos, kStopSequence, kCopyLimit };

// What a request hears back, on the engine thread: text deltas (whole UTF-8 characters, stop
// sequences held back until they cannot match), then one final chunk with `done`.
struct EngineChunk {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  bool done = false;
  FinishReason reason = FinishReason::kNone;
  absl::Status status;     // not OK when the request was cancelled, expired or failed
  std::string checkpoint;  // the model that served it (set on the final chunk)
  int64_t checkpoint_step = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // of prompt_tokens, taken from the prefix cache
  // Set by the front end on the final chunk when a copy index is loaded: the longest run of
  // generated tokens found verbatim in the training split (-1: not measured).
  int64_t longest_copy = -1;
  double queue_s = 0, time_to_first_token_s = 0, total_s = 0;
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_new_tokens = 0;  // 0: the default
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool logprobs = false;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<bool()> cancelled;  // polled before every step
  std::function<void(const EngineChunk&)> on_chunk;
  // Shapes this sequence's logits before each draw (structured output, watermark); may be null.
  std::shared_ptr<LogitsProcessor> processor;
};

struct EngineStats {
  int running = 0, queued = 0, free_slots = 0;
  int64_t reserved_tokens = 0;
  int64_t steps = 0;
  int64_t prefix_cached_tokens = 0;  // tokens held by the prefix cache now
  int64_t prefix_hit_tokens = 0;     // prompt tokens taken from it so far
  int models = 1;  // more than one while requests started on a replaced model finish
  std::string checkpoint;
  int64_t checkpoint_step = 0;
};

class Engine {
 public:
  // Takes the loaded model and tokenizer; starts the engine thread.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(LoadedCheckpoint checkpoint,
                                                        const EngineOptions& options,
                                                        const std::string& name = "",
                                                        int64_t step = 0);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates against the limits (INVALID_ARGUMENT naming the limit) and queues the request
  // (RESOURCE_EXHAUSTED when the queue is full). On OK, on_chunk will be called until `done`.
  absl::Status Submit(EngineRequest request);
  EngineStats stats() const;
  // Serves `checkpoint` for requests admitted from the next step on; requests already running
  // finish on the model they started with. The configuration must equal the current one
  // (FAILED_PRECONDITION naming the difference otherwise) and it must carry a tokenizer.
  absl::Status Swap(LoadedCheckpoint checkpoint, const std::string& name, int64_t step);
  // Encodes with the current model's tokenizer (safe against a concurrent Swap).
  std::vector<int32_t> Encode(const std::string& text) const;
  // The bytes of one token (empty beyond the vocabulary); may be part of a UTF-8 character.
  std::string TokenText(int32_t id) const;
  // The bytes of every id of the model's vocabulary (config().vocab_size of them; empty beyond
  // the tokenizer's), read under one look at the current model.
  std::vector<std::string> TokenTexts() const;
  // The end-of-text id of the current model's tokenizer (-1: none).
  int32_t EosId() const;
  const Gpt2Config& config() const;
  const EngineOptions& options() const;
  // Stops admitting; running and queued requests finish with CANCELLED.
  void Stop();

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_ENGINE_H_
