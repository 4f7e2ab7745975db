// The output PII filter: streamed in any pieces, what is sent equals scrubbing the whole text,
// and no piece of an address is sent before it is replaced.
#include "serving/pii_stream.h"

#include <gtest/gtest.h>

#include <random>

#include "serving/frontend.h"

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
  Frontend front(RequestLimits{}, *std::move(templates), nullptr, /*pii_filter=*/true);
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

}  // namespace
}  // namespace copyforge
