#include "serving/pii_stream.h"

#include <cctype>

namespace copyforge {

absl::StatusOr<std::string> PiiStreamFilter::Scrub(std::string text) {
  absl::StatusOr<int> n =
      failed_ ? absl::InternalError("failed before") : scrubber_->Scrub(&text, {});
  if (!n.ok()) {
    failed_ = true;
    held_.clear();
    return absl::InternalError("output PII scrubbing failed; the text is withheld");
  }
  replacements_ += *n;
  return text;
}

absl::StatusOr<std::string> PiiStreamFilter::Push(const std::string& text) {
  if (failed_) return Scrub("");
  held_ += text;
  if (held_.size() > kMaxHeld) return Finish();
  if (held_.size() <= kHold) return std::string();
  // The candidate: everything up to the last whitespace at least kHold bytes from the end.
  size_t cut = held_.size() - kHold;
  while (cut > 0 && !std::isspace(static_cast<unsigned char>(held_[cut - 1]))) --cut;
  if (cut == 0) return std::string();
  // Safe to send only if scrubbing the candidate alone gives what scrubbing everything held gives
  // for it: then no match crosses the cut.
  std::string whole = held_;
  if (!scrubber_->Scrub(&whole, {}).ok()) return Finish();  // fails closed in Scrub
  std::string head = held_.substr(0, cut);
  absl::StatusOr<int> replaced = scrubber_->Scrub(&head, {});
  if (!replaced.ok()) return Finish();
  if (whole.compare(0, head.size(), head) != 0) return std::string();
  held_.erase(0, cut);
  replacements_ += *replaced;
  return head;  // already scrubbed
}

absl::StatusOr<std::string> PiiStreamFilter::Finish() {
  std::string rest = std::move(held_);
  held_.clear();
  return Scrub(std::move(rest));
}

}  // namespace copyforge
