#include "trainer/train/tensorboard.h"

#include <nmmintrin.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "tensorboard_event.pb.h"  // generated into the build tree by protos/

namespace copyforge {
namespace {

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

// Debian 12 packages no CRC-32C library; the SSE4.2 instruction computes exactly this polynomial.
__attribute__((target("sse4.2"))) uint32_t Crc32c(std::string_view data) {
  uint64_t crc = 0xFFFFFFFFu;
  const char* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    crc = _mm_crc32_u64(crc, v);
    p += 8;
    n -= 8;
  }
  auto c = static_cast<uint32_t>(crc);
  while (n-- > 0) c = _mm_crc32_u8(c, static_cast<unsigned char>(*p++));
  return c ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(std::string_view data) {
  const uint32_t crc = Crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

absl::StatusOr<std::unique_ptr<EventWriter>> EventWriter::Create(const std::string& dir) {
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  std::unique_ptr<EventWriter> w(new EventWriter());
  w->path_ = absl::StrCat(dir, "/events.out.tfevents.", static_cast<int64_t>(WallTime()), ".", host,
                          ".copyforge");
  w->file_ = std::fopen(w->path_.c_str(), "ab");
  if (w->file_ == nullptr) return absl::InternalError(absl::StrCat("cannot create ", w->path_));
  tensorboard::Event version;
  version.set_wall_time(WallTime());
  version.set_file_version("brain.Event:2");
  absl::Status st = w->WriteRecord(version.SerializeAsString());
  if (!st.ok()) return st;
  return w;
}

EventWriter::~EventWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status EventWriter::AddScalar(const std::string& tag, int64_t step, double value) {
  tensorboard::Event event;
  event.set_wall_time(WallTime());
  event.set_step(step);
  tensorboard::SummaryValue* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  return WriteRecord(event.SerializeAsString());
}

absl::Status EventWriter::WriteRecord(const std::string& data) {
  // TFRecord: uint64 length, masked CRC of the length, data, masked CRC of the data
  // (little-endian).
  const uint64_t len = data.size();
  char header[12];
  std::memcpy(header, &len, 8);
  const uint32_t len_crc = MaskedCrc32c(std::string_view(header, 8));
  std::memcpy(header + 8, &len_crc, 4);
  const uint32_t data_crc = MaskedCrc32c(data);
  if (std::fwrite(header, 1, 12, file_) != 12 ||
      std::fwrite(data.data(), 1, data.size(), file_) != data.size() ||
      std::fwrite(&data_crc, 1, 4, file_) != 4 || std::fflush(file_) != 0) {
    return absl::InternalError(absl::StrCat("cannot write ", path_));
  }
  return absl::OkStatus();
}

}  // namespace copyforge
