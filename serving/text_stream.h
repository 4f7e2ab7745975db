// The text of one generated sequence as it streams out: token bytes are appended as they come,
// and what is sent is only what can no longer change: stop sequences are matched across token
// boundaries and held back while they may still complete (a completed one ends the text before
// it), and text is cut only at UTF-8 character boundaries (a character split across tokens waits
// for its last byte; bytes that never form one are replaced when sent). Torch-free.
#ifndef COPYFORGE_SERVING_TEXT_STREAM_H_
#define COPYFORGE_SERVING_TEXT_STREAM_H_

#include <string>
#include <string_view>
#include <vector>

namespace copyforge {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {});

  struct Update {
    std::string text;      // newly safe to send (valid UTF-8)
    bool stopped = false;  // a stop sequence completed: nothing more will be sent
  };
  // Appends a token's bytes; `last` says no token follows (everything held back goes out).
  Update Append(std::string_view bytes, bool last);
  const std::string& text() const { return text_; }  // every byte so far

 private:
  std::vector<std::string> stop_;
  size_t max_stop_ = 0;
  std::string text_;
  size_t sent_ = 0;  // bytes of text_ already sent
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_TEXT_STREAM_H_
