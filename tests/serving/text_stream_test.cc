// The text stream of a sequence: stop sequences across token boundaries, held back only while
// they may still complete; whole UTF-8 characters only; everything out on the last token.
#include "serving/text_stream.h"

#include <gtest/gtest.h>

#include <random>

namespace copyforge {
namespace {

// Streams `pieces`; returns what was sent and whether a stop sequence ended it.
std::pair<std::string, bool> StreamAll(TextStream& s, const std::vector<std::string>& pieces) {
  std::string sent;
  for (size_t i = 0; i < pieces.size(); ++i) {
    TextStream::Update u = s.Append(pieces[i], i + 1 == pieces.size());
    sent += u.text;
    if (u.stopped) return {sent, true};
  }
  return {sent, false};
}

TEST(TextStream, StopSequencesAcrossTokensAndHeldBackOnlyWhileTheyMayComplete) {
  TextStream s({"END", "\n\n"});
  // The last max-stop-length - 1 bytes wait: they may begin a stop sequence.
  EXPECT_EQ(s.Append("Hello E", false).text, "Hello");
  EXPECT_EQ(s.Append("N", false).text, " ");
  TextStream::Update u = s.Append("D and more", false);
  EXPECT_TRUE(u.stopped);
  EXPECT_EQ(u.text, "");  // never the stop sequence or anything after it
  TextStream t({"END"});
  EXPECT_EQ(StreamAll(t, {"EN", "TER", "!"}), std::make_pair(std::string("ENTER!"), false));
  TextStream blank({"\n\n"});
  EXPECT_EQ(StreamAll(blank, {"a\n", "\nb"}), std::make_pair(std::string("a"), true));
}

TEST(TextStream, WholeCharactersOnlyAndAnySplitSendsTheSame) {
  const std::string text =
      "Caf\xC3\xA9 \xE2\x82\xAC"
      "5 \xF0\x9F\x98\x80 ok STOP tail";
  std::mt19937 rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    TextStream s({"STOP"});
    std::string sent;
    bool stopped = false;
    for (size_t at = 0; at < text.size() && !stopped;) {
      const size_t n = 1 + rng() % 4;
      TextStream::Update u = s.Append(text.substr(at, n), at + n >= text.size());
      at += n;
      // Every piece sent is whole characters: none ends inside one.
      EXPECT_EQ(u.text.find("\xEF\xBF\xBD"), std::string::npos) << trial;
      sent += u.text;
      stopped = u.stopped;
    }
    EXPECT_TRUE(stopped);
    EXPECT_EQ(sent,
              "Caf\xC3\xA9 \xE2\x82\xAC"
              "5 \xF0\x9F\x98\x80 ok ");
  }
  // Bytes that never form a character are replaced when they go out.
  TextStream bad;
  EXPECT_EQ(bad.Append("a\xC3", false).text, "a");
  EXPECT_EQ(bad.Append("", true).text, "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace copyforge
