#include "trainer/data/text_clean.h"

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "trainer/tokenizer/unicode.h"

namespace copyforge {
namespace {

struct Entity {
  const char* name;
  char32_t cp;
};
constexpr Entity kEntities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},        {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},    {"ndash", 0x2013}, {"mdash", 0x2014},  {"lsquo", 0x2018}, {"rsquo", 0x2019},
    {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"hellip", 0x2026}, {"eacute", 0xE9},  {"egrave", 0xE8},
    {"uuml", 0xFC},    {"ouml", 0xF6},    {"auml", 0xE4},     {"deg", 0xB0},     {"reg", 0xAE},
    {"trade", 0x2122}, {"copy", 0xA9},    {"times", 0xD7},    {"frac12", 0xBD},  {"euro", 0x20AC},
    {"pound", 0xA3},   {"cent", 0xA2},    {"bull", 0x2022},   {"middot", 0xB7},  {"iexcl", 0xA1},
};

// Decodes an entity starting at text[i] == '&'; returns its length (0 if none) and the code point.
size_t DecodeEntity(std::string_view text, size_t i, char32_t* cp) {
  const size_t semi = text.find(';', i + 1);
  if (semi == std::string_view::npos || semi - i > 10 || semi == i + 1) return 0;
  std::string_view body = text.substr(i + 1, semi - i - 1);
  if (body[0] == '#') {
    const bool hex = body.size() > 1 && (body[1] == 'x' || body[1] == 'X');
    std::string digits(body.substr(hex ? 2 : 1));
    if (digits.empty()) return 0;
    char* end = nullptr;
    unsigned long v = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
    if (*end != '\0' || v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = static_cast<char32_t>(v);
    return semi - i + 1;
  }
  for (const Entity& e : kEntities) {
    if (body == e.name) {
      *cp = e.cp;
      return semi - i + 1;
    }
  }
  return 0;
}

bool IsBreakTag(std::string_view tag) {
  std::string lower;
  for (char c : tag.substr(0, 4))
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return lower.rfind("br", 0) == 0 || lower.rfind("/p", 0) == 0 || lower == "p" ||
         lower.rfind("p ", 0) == 0 || lower.rfind("li", 0) == 0;
}

}  // namespace

std::string CleanText(std::string_view text) {
  // Pass 1: tags and entities.
  std::string decoded;
  decoded.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '<') {
      const size_t close = text.find('>', i + 1);
      // Only something that looks like a tag (<br />, </p>, <b>, <a href=...>) is removed.
      if (close != std::string_view::npos && close - i < 200 && i + 1 < text.size() &&
          (std::isalpha(static_cast<unsigned char>(text[i + 1])) || text[i + 1] == '/')) {
        decoded += IsBreakTag(text.substr(i + 1, close - i - 1)) ? "\n" : " ";
        i = close + 1;
        continue;
      }
    } else if (c == '&') {
      char32_t cp;
      if (size_t n = DecodeEntity(text, i, &cp)) {
        AppendUtf8(cp, &decoded);
        i += n;
        continue;
      }
    }
    decoded.push_back(c);
    ++i;
  }
  // Pass 2: control characters, invalid bytes and whitespace.
  std::string out;
  out.reserve(decoded.size());
  int newlines = 0;
  bool space = false;
  const char* p = decoded.data();
  const char* end = p + decoded.size();
  while (p < end) {
    char32_t cp;
    const size_t len = DecodeUtf8Fast(p, end, &cp);
    const char* start = p;
    p += len;
    if (cp == kInvalidCodepoint) continue;
    if (cp == '\n' || cp == 0x2028 || cp == 0x2029) {
      ++newlines;
      space = false;
      continue;
    }
    if (cp == '\r') continue;
    if (cp == '\t' || ClassifyFast(cp) == CharClass::kSpace) {
      space = true;
      continue;
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0xFEFF || cp == 0x200B)
      continue;
    if (!out.empty()) {
      if (newlines > 0) {
        out.append(std::min(newlines, 2), '\n');
      } else if (space) {
        out.push_back(' ');
      }
    }
    newlines = 0;
    space = false;
    out.append(start, len);
  }
  return out;
}

std::string NormalizeForDedup(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool gap = false;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    char32_t cp;
    const char* start = p;
    p += DecodeUtf8Fast(p, end, &cp);
    CharClass c = ClassifyFast(cp);
    if (c == CharClass::kLetter || c == CharClass::kNumber) {
      if (gap && !out.empty()) out.push_back(' ');
      gap = false;
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
      } else {
        out.append(start, static_cast<size_t>(p - start));
      }
    } else {
      gap = true;
    }
  }
  return out;
}

int CountWords(std::string_view text) {
  int words = 0;
  bool in_word = false;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    char32_t cp;
    p += DecodeUtf8Fast(p, end, &cp);
    CharClass c = ClassifyFast(cp);
    const bool word_char = c == CharClass::kLetter || c == CharClass::kNumber || cp == '\'';
    if (word_char && !in_word) ++words;
    in_word = word_char;
  }
  return words;
}

double EnglishStopwordRatio(std::string_view text) {
  static const absl::flat_hash_set<std::string>* kStop = new absl::flat_hash_set<std::string>{
      "the",  "and",  "a",   "an",    "is",   "it", "to", "of",   "in",    "for",
      "this", "that", "was", "with",  "i",    "my", "on", "but",  "not",   "you",
      "are",  "have", "be",  "as",    "they", "so", "at", "very", "we",    "our",
      "its",  "all",  "one", "would", "from", "or", "if", "me",   "after", "than"};
  std::string norm = NormalizeForDedup(text);
  int words = 0, stop = 0;
  size_t start = 0;
  while (start < norm.size()) {
    size_t end = norm.find(' ', start);
    if (end == std::string::npos) end = norm.size();
    ++words;
    stop += kStop->contains(norm.substr(start, end - start));
    start = end + 1;
  }
  return words == 0 ? 0.0 : static_cast<double>(stop) / words;
}

}  // namespace copyforge
