// Step planning: every decoding sequence advances, the oldest prefilling prompt sends its next
// chunk in the same pass, and sequences on a replaced model get a pass of their own.
#include "serving/step_plan.h"

#include <gtest/gtest.h>

namespace copyforge {
namespace {

TEST(StepPlan, DecodesEveryoneAndChunksTheOldestPrompt) {
  int a = 0, b = 0;  // two models (a hot swap in progress)
  std::vector<StepCandidate> running = {
      {&a, true, false, 5, 5},      // decoding
      {&a, false, true, 600, 256},  // prefilling: its second chunk goes in
      {&b, true, false, 3, 3},      // decoding on the new model
      {&b, false, true, 10, 0},     // waits for the older prompt
      {&a, false, false, 4, 4},     // neither (finished)
  };
  const auto passes = PlanStep(running, 256);
  ASSERT_EQ(passes.size(), 2u);
  EXPECT_EQ(passes[0].model, &a);  // the prefilling sequence's model first
  EXPECT_EQ(passes[0].decode, std::vector<size_t>({0}));
  EXPECT_EQ(passes[0].prefill, 1);
  EXPECT_EQ(passes[0].chunk_start, 256);
  EXPECT_EQ(passes[0].chunk_tokens, 256);
  EXPECT_FALSE(passes[0].chunk_ends_prompt);
  EXPECT_EQ(passes[1].model, &b);
  EXPECT_EQ(passes[1].decode, std::vector<size_t>({2}));
  EXPECT_EQ(passes[1].prefill, -1);

  running[1].prefilled = 512;  // the last, shorter chunk completes the prompt
  const auto last = PlanStep(running, 256);
  EXPECT_EQ(last[0].chunk_tokens, 88);
  EXPECT_TRUE(last[0].chunk_ends_prompt);
  EXPECT_TRUE(PlanStep({}, 256).empty());
  // A chunk size below one still makes progress.
  EXPECT_EQ(PlanStep({{&a, false, true, 3, 0}}, 0)[0].chunk_tokens, 1);
}

}  // namespace
}  // namespace copyforge
