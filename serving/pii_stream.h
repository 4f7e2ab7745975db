// The output PII filter of the serving tier: generated text passes through the corpus pipeline's
// own scrubber (trainer/data/pii.h: e-mail addresses, URLs, phone numbers) before any of it is
// returned. Stream-safe: text is held back until scrubbing it can no longer change, so an address
// split across tokens (or chunks) is replaced whole and never sent in pieces. A scrubbing error
// withholds the text (fail closed).
#ifndef COPYFORGE_SERVING_PII_STREAM_H_
#define COPYFORGE_SERVING_PII_STREAM_H_

#include <string>

#include "absl/status/statusor.h"
#include "trainer/data/pii.h"

namespace copyforge {

class PiiStreamFilter {
 public:
  explicit PiiStreamFilter(const PiiScrubber* scrubber) : scrubber_(scrubber) {}
  // Takes new text; returns the scrubbed text that is safe to send now (possibly empty).
  absl::StatusOr<std::string> Push(const std::string& text);
  // The end of the sequence: the rest, scrubbed.
  absl::StatusOr<std::string> Finish();
  int replacements() const { return replacements_; }
  bool failed() const { return failed_; }

  // Text is held until it is this many bytes from the end and ends at whitespace; more than
  // kMaxHeld bytes held is scrubbed and sent whole.
  static constexpr size_t kHold = 24;  // the longest PII with inner spaces: a phone number
  static constexpr size_t kMaxHeld = 4096;

 private:
  absl::StatusOr<std::string> Scrub(std::string text);
  const PiiScrubber* scrubber_;
  std::string held_;  // generated, not yet sent
  int replacements_ = 0;
  bool failed_ = false;  // once scrubbing failed, nothing more of the sequence is sent
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_PII_STREAM_H_
