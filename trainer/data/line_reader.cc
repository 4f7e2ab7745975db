#include "trainer/data/line_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace copyforge {
namespace {
constexpr size_t kChunk = 1 << 20;
}  // namespace

int64_t FileSize(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

absl::StatusOr<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path,
                                                             int64_t max_line_bytes) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is a directory, not a file"));
  }
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  gzbuffer(gz, 1 << 18);
  std::unique_ptr<LineReader> r(new LineReader());
  r->path_ = path;
  r->gz_ = gz;
  r->max_line_bytes_ = static_cast<size_t>(std::max<int64_t>(0, max_line_bytes));
  return r;
}

LineReader::~LineReader() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
}

int64_t LineReader::compressed_offset() const {
  return static_cast<int64_t>(gzoffset(static_cast<gzFile>(gz_)));
}

absl::Status LineReader::Fill() {
  buf_.erase(0, pos_);
  pos_ = 0;
  const size_t old = buf_.size();
  buf_.resize(old + kChunk);
  int n = gzread(static_cast<gzFile>(gz_), buf_.data() + old, kChunk);
  if (n < 0) {
    int code = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &code);
    buf_.resize(old);
    return absl::DataLossError(absl::StrCat(path_, ": read error after line ", line_number_, ": ",
                                            code == Z_ERRNO ? std::strerror(errno) : msg));
  }
  buf_.resize(old + static_cast<size_t>(n));
  if (n == 0) {
    int code = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &code);
    if (code != Z_OK) {
      return absl::DataLossError(absl::StrCat(path_, ": ", msg, " after line ", line_number_,
                                              " (truncated or corrupt gzip file)"));
    }
    eof_ = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> LineReader::Next(std::string_view* line) {
  while (true) {
    size_t nl = buf_.find('\n', pos_);
    if (skipping_) {
      // The rest of an overlong line: dropped as it arrives.
      if (nl == std::string::npos) {
        pos_ = buf_.size();
        if (eof_) return false;
        if (absl::Status st = Fill(); !st.ok()) return st;
        continue;
      }
      pos_ = nl + 1;
      skipping_ = false;
      continue;
    }
    if (max_line_bytes_ > 0 &&
        (nl == std::string::npos ? buf_.size() : nl) - pos_ > max_line_bytes_) {
      ++line_number_;
      ++overlong_lines_;
      skipping_ = true;
      continue;
    }
    if (nl != std::string::npos || (eof_ && pos_ < buf_.size())) {
      const size_t end = nl == std::string::npos ? buf_.size() : nl;
      size_t len = end - pos_;
      if (len > 0 && buf_[pos_ + len - 1] == '\r') --len;
      *line = std::string_view(buf_.data() + pos_, len);
      pos_ = nl == std::string::npos ? buf_.size() : nl + 1;
      ++line_number_;
      return true;
    }
    if (eof_) return false;
    if (absl::Status st = Fill(); !st.ok()) return st;
  }
}

}  // namespace copyforge
