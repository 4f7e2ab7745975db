// The training loop of one process: GPT-2 on prepared shards with AdamW, warmup + cosine schedule,
// gradient clipping and accumulation, optional bfloat16 autocast, periodic evaluation, metrics,
// and checkpoints whose training state lets a run resume exactly.
#ifndef COPYFORGE_TRAINER_TRAIN_TRAINER_H_
#define COPYFORGE_TRAINER_TRAIN_TRAINER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/checkpoint/run_dir.h"
#include "trainer/train/train_config.h"

namespace copyforge {
class Communicator;
}

namespace copyforge {

struct StepStats {
  int64_t step = 0;  // optimizer steps completed
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  int64_t tokens = 0;  // tokens in the step's batches
  double seconds = 0;
};

// Not thread-safe; one per process (rank).
class Trainer {
 public:
  // Loads and checks everything (config, model or checkpoint, shards, tokenizer agreement,
  // resume state) before any step; errors name the key, file or tensor.
  // With `comm` (owned by the caller, outliving the trainer), this process is one rank of a
  // data-parallel run: it reads its part of the data, parameters start from rank 0's, gradients
  // are summed across ranks in buckets during backward, and only rank 0 logs and checkpoints.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainConfig& config,
                                                         Communicator* comm = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs until config.steps with logging, evaluation and checkpoints; prints a summary.
  absl::Status Run();
  // One optimizer step (grad_accum micro-batches).
  absl::StatusOr<StepStats> Step();
  // Mean loss over the first eval_batches batches of the validation split.
  absl::StatusOr<double> Evaluate();
  // Writes <out>/checkpoints/step_NNNNNNN (model, tokenizer, training state) and prunes old ones.
  absl::StatusOr<std::string> SaveCheckpoint();
  int64_t step() const;
  // Run returns CANCELLED before the next step once `*stop` is true (a SIGTERM handler sets it).
  // `stop` must outlive Run.
  void SetStopFlag(const std::atomic<bool>* stop);

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_TRAINER_H_
