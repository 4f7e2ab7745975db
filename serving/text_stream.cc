#include "serving/text_stream.h"

#include <algorithm>

#include "trainer/tokenizer/unicode.h"

namespace copyforge {

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
  for (const std::string& s : stop_) max_stop_ = std::max(max_stop_, s.size());
}

TextStream::Update TextStream::Append(std::string_view bytes, bool last) {
  text_.append(bytes);
  Update u;
  // A stop sequence may have completed anywhere in the not yet sent tail.
  for (const std::string& stop : stop_) {
    const size_t from = sent_ > stop.size() ? sent_ - stop.size() : 0;
    const size_t at = text_.find(stop, from);
    if (at != std::string::npos && at >= sent_) {
      u.text = SanitizeUtf8(std::string_view(text_).substr(sent_, at - sent_));
      sent_ = at;
      u.stopped = true;
      return u;
    }
  }
  // Send what can no longer be part of a stop sequence and ends on a character boundary.
  size_t safe = text_.size();
  if (!last) {
    if (max_stop_ > 1) safe = text_.size() >= max_stop_ - 1 ? text_.size() - (max_stop_ - 1) : 0;
    safe = std::max(CompleteUtf8Prefix(std::string_view(text_).substr(0, safe)), sent_);
  }
  u.text = SanitizeUtf8(std::string_view(text_).substr(sent_, safe - sent_));
  sent_ = safe;
  return u;
}

}  // namespace copyforge
