// Step planning for continuous batching: which sequences one engine step runs. Every decoding
// sequence advances by one token, and the next chunk (at most prefill_chunk tokens) of the
// oldest prompt still prefilling goes into the same forward pass, so a long prompt neither
// stalls the running sequences nor costs a second pass over the weights. Sequences are grouped
// by the model they started on (more than one only while requests begun before a hot swap
// finish): one pass per model, the prefilling sequence's model first. Torch-free.
#ifndef COPYFORGE_SERVING_STEP_PLAN_H_
#define COPYFORGE_SERVING_STEP_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace copyforge {

struct StepCandidate {
  const void* model = nullptr;  // the model the sequence runs on
  bool decoding = false;        // a sampled token waits to go into the cache
  bool prefilling = false;      // its prompt is still going in
  int64_t prompt_tokens = 0, prefilled = 0;
};

struct ModelPass {
  const void* model = nullptr;
  std::vector<size_t> decode;  // candidates advancing one token, in running order
  int64_t prefill = -1;        // the candidate whose prompt chunk goes in (-1: none)
  int64_t chunk_start = 0, chunk_tokens = 0;
  bool chunk_ends_prompt = false;  // the chunk completes the prompt: its last row is sampled
};

std::vector<ModelPass> PlanStep(const std::vector<StepCandidate>& running, int64_t prefill_chunk);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_STEP_PLAN_H_
