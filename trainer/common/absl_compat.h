// Debian's Abseil is built with its own absl::string_view (not std::string_view); this bridges
// the two without copying.
#ifndef COPYFORGE_TRAINER_COMMON_ABSL_COMPAT_H_
#define COPYFORGE_TRAINER_COMMON_ABSL_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace copyforge {

inline absl::string_view AsAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view AsStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_ABSL_COMPAT_H_
