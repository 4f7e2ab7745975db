// The training state a checkpoint carries beside the model, so a resumed run continues exactly:
// optimizer moments (training_state.pt), the random generators of the CPU and of the training
// device, and the step and data cursor (training_state.json). Serving never reads these files.
#ifndef COPYFORGE_TRAINER_TRAIN_TRAIN_STATE_H_
#define COPYFORGE_TRAINER_TRAIN_TRAIN_STATE_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "trainer/train/shard_dataset.h"

namespace copyforge {

struct TrainProgress {
  int64_t step = 0;
  BatchSampler::Cursor cursor;
  int64_t world = 1;  // ranks that consumed the cursor's samples
};

// Writes both files into `dir` (synced). `device` is where training runs: a CUDA device's
// generator is saved too.
absl::Status WriteTrainingState(const std::string& dir, torch::optim::Optimizer& optimizer,
                                const torch::Device& device, const TrainProgress& progress,
                                const nlohmann::ordered_json& config);

// Restores the optimizer (its tensors mapped onto `device`) and the generators from `dir` and
// returns the progress; errors name the file.
absl::StatusOr<TrainProgress> ReadTrainingState(const std::string& dir,
                                                torch::optim::Optimizer& optimizer,
                                                const torch::Device& device);

// The step a checkpoint directory's training_state.json records; an error when it is missing or
// not a training state (a directory still being written, or not one of ours). Never throws.
absl::StatusOr<int64_t> ReadCheckpointStep(const std::string& dir);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_TRAIN_STATE_H_
