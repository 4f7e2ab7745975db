#include "trainer/tokenizer/unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>

namespace copyforge {
namespace {

constexpr char32_t kMaxCodepoint = 0x10FFFF;
constexpr size_t kBlockBits = 8;
constexpr size_t kNumBlocks = (kMaxCodepoint + 1) >> kBlockBits;

bool IsWhiteSpace(char32_t cp) {
  // The Unicode White_Space property, which is what `\s` means in Unicode-aware regex engines.
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

CharClass AsciiClass(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::kLetter;
  if (c >= '0' && c <= '9') return CharClass::kNumber;
  if (IsWhiteSpace(c)) return CharClass::kSpace;
  return CharClass::kOther;
}

// Lazily filled per-block classification built from PCRE2's Unicode tables.
class ClassTable {
 public:
  ClassTable() {
    int err = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>("(\\p{L})|(\\p{N})"), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_ANCHORED, &err, &offset, nullptr);
    match_ = pcre2_match_data_create_from_pattern(code_, nullptr);
  }
  ~ClassTable() {
    pcre2_match_data_free(match_);
    pcre2_code_free(code_);
  }

  CharClass Get(char32_t cp) {
    const size_t block = cp >> kBlockBits;
    if (!ready_[block].load(std::memory_order_acquire)) Fill(block);
    return classes_[cp];
  }

 private:
  void Fill(size_t block) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_[block].load(std::memory_order_relaxed)) return;
    std::string utf8;
    for (char32_t cp = block << kBlockBits; cp < ((block + 1) << kBlockBits); ++cp) {
      CharClass c = CharClass::kOther;
      if (IsWhiteSpace(cp)) {
        c = CharClass::kSpace;
      } else if (cp < 0xD800 || cp > 0xDFFF) {
        utf8.clear();
        AppendUtf8(cp, &utf8);
        int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(utf8.data()), utf8.size(), 0,
                             PCRE2_NO_UTF_CHECK, match_, nullptr);
        if (rc == 2) c = CharClass::kLetter;
        if (rc == 3) c = CharClass::kNumber;
      }
      classes_[cp] = c;
    }
    ready_[block].store(true, std::memory_order_release);
  }

  std::mutex mu_;
  pcre2_code* code_ = nullptr;
  pcre2_match_data* match_ = nullptr;  // guarded by mu_
  std::array<std::atomic<bool>, kNumBlocks> ready_{};
  std::unique_ptr<CharClass[]> classes_{new CharClass[kMaxCodepoint + 1]};
};

ClassTable& Table() {
  static ClassTable* table = new ClassTable();  // never destroyed: used from any thread at exit
  return *table;
}

}  // namespace

size_t DecodeUtf8(const char* p, const char* end, char32_t* cp) {
  const auto* s = reinterpret_cast<const unsigned char*>(p);
  const size_t avail = static_cast<size_t>(end - p);
  const unsigned char b0 = s[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  char32_t value;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, value = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, value = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, value = b0 & 0x07, min = 0x10000;
  } else {
    *cp = kInvalidCodepoint;
    return 1;
  }
  if (avail < len) {
    *cp = kInvalidCodepoint;
    return 1;
  }
  for (size_t i = 1; i < len; ++i) {
    if ((s[i] & 0xC0) != 0x80) {
      *cp = kInvalidCodepoint;
      return 1;
    }
    value = (value << 6) | (s[i] & 0x3F);
  }
  if (value < min || value > kMaxCodepoint || (value >= 0xD800 && value <= 0xDFFF)) {
    *cp = kInvalidCodepoint;
    return 1;
  }
  *cp = value;
  return len;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

CharClass Classify(char32_t cp) {
  if (cp < 0x80) return AsciiClass(cp);
  if (cp > kMaxCodepoint) return CharClass::kOther;
  return Table().Get(cp);
}

bool IsValidUtf8(std::string_view s) {
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    char32_t cp;
    p += DecodeUtf8(p, end, &cp);
    if (cp == kInvalidCodepoint) return false;
  }
  return true;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Step back over at most three continuation bytes to the last lead byte.
  size_t i = s.size();
  size_t back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++back;
  }
  if (i == 0) return s.size();
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  const size_t need = lead < 0x80         ? 1
                      : (lead >> 5) == 6  ? 2
                      : (lead >> 4) == 14 ? 3
                      : (lead >> 3) == 30 ? 4
                                          : 1;
  return back + 1 >= need ? s.size() : i - 1;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    char32_t cp;
    const size_t n = DecodeUtf8(p, end, &cp);
    if (cp == kInvalidCodepoint) {
      out += "\xEF\xBF\xBD";
    } else {
      out.append(p, n);
    }
    p += n;
  }
  return out;
}

}  // namespace copyforge
