// The GPT-2 pre-tokenizer: splits text into the pieces that BPE encodes one at a time.
//
// It is a hand-written scanner equivalent to the regular expression
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// evaluated leftmost-first as GPT-2's encoder (and tiktoken's "gpt2") evaluate it.
// A byte that is not part of well-formed UTF-8 counts as one "other" character, so every input
// splits into pieces that concatenate back to it exactly.
#ifndef COPYFORGE_TRAINER_TOKENIZER_PRETOKENIZER_H_
#define COPYFORGE_TRAINER_TOKENIZER_PRETOKENIZER_H_

#include <string_view>

#include "trainer/tokenizer/unicode.h"

namespace copyforge {
namespace pretokenizer_internal {

// Class of the character at p and its length in bytes.
inline CharClass ClassAt(const char* p, const char* end, size_t* len) {
  const auto b = static_cast<unsigned char>(*p);
  if (b < 0x80) {
    *len = 1;
    if ((b | 0x20) >= 'a' && (b | 0x20) <= 'z') return CharClass::kLetter;
    if (b >= '0' && b <= '9') return CharClass::kNumber;
    if (b == ' ' || (b >= 0x09 && b <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  char32_t cp;
  *len = DecodeUtf8(p, end, &cp);
  return Classify(cp);
}

// End of the run of characters of class `cls` starting at p.
inline const char* RunEnd(const char* p, const char* end, CharClass cls) {
  size_t len;
  while (p < end && ClassAt(p, end, &len) == cls) p += len;
  return p;
}

// Length of a contraction ('s 't 're 've 'm 'll 'd) at p, or 0.
inline size_t ContractionLength(const char* p, const char* end) {
  if (end - p < 2) return 0;
  const char a = p[1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (end - p < 3) return 0;
  const char b = p[2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

}  // namespace pretokenizer_internal

// Calls fn(std::string_view piece) for each piece of `text`, in order.
template <typename Fn>
void SplitGpt2(std::string_view text, Fn&& fn) {
  using pretokenizer_internal::ClassAt;
  using pretokenizer_internal::RunEnd;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char* start = p;
    if (*p == '\'') {
      if (size_t n = pretokenizer_internal::ContractionLength(p, end)) {
        fn(std::string_view(p, n));
        p += n;
        continue;
      }
    }
    size_t len;
    CharClass cls = ClassAt(p, end, &len);
    if (*p == ' ' && p + 1 < end) {
      size_t next_len;
      CharClass next = ClassAt(p + 1, end, &next_len);
      if (next != CharClass::kSpace) {
        p = RunEnd(p + 1 + next_len, end, next);
        fn(std::string_view(start, static_cast<size_t>(p - start)));
        continue;
      }
    }
    if (cls != CharClass::kSpace) {
      p = RunEnd(p + len, end, cls);
      fn(std::string_view(start, static_cast<size_t>(p - start)));
      continue;
    }
    // A whitespace run. Followed by non-space, its last character is left for the next piece
    // (\s+(?!\S) backtracks by one), unless the run is a single character (\s+ takes it).
    const char* last = p;
    const char* q = p + len;
    while (q < end) {
      size_t l;
      if (ClassAt(q, end, &l) != CharClass::kSpace) break;
      last = q;
      q += l;
    }
    if (q < end && last != start) q = last;
    fn(std::string_view(start, static_cast<size_t>(q - start)));
    p = q;
  }
}

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TOKENIZER_PRETOKENIZER_H_
