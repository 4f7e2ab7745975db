#include "trainer/eval/task_metrics.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace copyforge {
namespace {

const absl::flat_hash_set<std::string>& Stopwords() {
  static const auto* words = new absl::flat_hash_set<std::string>{
      "a",    "an",  "the", "and", "or",   "of",   "for",  "with", "in",   "on",
      "to",   "by",  "at",  "is",  "it",   "this", "that", "from", "as",   "its",
      "your", "you", "our", "set", "pack", "new",  "one",  "two",  "three"};
  return *words;
}

// Opinion words of product and restaurant reviews.
const absl::flat_hash_set<std::string>& PositiveWords() {
  static const auto* words = new absl::flat_hash_set<std::string>{
      "good",      "great",       "excellent", "amazing",   "love",      "loved",    "loves",
      "perfect",   "best",        "awesome",   "fantastic", "wonderful", "nice",     "happy",
      "recommend", "recommended", "favorite",  "favourite", "delicious", "friendly", "comfortable",
      "sturdy",    "reliable",    "works",     "worth",     "beautiful", "pleased",  "impressed",
      "solid",     "easy",        "fast",      "quick",     "helpful",   "fresh",    "tasty",
      "glad",      "enjoy",       "enjoyed",   "superb",    "quality",   "well",     "outstanding"};
  return *words;
}

const absl::flat_hash_set<std::string>& NegativeWords() {
  static const auto* words = new absl::flat_hash_set<std::string>{
      "bad",      "poor",    "terrible",   "awful",   "worst",        "hate",          "hated",
      "broke",    "broken",  "cheap",      "flimsy",  "disappointed", "disappointing", "return",
      "returned", "refund",  "waste",      "useless", "rude",         "cold",          "slow",
      "dirty",    "bland",   "overpriced", "stopped", "defective",    "horrible",      "mediocre",
      "unhappy",  "problem", "problems",   "fail",    "failed",       "fails",         "wrong",
      "leaks",    "leaked",  "avoid",      "never",   "annoying",     "worse",         "junk"};
  return *words;
}

bool Negator(const std::string& w) {
  return w == "not" || w == "no" || w == "never" || absl::EndsWith(w, "n't") || w == "hardly";
}

bool ContainsPhrase(const std::string& haystack_lower, const std::string& phrase) {
  const std::string p = absl::AsciiStrToLower(absl::StripAsciiWhitespace(phrase));
  return !p.empty() && haystack_lower.find(p) != std::string::npos;
}

bool IsNumber(const std::string& w) {
  return !w.empty() && std::isdigit(static_cast<unsigned char>(w[0]));
}

}  // namespace

std::vector<std::string> Words(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    while (!cur.empty() && (cur.back() == '.' || cur.back() == '\'')) cur.pop_back();
    if (!cur.empty()) out.push_back(cur);
    cur.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isalnum(c) || c >= 0x80 || (c == '\'' && !cur.empty()) ||
        (c == '.' && !cur.empty() && IsNumber(cur) && i + 1 < text.size() &&
         std::isdigit(static_cast<unsigned char>(text[i + 1])))) {
      cur.push_back(static_cast<char>(std::tolower(c)));
    } else {
      flush();
    }
  }
  flush();
  return out;
}

std::vector<std::string> ProductAttributes(const EvalTask& task) {
  std::vector<std::string> out;
  if (!task.brand.empty()) out.push_back(task.brand);
  if (!task.price.empty()) out.push_back(task.price);
  for (const std::string& f : task.features) out.push_back(f);
  const std::vector<std::string> brand = Words(task.brand);
  for (const std::string& w : Words(task.title)) {
    if (w.size() < 3 || Stopwords().count(w) ||
        std::find(brand.begin(), brand.end(), w) != brand.end() ||
        std::find(out.begin(), out.end(), w) != out.end()) {
      continue;
    }
    out.push_back(w);
  }
  return out;
}

double AttributeCoverage(const EvalTask& task, const std::string& text) {
  const std::vector<std::string> attributes = ProductAttributes(task);
  if (attributes.empty()) return 0;
  const std::string lower = absl::AsciiStrToLower(text);
  const std::vector<std::string> words = Words(text);
  int found = 0;
  for (const std::string& a : attributes) {
    if (a == task.price) {
      // "$143.59" matches "143.59" and "$143.59".
      const std::vector<std::string> number = Words(a);
      found += !number.empty() && std::find(words.begin(), words.end(), number[0]) != words.end();
    } else if (a.find(' ') == std::string::npos) {
      found += std::find(words.begin(), words.end(), absl::AsciiStrToLower(a)) != words.end();
    } else {
      found += ContainsPhrase(lower, a);
    }
  }
  return static_cast<double>(found) / static_cast<double>(attributes.size());
}

int HallucinatedAttributes(const EvalTask& task, const std::string& text,
                           const std::set<std::string>& known_brands) {
  std::string input = absl::StrJoin({task.title, task.brand, task.category, task.price}, " ");
  for (const std::string& f : task.features) absl::StrAppend(&input, " ", f);
  const std::vector<std::string> input_words = Words(input);
  const absl::flat_hash_set<std::string> given(input_words.begin(), input_words.end());
  int count = 0;
  absl::flat_hash_set<std::string> seen;
  for (const std::string& w : Words(text)) {
    if (!seen.insert(w).second) continue;
    if (IsNumber(w) && !given.count(w)) ++count;
  }
  const std::string lower = absl::AsciiStrToLower(text);
  const std::string own = absl::AsciiStrToLower(task.brand);
  for (const std::string& brand : known_brands) {
    const std::string b = absl::AsciiStrToLower(brand);
    if (b.empty() || b == own) continue;
    // Whole words only: a brand inside a longer word is not a mention.
    const std::vector<std::string> bw = Words(b);
    if (bw.size() == 1 && seen.count(bw[0])) ++count;
    if (bw.size() > 1 && ContainsPhrase(lower, b)) ++count;
  }
  return count;
}

double Polarity(const std::string& text) {
  const std::vector<std::string> words = Words(text);
  int pos = 0, neg = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    int sign = PositiveWords().count(words[i]) ? 1 : NegativeWords().count(words[i]) ? -1 : 0;
    if (sign == 0) continue;
    // A negator up to two words before flips it ("not very good", "never works").
    for (size_t back = 1; back <= 2 && back <= i; ++back) {
      if (Negator(words[i - back])) {
        sign = -sign;
        break;
      }
    }
    (sign > 0 ? pos : neg) += 1;
  }
  return pos + neg == 0 ? 0.0 : static_cast<double>(pos - neg) / (pos + neg);
}

int SentimentAgrees(double rating, const std::string& text) {
  if (rating >= 2.5 && rating <= 3.5) return -1;
  const double p = Polarity(text);
  return rating < 3 ? (p < 0 ? 1 : 0) : (p > 0 ? 1 : 0);
}

double DistinctN(const std::vector<std::string>& texts, int n) {
  absl::flat_hash_set<std::string> distinct;
  int64_t total = 0;
  for (const std::string& t : texts) {
    const std::vector<std::string> w = Words(t);
    for (size_t i = 0; i + n <= w.size(); ++i) {
      distinct.insert(absl::StrJoin(w.begin() + i, w.begin() + i + n, " "));
      ++total;
    }
  }
  return total == 0 ? 0.0 : static_cast<double>(distinct.size()) / static_cast<double>(total);
}

double RepeatedNgramRate(const std::string& text, int n) {
  const std::vector<std::string> w = Words(text);
  if (w.size() < static_cast<size_t>(n)) return 0;
  absl::flat_hash_set<std::string> seen;
  int repeated = 0, total = 0;
  for (size_t i = 0; i + n <= w.size(); ++i, ++total) {
    repeated += !seen.insert(absl::StrJoin(w.begin() + i, w.begin() + i + n, " ")).second;
  }
  return static_cast<double>(repeated) / total;
}

bool TemplateLeak(const std::string& prompt, const std::string& text) {
  for (absl::string_view line : absl::StrSplit(prompt, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.size() >= 8 && text.find(std::string(line)) != std::string::npos) return true;
  }
  static const char* kLabels[] = {
      "Product:",  "Brand:",    "Category:",   "Price:", "Features:", "Rating:", "Review:",
      "Business:", "Location:", "Categories:", "Topic:", "Products:", "Post:",   "Description:"};
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    for (const char* label : kLabels) {
      if (absl::StartsWith(line, label)) return true;
    }
  }
  return false;
}

}  // namespace copyforge
