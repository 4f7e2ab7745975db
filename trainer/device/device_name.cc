#include "trainer/device/device_name.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace copyforge {

int CudaOrdinal(const std::string& name) {
  if (name == "cuda") return -1;
  int index = -2;
  if (!absl::SimpleAtoi(name.substr(5), &index) || index < 0) return -2;
  return index;
}

bool IsCudaName(const std::string& name) { return name == "cuda" || name.rfind("cuda:", 0) == 0; }

absl::Status ValidateDeviceName(const std::string& name, const std::string& what) {
  if (name == "auto" || name == "cpu" || name == "cuda") return absl::OkStatus();
  if (IsCudaName(name) && CudaOrdinal(name) >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " \"", name,
                                                 "\" is not auto, cpu, cuda or cuda:N (N the "
                                                 "index of a visible GPU)"));
}

}  // namespace copyforge
