// Job specs as SubmitJob receives them: any text parses to a validated spec or an error naming
// spec_yaml.
#include <cstdlib>

#include "coordinator/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = copyforge::ParseJobSpec(text, "spec_yaml");
  if (spec.ok() && (spec->name.empty() || spec->min_workers < 1 ||
                    spec->max_workers < spec->min_workers || spec->train.out.empty())) {
    std::abort();  // accepted something validation must refuse
  }
  if (!spec.ok() && spec.status().message().find("spec_yaml") == std::string::npos) {
    std::abort();  // an error that does not name its source
  }
  return 0;
}
