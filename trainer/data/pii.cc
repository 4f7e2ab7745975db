#include "trainer/data/pii.h"

#include "absl/strings/str_cat.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdio>
#include <cstdlib>

namespace copyforge {
namespace {

struct Pattern {
  pcre2_code* code;
  std::string replacement;
};

pcre2_code* Compile(const char* pattern, uint32_t options = 0) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | options, &err, &offset, nullptr);
  if (code == nullptr) {
    std::fprintf(stderr, "pii: pattern %s does not compile at %zu\n", pattern,
                 static_cast<size_t>(offset));
    std::abort();  // a bug in this file, not bad input
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return code;
}

// Replaces every match of `code` in *text; returns how many, or the PCRE2 error (then *text is
// unchanged and must not be used).
absl::StatusOr<int> Substitute(const pcre2_code* code, pcre2_match_context* context,
                               const std::string& replacement, std::string* text) {
  if (text->empty()) return 0;
  std::string out(text->size() + 64, '\0');
  int rc = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    PCRE2_SIZE out_len = out.size();
    rc = pcre2_substitute(code, reinterpret_cast<PCRE2_SPTR>(text->data()), text->size(), 0,
                          PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_LITERAL |
                              PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
                          nullptr, context, reinterpret_cast<PCRE2_SPTR>(replacement.data()),
                          replacement.size(), reinterpret_cast<PCRE2_UCHAR*>(out.data()), &out_len);
    if (rc == PCRE2_ERROR_NOMEMORY) {
      out.resize(out_len);
      continue;
    }
    if (rc < 0) break;
    if (rc == 0) return 0;
    out.resize(out_len);
    text->swap(out);
    return rc;
  }
  PCRE2_UCHAR message[120];
  pcre2_get_error_message(rc, message, sizeof(message));
  return absl::InternalError(
      absl::StrCat("PII scrubbing failed: ", reinterpret_cast<const char*>(message)));
}

bool IsWordByte(char c) { return std::isalnum(static_cast<unsigned char>(c)) || (c & 0x80); }

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

// Replaces whole-word occurrences of `needle` (case-insensitive for ASCII). `lower` is the text
// lowercased, used to rule out most texts with one search.
int ReplaceLiteral(const std::string& needle, const std::string& lower, std::string* text) {
  if (needle.size() < 3) return 0;
  if (lower.find(AsciiLower(needle)) == std::string::npos) return 0;
  int count = 0;
  std::string out;
  size_t i = 0;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  };
  while (i < text->size()) {
    bool hit = i + needle.size() <= text->size() && (i == 0 || !IsWordByte((*text)[i - 1])) &&
               (i + needle.size() == text->size() || !IsWordByte((*text)[i + needle.size()]) ||
                !IsWordByte(needle.back()));
    for (size_t k = 0; hit && k < needle.size(); ++k) hit = eq((*text)[i + k], needle[k]);
    if (hit) {
      out += kPersonPlaceholder;
      i += needle.size();
      ++count;
    } else {
      out.push_back((*text)[i++]);
    }
  }
  if (count > 0) text->swap(out);
  return count;
}

}  // namespace

struct PiiScrubber::Impl {
  std::vector<Pattern> patterns;
  pcre2_match_context* context = nullptr;  // the match limit; read-only while matching
};

PiiScrubber::PiiScrubber(uint32_t match_limit) : impl_(std::make_unique<Impl>()) {
  impl_->context = pcre2_match_context_create(nullptr);
  if (impl_->context == nullptr) std::abort();  // out of memory at start-up
  pcre2_set_match_limit(impl_->context, match_limit);
  impl_->patterns = {
      {Compile(R"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"),
       kEmailPlaceholder},
      {Compile(R"((?:https?://|www\.)[^\s<>"']*[^\s<>"'.,;:!?)\]])", PCRE2_CASELESS),
       kUrlPlaceholder},
      {Compile(R"((?<![\w+])(?:\+?1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]\d{4}(?!\w))"),
       kPhonePlaceholder},
      {Compile(R"((?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?!\w))"), kPhonePlaceholder},
  };
}

PiiScrubber::~PiiScrubber() {
  for (Pattern& p : impl_->patterns) pcre2_code_free(p.code);
  pcre2_match_context_free(impl_->context);
}

absl::StatusOr<int> PiiScrubber::Scrub(std::string* text,
                                       const std::vector<std::string>& personal) const {
  int count = 0;
  for (const Pattern& p : impl_->patterns) {
    absl::StatusOr<int> n = Substitute(p.code, impl_->context, p.replacement, text);
    if (!n.ok()) return n.status();
    count += *n;
  }
  if (personal.empty()) return count;
  const std::string lower = AsciiLower(*text);
  for (const std::string& s : personal) {
    count += ReplaceLiteral(s, lower, text);
    const size_t space = s.find(' ');
    if (space != std::string::npos && space >= 3)
      count += ReplaceLiteral(s.substr(0, space), lower, text);
  }
  return count;
}

}  // namespace copyforge
