// Removes personal data from review text before anything is written.
#ifndef COPYFORGE_TRAINER_DATA_PII_H_
#define COPYFORGE_TRAINER_DATA_PII_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

// Placeholders that replace what was removed. Plain bracketed words: they tokenize like text
// and cannot collide with special tokens.
inline constexpr char kEmailPlaceholder[] = "[email]";
inline constexpr char kPhonePlaceholder[] = "[phone]";
inline constexpr char kUrlPlaceholder[] = "[url]";
inline constexpr char kPersonPlaceholder[] = "[name]";

// The default bound on the work of one pattern match (PCRE2's match limit).
inline constexpr uint32_t kDefaultPiiMatchLimit = 10'000'000;

// Thread-safe after construction (the compiled patterns are shared; match state is per call).
class PiiScrubber {
 public:
  // `match_limit` bounds the work of one pattern match (PCRE2's match limit), so no text can make
  // scrubbing run away; a text that reaches it is an error, never passed through.
  explicit PiiScrubber(uint32_t match_limit = kDefaultPiiMatchLimit);
  ~PiiScrubber();
  PiiScrubber(const PiiScrubber&) = delete;
  PiiScrubber& operator=(const PiiScrubber&) = delete;

  // Replaces e-mail addresses, URLs (http(s):// and www.), phone numbers (North American and
  // +country forms) and every occurrence of the given personal strings (reviewer names and ids;
  // for a multi-word name also its first word) with placeholders. Returns the replacements made,
  // or an error (a PCRE2 failure, such as the match limit) after which *text must be dropped:
  // it may still hold personal data.
  absl::StatusOr<int> Scrub(std::string* text, const std::vector<std::string>& personal) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_PII_H_
