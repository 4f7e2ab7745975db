// Our GPT-2 encoder against tiktoken's "gpt2" encoding (npm, run by node) on thousands of
// generated strings: every id must match.
#include <gtest/gtest.h>

#include <random>

#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "trainer/common/file_util.h"
#include "trainer/tokenizer/tokenizer.h"
#include "trainer/tokenizer/unicode.h"

namespace copyforge {
namespace {

const std::vector<std::string>& Fragments() {
  static const std::vector<std::string> f = {"Great",
                                             " product",
                                             "it's",
                                             "It'S",
                                             "we'll",
                                             "they've",
                                             "I'm",
                                             "you'd",
                                             "don't",
                                             "'re",
                                             "''",
                                             "'",
                                             " '",
                                             "$19.99",
                                             "1,299",
                                             "3.5mm",
                                             "100%",
                                             "2x",
                                             "x2",
                                             "12345678901",
                                             "0.5",
                                             "https://example.com/item?id=42&ref=abc",
                                             "www.shop.co.uk",
                                             "user@example.com",
                                             "👍",
                                             "👍🏽",
                                             "🎉🎉",
                                             "👨‍👩‍👧",
                                             "❤️",
                                             "★★★★☆",
                                             "中文评论",
                                             "日本語のレビュー",
                                             "한국어 리뷰",
                                             "café",
                                             "naïve",
                                             "Ünïcödé",
                                             "Ελληνικά",
                                             "русский отзыв",
                                             "عربي",
                                             "עברית",
                                             "हिन्दी",
                                             "ภาษาไทย",
                                             "e\u0301",
                                             "٣٤٥",
                                             "²³",
                                             "½",
                                             "Ⅻ",
                                             "ﬁ",
                                             "\u200b",
                                             "\u00a0",
                                             "\u3000",
                                             "\u2009",
                                             "\u2028",
                                             " ",
                                             "  ",
                                             "   ",
                                             "\t",
                                             "\t\t",
                                             "\n",
                                             "\n\n",
                                             "\r\n",
                                             " \n ",
                                             "\n \n",
                                             "\x0b",
                                             "\xc2\x85",
                                             "<|endoftext|>",
                                             "<|endoftext",
                                             "|>",
                                             "!!!",
                                             "...",
                                             "?!",
                                             "—",
                                             "“quoted”",
                                             "(5/5)",
                                             "#1",
                                             "abc123def",
                                             "A+",
                                             "C++",
                                             "--",
                                             "==",
                                             "::",
                                             "@@",
                                             "\\n",
                                             "<br />",
                                             "&amp;",
                                             "<b>bold</b>"};
  return f;
}

std::string RandomString(std::mt19937& rng) {
  std::string s;
  const auto& f = Fragments();
  switch (rng() % 4) {
    case 0:
    case 1: {  // fragments joined by random separators
      const int n = 1 + static_cast<int>(rng() % 12);
      for (int i = 0; i < n; ++i) {
        s += f[rng() % f.size()];
        static const char* seps[] = {"", " ", "  ", "\n", "\t", " \n", ""};
        s += seps[rng() % 7];
      }
      break;
    }
    case 2: {  // random code points from interesting ranges
      static const std::pair<char32_t, char32_t> ranges[] = {
          {0x20, 0x7E},     {0x09, 0x0D},       {0xA0, 0x24F},     {0x300, 0x36F},
          {0x370, 0x3FF},   {0x400, 0x4FF},     {0x590, 0x6FF},    {0x900, 0x97F},
          {0x2000, 0x206F}, {0x3000, 0x30FF},   {0x4E00, 0x4FFF},  {0xAC00, 0xAD00},
          {0xFF00, 0xFFEF}, {0x1F300, 0x1F6FF}, {0x1D400, 0x1D7FF}};
      const int n = 1 + static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) {
        const auto& r = ranges[rng() % std::size(ranges)];
        AppendUtf8(r.first + rng() % (r.second - r.first + 1), &s);
      }
      break;
    }
    default: {  // long runs that stress BPE on long pieces
      static const std::string units[] = {"a", "ab", " ", "=", "\n", "9", "ä", "🙂", "-_"};
      const std::string& u = units[rng() % std::size(units)];
      const int n = 1 + static_cast<int>(rng() % 400);
      for (int i = 0; i < n; ++i) s += u;
      if (rng() % 2) s += " tail";
      break;
    }
  }
  return s;
}

TEST(TokenizerParity, MatchesTiktokenGpt2) {
  const std::string npm = testing::Env("COPYFORGE_NPM_DIR");
  const std::string script =
      testing::Env("COPYFORGE_SOURCE_DIR") + "/tests/fixtures/tiktoken_encode.js";
  auto tokenizer = Tokenizer::Load(testing::Env("COPYFORGE_GPT2_TOKENIZER"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();

  std::mt19937 rng(20261128);
  std::vector<std::string> texts;
  for (const auto& f : Fragments()) texts.push_back(f);
  while (texts.size() < 2500) texts.push_back(RandomString(rng));

  testing::TempDir tmp;
  testing::WriteTestFile(tmp.File("in.json"), nlohmann::json(texts).dump());
  auto r = testing::RunCommand("NODE_PATH=" + npm + "/node_modules node " + script + " " +
                               tmp.File("in.json") + " " + tmp.File("out.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = ReadFile(tmp.File("out.json"));
  ASSERT_TRUE(out.ok());
  nlohmann::json expected = nlohmann::json::parse(*out);
  ASSERT_EQ(expected.size(), texts.size());
  int mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> want = expected[i].get<std::vector<int32_t>>();
    std::vector<int32_t> got = (*tokenizer)->Encode(texts[i]);
    if (got != want && ++mismatches <= 5) {
      ADD_FAILURE() << "text #" << i << " " << nlohmann::json(texts[i]).dump()
                    << "\n  ours:     " << nlohmann::json(got).dump()
                    << "\n  tiktoken: " << nlohmann::json(want).dump();
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << texts.size() << " strings";
}

}  // namespace
}  // namespace copyforge
