// One line of a run's metrics.jsonl (trainer/checkpoint/run_dir.h), the record the trainer
// writes and the worker (progress, validation loss of a checkpoint) reads. Three kinds share the
// file: a start marker at every (re)start, a training step, an evaluation. A non-finite value is
// written as JSON null and read back as NaN.
#ifndef COPYFORGE_TRAINER_TRAIN_METRICS_RECORD_H_
#define COPYFORGE_TRAINER_TRAIN_METRICS_RECORD_H_

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace copyforge {

struct MetricsRecord {
  enum class Kind { kStart, kStep, kEval };
  Kind kind = Kind::kStep;
  int64_t step = 0;
  // kStart
  int world = 1;
  std::string resumed_from;
  // kStep
  double loss = NAN, lr = NAN, grad_norm = NAN, tokens_per_s = NAN, mfu = NAN, elapsed_s = NAN,
         eta_s = NAN;
  // kEval
  double val_loss = NAN, val_ppl = NAN;

  // One JSON object, without the newline.
  std::string ToJsonLine() const;
  // Whatever the line holds, never throws: nullopt when it is not one of the three kinds.
  static std::optional<MetricsRecord> Parse(std::string_view line);
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_METRICS_RECORD_H_
