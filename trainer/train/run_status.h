// How a trainer process ended, as a structured record its launcher reads (`train --status-file`)
// instead of grepping the log: OK, or the error's code and message, whether a restart would fail
// the same way (permanent), and the step reached.
#ifndef COPYFORGE_TRAINER_TRAIN_RUN_STATUS_H_
#define COPYFORGE_TRAINER_TRAIN_RUN_STATUS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace copyforge {

struct RunStatus {
  bool ok = false;
  std::string code;     // absl status code name, e.g. "DATA_LOSS"
  std::string message;  // the error, without the log around it
  bool permanent = false;
  int64_t step = -1;  // the last completed step, -1 when unknown

  // From a trainer's result: a bad config, missing or corrupt data, or a diverged step fails
  // every restart the same way (permanent); lost peers, timeouts and signals may not.
  static RunStatus FromStatus(const absl::Status& status, int64_t step);
  std::string ToJson() const;
  // Never throws; a malformed record is an error naming `source`.
  static absl::StatusOr<RunStatus> FromJson(const std::string& text, const std::string& source);
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_RUN_STATUS_H_
