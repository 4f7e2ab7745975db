// UTF-8 decoding and the character classes the GPT-2 pre-tokenizer distinguishes.
#ifndef COPYFORGE_TRAINER_TOKENIZER_UNICODE_H_
#define COPYFORGE_TRAINER_TOKENIZER_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace copyforge {

// \p{L}, \p{N}, Unicode White_Space (regex \s), and everything else.
enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// Returned by DecodeUtf8 for a byte that does not start a well-formed sequence.
inline constexpr char32_t kInvalidCodepoint = 0xFFFFFFFF;

// Decodes one code point at `p` (p < end). Returns the number of bytes consumed (1..4).
// Malformed input (bad lead byte, truncated or overlong sequence, surrogate, > U+10FFFF)
// consumes exactly one byte and yields kInvalidCodepoint.
size_t DecodeUtf8(const char* p, const char* end, char32_t* cp);

// Appends the UTF-8 encoding of `cp` (must be a valid scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// Whether every byte of `s` belongs to a well-formed sequence (as DecodeUtf8 judges it).
bool IsValidUtf8(std::string_view s);
// `s` with each malformed byte replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view s);
// The longest prefix of `s` that does not end inside a UTF-8 sequence (for streaming text that
// may stop in the middle of a character).
size_t CompleteUtf8Prefix(std::string_view s);

// Classifies a code point with the Unicode database of PCRE2 (General_Category L*, N*) and
// the White_Space property. kInvalidCodepoint classifies as kOther. Thread-safe; tables for a
// 256-code-point block are built on first use.
CharClass Classify(char32_t cp);

// Classify with the ASCII cases inline (the common case in hot loops).
inline CharClass ClassifyFast(char32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  return Classify(cp);
}

// DecodeUtf8 with the one-byte case inline.
inline size_t DecodeUtf8Fast(const char* p, const char* end, char32_t* cp) {
  if (static_cast<unsigned char>(*p) < 0x80) {
    *cp = static_cast<unsigned char>(*p);
    return 1;
  }
  return DecodeUtf8(p, end, cp);
}

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TOKENIZER_UNICODE_H_
