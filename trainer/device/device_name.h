// The spelling of a device setting ("auto", "cpu", "cuda", "cuda:N"), torch-free so that the
// control plane can validate a job's train section without libtorch. Resolving a name on this
// machine is trainer/device/device.h.
#ifndef COPYFORGE_TRAINER_DEVICE_DEVICE_NAME_H_
#define COPYFORGE_TRAINER_DEVICE_DEVICE_NAME_H_

#include <string>

#include "absl/status/status.h"

namespace copyforge {

// Checks the spelling only; `what` names the setting in the message (for example "device" or
// "--device").
absl::Status ValidateDeviceName(const std::string& name, const std::string& what);

// Whether `name` is "cuda" or "cuda:<anything>".
bool IsCudaName(const std::string& name);

// The ordinal of "cuda:N", -1 for plain "cuda", -2 when the text after "cuda:" is not a number.
int CudaOrdinal(const std::string& name);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DEVICE_DEVICE_NAME_H_
