// Learning-rate schedule: linear warmup, then cosine decay to a floor.
#ifndef COPYFORGE_TRAINER_TRAIN_SCHEDULE_H_
#define COPYFORGE_TRAINER_TRAIN_SCHEDULE_H_

#include <cmath>
#include <cstdint>

namespace copyforge {

// Learning rate for optimizer step `step` (0-based) of `total`: lr * (step + 1) / warmup during
// warmup, then cosine from lr down to min_lr at the last step.
inline double ScheduledLr(int64_t step, int64_t total, int64_t warmup, double lr, double min_lr) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t decay_steps = total - warmup;
  if (decay_steps <= 1) return lr;
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay_steps - 1));
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_SCHEDULE_H_
