#include "trainer/tokenizer/unicode.h"

#include <gtest/gtest.h>

namespace copyforge {
namespace {

TEST(Utf8, DecodesWellFormedSequences) {
  const std::string s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  const char* p = s.data();
  const char* end = p + s.size();
  std::vector<char32_t> cps;
  while (p < end) {
    char32_t cp;
    p += DecodeUtf8(p, end, &cp);
    cps.push_back(cp);
  }
  EXPECT_EQ(cps, (std::vector<char32_t>{U'a', 0xE9, 0x4E2D, 0x1F600}));
}

TEST(Utf8, MalformedBytesConsumeOneByte) {
  for (const std::string bad :
       {"\x80", "\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF"}) {
    char32_t cp;
    EXPECT_EQ(DecodeUtf8(bad.data(), bad.data() + bad.size(), &cp), 1u) << bad.size();
    EXPECT_EQ(cp, kInvalidCodepoint);
  }
}

TEST(Utf8, EncodeDecodeRoundTrip) {
  for (char32_t cp : {0x24, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF}) {
    std::string s;
    AppendUtf8(cp, &s);
    char32_t back;
    EXPECT_EQ(DecodeUtf8(s.data(), s.data() + s.size(), &back), s.size());
    EXPECT_EQ(back, cp);
  }
}

TEST(Classify, MatchesUnicodeCategories) {
  EXPECT_EQ(Classify(U'x'), CharClass::kLetter);
  EXPECT_EQ(Classify(0xE9), CharClass::kLetter);    // é
  EXPECT_EQ(Classify(0x4E2D), CharClass::kLetter);  // 中 (Lo)
  EXPECT_EQ(Classify(0x02B0), CharClass::kLetter);  // ʰ (Lm)
  EXPECT_EQ(Classify(U'7'), CharClass::kNumber);
  EXPECT_EQ(Classify(0x0663), CharClass::kNumber);  // Arabic-Indic three (Nd)
  EXPECT_EQ(Classify(0x00B2), CharClass::kNumber);  // superscript two (No)
  EXPECT_EQ(Classify(0x2164), CharClass::kNumber);  // Roman numeral five (Nl)
  EXPECT_EQ(Classify(0x00A0), CharClass::kSpace);
  EXPECT_EQ(Classify(0x3000), CharClass::kSpace);
  EXPECT_EQ(Classify(0x200B), CharClass::kOther);   // zero width space is not White_Space
  EXPECT_EQ(Classify(0x0301), CharClass::kOther);   // combining acute accent (Mn)
  EXPECT_EQ(Classify(0x1F600), CharClass::kOther);  // emoji (So)
  EXPECT_EQ(Classify(kInvalidCodepoint), CharClass::kOther);
}

}  // namespace
}  // namespace copyforge

namespace copyforge {
namespace {

TEST(Utf8Helpers, ValidityPrefixAndSanitizing) {
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("ab\xFF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));  // truncated
  // A string cut inside "é" or the emoji keeps only the whole characters.
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC3"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC3\xA9"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(SanitizeUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
}

}  // namespace
}  // namespace copyforge
