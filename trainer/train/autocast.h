// bfloat16 autocast on the CPU or a CUDA device (the libtorch calls live in
// trainer/device/torch_compat.h, since they changed between 1.13 and 2.x).
#ifndef COPYFORGE_TRAINER_TRAIN_AUTOCAST_H_
#define COPYFORGE_TRAINER_TRAIN_AUTOCAST_H_

#include "trainer/device/torch_compat.h"

namespace copyforge {

// While alive, eligible ops (matmuls, linear) on `device` run in bfloat16; restores the previous
// state. A no-op when not enabled.
class Bf16Autocast {
 public:
  Bf16Autocast(const torch::Device& device, bool enabled)
      : type_(device.type()), enabled_(enabled) {
    if (!enabled_) return;
    previous_ = compat::AutocastEnabled(type_);
    compat::SetAutocast(type_, true, at::kBFloat16);
  }
  ~Bf16Autocast() {
    if (!enabled_) return;
    compat::SetAutocast(type_, previous_, at::kBFloat16);
    compat::ClearAutocastCache();
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  c10::DeviceType type_;
  bool enabled_;
  bool previous_ = false;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_AUTOCAST_H_
