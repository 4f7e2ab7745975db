#include "serving/step_plan.h"

#include <algorithm>

namespace copyforge {

std::vector<ModelPass> PlanStep(const std::vector<StepCandidate>& running, int64_t prefill_chunk) {
  int64_t prefill = -1;
  for (size_t i = 0; i < running.size(); ++i) {
    if (running[i].prefilling) {
      prefill = static_cast<int64_t>(i);
      break;
    }
  }
  std::vector<ModelPass> passes;
  auto pass_of = [&](const void* model) -> ModelPass& {
    for (ModelPass& p : passes) {
      if (p.model == model) return p;
    }
    passes.emplace_back();
    passes.back().model = model;
    return passes.back();
  };
  if (prefill >= 0) {
    const StepCandidate& c = running[prefill];
    ModelPass& p = pass_of(c.model);
    p.prefill = prefill;
    p.chunk_start = c.prefilled;
    p.chunk_tokens = std::min(std::max<int64_t>(1, prefill_chunk), c.prompt_tokens - c.prefilled);
    p.chunk_ends_prompt = c.prefilled + p.chunk_tokens == c.prompt_tokens;
  }
  for (size_t i = 0; i < running.size(); ++i) {
    if (running[i].decoding) pass_of(running[i].model).decode.push_back(i);
  }
  return passes;
}

}  // namespace copyforge
