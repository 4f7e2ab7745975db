#include "trainer/tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace copyforge {
namespace {

std::vector<std::string> Split(std::string_view text) {
  std::vector<std::string> out;
  SplitGpt2(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

using V = std::vector<std::string>;

TEST(SplitGpt2, WordsAndLeadingSpaces) {
  EXPECT_EQ(Split("Hello world, it's great!"),
            (V{"Hello", " world", ",", " it", "'s", " great", "!"}));
}

TEST(SplitGpt2, Contractions) {
  EXPECT_EQ(Split("we'll they've I'd you're 'S"),
            (V{"we", "'ll", " they", "'ve", " I", "'d", " you", "'re", " '", "S"}));
}

TEST(SplitGpt2, WhitespaceRunsLeaveTheLastSpaceToTheNextWord) {
  EXPECT_EQ(Split("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(Split("a\n\nb"), (V{"a", "\n", "\n", "b"}));
  EXPECT_EQ(Split("a \t b"), (V{"a", " \t", " b"}));
  EXPECT_EQ(Split("end   "), (V{"end", "   "}));
  EXPECT_EQ(Split("x\t\ty"), (V{"x", "\t", "\t", "y"}));
}

TEST(SplitGpt2, NumbersPunctuationAndUnicode) {
  EXPECT_EQ(Split("$19.99 for 2x"), (V{"$", "19", ".", "99", " for", " 2", "x"}));
  EXPECT_EQ(Split("café 中文!!"), (V{"café", " 中文", "!!"}));
  EXPECT_EQ(Split(" 😀😀"), (V{" 😀😀"}));
}

TEST(SplitGpt2, InvalidBytesArePunctuationAndNothingIsLost) {
  const std::string text = "ab\xFF\xFE cd\x80";
  V pieces = Split(text);
  EXPECT_EQ(pieces, (V{"ab", "\xFF\xFE", " cd", "\x80"}));
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, text);
}

}  // namespace
}  // namespace copyforge
