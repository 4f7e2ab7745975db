// Streams the lines of a plain or gzip-compressed file in constant memory.
#ifndef COPYFORGE_TRAINER_DATA_LINE_READER_H_
#define COPYFORGE_TRAINER_DATA_LINE_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace copyforge {

// Not thread-safe. The view returned by Next stays valid until the following call.
class LineReader {
 public:
  // Opens `path`; gzip is detected from the content, so ".gz" and plain files both work. A line
  // longer than `max_line_bytes` is skipped without being buffered whole, and counted
  // (overlong_lines); 0 means no limit.
  static absl::StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path,
                                                          int64_t max_line_bytes = 0);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Sets *line to the next line without its "\n" (and "\r"). Returns false at the end of the
  // file; a read error or a truncated gzip stream is an error naming the file and line.
  absl::StatusOr<bool> Next(std::string_view* line);

  int64_t line_number() const { return line_number_; }
  int64_t overlong_lines() const { return overlong_lines_; }
  // Bytes of the file (compressed, for .gz) consumed so far, for progress.
  int64_t compressed_offset() const;
  const std::string& path() const { return path_; }

 private:
  LineReader() = default;
  absl::Status Fill();
  std::string path_;
  void* gz_ = nullptr;  // gzFile
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_number_ = 0;
  size_t max_line_bytes_ = 0;  // 0: unbounded
  bool skipping_ = false;      // inside an overlong line, discarding up to its newline
  int64_t overlong_lines_ = 0;
};

// Size of a file in bytes, or 0 when it cannot be read.
int64_t FileSize(const std::string& path);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_LINE_READER_H_
