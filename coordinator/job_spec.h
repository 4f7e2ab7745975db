// A training job as users submit it (configs/jobs/*.yaml): scheduling keys plus a `train`
// section in the format of configs/train/*.yaml.
#ifndef COPYFORGE_COORDINATOR_JOB_SPEC_H_
#define COPYFORGE_COORDINATOR_JOB_SPEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "trainer/train/train_config.h"

namespace copyforge {

struct JobSpec {
  std::string name;
  int min_workers = 1;
  int max_workers = 1;
  int max_restarts = 3;             // restarts after worker loss before the job FAILS
  double recovery_timeout_s = 120;  // how long RECOVERING waits for min_workers
  // Once min_workers are idle, how long to wait for more (up to max_workers) before starting, as
  // torchrun's rendezvous "last call" does.
  double rendezvous_wait_s = 3;
  TrainConfig train;       // validated; train.out is the shared run directory
  std::string train_yaml;  // the train section as submitted (re-emitted)
};

// Parses and validates; errors are INVALID_ARGUMENT naming `source`, the line and the field.
absl::StatusOr<JobSpec> ParseJobSpec(const std::string& yaml_text, const std::string& source);

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_JOB_SPEC_H_
