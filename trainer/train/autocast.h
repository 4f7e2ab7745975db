// bfloat16 autocast on the CPU. The libtorch API for this changed between 1.13 and 2.x; this is
// the one place that names it.
#ifndef COPYFORGE_TRAINER_TRAIN_AUTOCAST_H_
#define COPYFORGE_TRAINER_TRAIN_AUTOCAST_H_

#include <ATen/autocast_mode.h>

namespace copyforge {

// While alive, eligible CPU ops (matmuls, linear) run in bfloat16; restores the previous state.
class CpuBf16Autocast {
 public:
  explicit CpuBf16Autocast(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    previous_ = at::autocast::is_cpu_enabled();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  ~CpuBf16Autocast() {
    if (!enabled_) return;
    at::autocast::set_cpu_enabled(previous_);
    at::autocast::clear_cache();
  }
  CpuBf16Autocast(const CpuBf16Autocast&) = delete;
  CpuBf16Autocast& operator=(const CpuBf16Autocast&) = delete;

 private:
  bool enabled_;
  bool previous_ = false;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_AUTOCAST_H_
