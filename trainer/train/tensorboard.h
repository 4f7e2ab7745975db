// Writes TensorBoard event files (events.out.tfevents.*): TFRecord-framed Event protos with
// scalar summaries, so `tensorboard --logdir RUN_DIR` shows the training curves.
#ifndef COPYFORGE_TRAINER_TRAIN_TENSORBOARD_H_
#define COPYFORGE_TRAINER_TRAIN_TENSORBOARD_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace copyforge {

// CRC-32C (Castagnoli), as TFRecord framing uses it.
uint32_t Crc32c(std::string_view data);
// TFRecord's masked CRC: rotate right by 15 and add 0xa282ead8.
uint32_t MaskedCrc32c(std::string_view data);

// Not thread-safe. Each record is flushed as it is written, so a crash loses at most the record
// being written.
class EventWriter {
 public:
  // Creates `dir`/events.out.tfevents.<unix seconds>.<host>.copyforge and writes the version
  // record.
  static absl::StatusOr<std::unique_ptr<EventWriter>> Create(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  absl::Status AddScalar(const std::string& tag, int64_t step, double value);
  const std::string& path() const { return path_; }

 private:
  EventWriter() = default;
  absl::Status WriteRecord(const std::string& data);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_TENSORBOARD_H_
