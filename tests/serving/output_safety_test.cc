// What the front end does to output before it leaves: the PII filter (streamed in any pieces,
// what is sent equals scrubbing the whole text) and the regurgitation guard.
#include "serving/pii_stream.h"

#include <gtest/gtest.h>

#include <random>

#include "serving/frontend.h"
#include "tests/test_util.h"
#include "trainer/data/ngram_index.h"

namespace copyforge {
namespace {

std::string ScrubWhole(const PiiScrubber& s, std::string text) {
  EXPECT_TRUE(s.Scrub(&text, {}).ok());
  return text;
}

TEST(PiiStreamFilter, AnySplitSendsWhatScrubbingTheWholeTextGives) {
  PiiScrubber scrubber;
  std::string text =
      "Great lamp, bright and sturdy. Questions? Mail jane.doe@example.com or call (555) "
      "123-4567, details at https://shop.example.net/lamps today. ";
  for (int i = 0; i < 4; ++i) text += text;  // long enough that text flows before the end
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    PiiStreamFilter f(&scrubber);
    std::string sent;
    size_t sent_before_end = 0;
    for (size_t at = 0; at < text.size();) {
      const size_t n = 1 + rng() % 9;
      auto out = f.Push(text.substr(at, n));
      ASSERT_TRUE(out.ok());
      sent += *out;
      at += n;
      EXPECT_EQ(sent.find("example.com"), std::string::npos);
      EXPECT_EQ(sent.find("123-4567"), std::string::npos);
    }
    sent_before_end = sent.size();
    auto rest = f.Finish();
    ASSERT_TRUE(rest.ok());
    sent += *rest;
    EXPECT_EQ(sent, ScrubWhole(scrubber, text));
    EXPECT_GT(sent_before_end, sent.size() / 2);  // held back only near the end
    EXPECT_EQ(f.replacements(), 3 * 16);
  }
}

TEST(PiiStreamFilter, AFailedScrubWithholdsTheRest) {
  PiiScrubber strict(1);  // a match budget nothing fits in: every scrub fails
  PiiStreamFilter f(&strict);
  std::string long_text(300, 'a');
  for (int i = 0; i < 40; ++i) long_text += " word";
  auto out = f.Push(long_text);
  EXPECT_FALSE(out.ok());
  EXPECT_TRUE(f.failed());
  EXPECT_FALSE(f.Push("more").ok());
  EXPECT_FALSE(f.Finish().ok());
}

// Frontend::Next applies the filter per sequence: the final chunk carries the scrubbed rest.
TEST(PiiStreamFilter, FrontendNextScrubsEverySequence) {
  auto templates = TemplateSet::Default();
  ASSERT_TRUE(templates.ok());
  Frontend front(FrontendOptions{}, *std::move(templates), nullptr);
  PiiScrubber scrubber;
  Mailbox box;
  box.scrubber = &scrubber;
  EngineChunk a, b, end;
  a.text = "write to bob";
  b.text = "@example.org now";
  end.done = true;
  for (uint32_t seq : {0u, 1u}) {
    box.chunks.emplace_back(seq, a);
    box.chunks.emplace_back(seq, b);
    box.chunks.emplace_back(seq, end);
  }
  std::map<uint32_t, std::string> text;
  for (int i = 0; i < 6; ++i) {
    std::pair<uint32_t, EngineChunk> item;
    front.Next(box, Caller{}, &item);
    text[item.first] += item.second.text;
    EXPECT_EQ(item.second.text.find("bob"), std::string::npos);
  }
  EXPECT_EQ(text[0], "write to [email] now");
  EXPECT_EQ(text[1], text[0]);
  EXPECT_NE(front.metrics().Render({}).find("copyforge_output_pii_replacements_total 2"),
            std::string::npos);
}

// The regurgitation guard: a run copied from the training split is measured on the final chunk;
// past --max-copy-tokens the sequence is cut (the engine's CANCELLED becomes COPY_LIMIT).
TEST(CopyGuard, MeasuresCopiedRunsAndCutsPastTheLimit) {
  testing::TempDir tmp;
  std::vector<int32_t> training;
  for (int32_t id = 100; id < 140; ++id) training.push_back(id);
  NgramIndexBuilder builder(8);
  builder.Add(training);
  ASSERT_TRUE(builder.Write(tmp.File("ngrams.bin")).ok());
  auto templates = TemplateSet::Default();
  ASSERT_TRUE(templates.ok());
  FrontendOptions options;
  options.pii_filter = false;
  options.copy_index = tmp.File("ngrams.bin");
  options.max_copy_tokens = 12;
  auto front = Frontend::Create(options, *std::move(templates), nullptr);
  ASSERT_TRUE(front.ok()) << front.status();
  Mailbox box;
  for (int c = 0; c < 4; ++c) {  // sequence 0 copies 16 tokens, sequence 1 copies nothing
    EngineChunk copied, fresh;
    for (int k = 0; k < 4; ++k) {
      copied.ids.push_back(100 + 4 * c + k);
      fresh.ids.push_back(7 + 4 * c + k);
    }
    box.chunks.emplace_back(0, copied);
    box.chunks.emplace_back(1, fresh);
  }
  EngineChunk cancelled, done;
  cancelled.done = done.done = true;
  cancelled.status = absl::CancelledError("cancelled");
  done.reason = FinishReason::kLength;
  box.chunks.emplace_back(0, cancelled);
  box.chunks.emplace_back(1, done);
  std::map<uint32_t, EngineChunk> last;
  for (int i = 0; i < 10; ++i) {
    std::pair<uint32_t, EngineChunk> item;
    (*front)->Next(box, Caller{}, &item);
    last[item.first] = item.second;
  }
  EXPECT_EQ(box.cut, std::set<uint32_t>{0});
  EXPECT_TRUE(last[0].status.ok());
  EXPECT_EQ(last[0].reason, FinishReason::kCopyLimit);
  EXPECT_EQ(last[0].longest_copy, 16);
  EXPECT_EQ(last[1].reason, FinishReason::kLength);
  EXPECT_EQ(last[1].longest_copy, 0);
  const std::string metrics = (*front)->metrics().Render({});
  EXPECT_NE(metrics.find("copyforge_copy_limit_cuts_total 1"), std::string::npos);
  // A limit without an index is refused; a bad index names its file.
  FrontendOptions no_index;
  no_index.max_copy_tokens = 5;
  EXPECT_FALSE(Frontend::Create(no_index, *TemplateSet::Default(), nullptr).ok());
  FrontendOptions bad;
  bad.copy_index = tmp.File("missing.bin");
  auto missing = Frontend::Create(bad, *TemplateSet::Default(), nullptr);
  EXPECT_NE(missing.status().message().find("missing.bin"), std::string::npos);
}

}  // namespace
}  // namespace copyforge
