// The run directory contract, shared by the trainer (writes it), the worker (reads progress and
// registers checkpoints), serving (follows it) and the coordinator (confines registrations to
// it): the file names and the checkpoint listing. Torch-free.
//
//   <run>/metrics.jsonl              one MetricsRecord (trainer/train/metrics_record.h) a line
//   <run>/checkpoints/step_<N>       one checkpoint per saved step (N zero-padded to 7 digits)
//   <run>/checkpoints/*.tmp-<pid>-*  a save in progress (removed at start-up when <pid> is gone)
//   <run>/events.out.tfevents.*      TensorBoard scalars
#ifndef COPYFORGE_TRAINER_CHECKPOINT_RUN_DIR_H_
#define COPYFORGE_TRAINER_CHECKPOINT_RUN_DIR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

inline constexpr char kMetricsFile[] = "metrics.jsonl";
inline constexpr char kCheckpointsDir[] = "checkpoints";

std::string MetricsPath(const std::string& run_dir);
// `run_dir`/checkpoints/step_<step, 7 digits or more>.
std::string CheckpointDir(const std::string& run_dir, int64_t step);

// The checkpoint directories under `run_dir`/checkpoints, ordered by step number (step_10000000
// after step_9999999); staging directories are not listed.
std::vector<std::string> ListCheckpoints(const std::string& run_dir);
// The newest of ListCheckpoints, or NOT_FOUND.
absl::StatusOr<std::string> LatestCheckpoint(const std::string& run_dir);
// Removes the staging directories of checkpoint saves under `run_dir`/checkpoints whose process
// is gone (a trainer killed while saving); returns how many. A live process's are kept.
int RemoveStaleStaging(const std::string& run_dir);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_CHECKPOINT_RUN_DIR_H_
