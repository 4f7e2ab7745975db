// Loading YAML with errors that name the file and line.
#ifndef COPYFORGE_TRAINER_COMMON_YAML_UTIL_H_
#define COPYFORGE_TRAINER_COMMON_YAML_UTIL_H_

#include <yaml-cpp/yaml.h>

#include <string>

#include "absl/status/statusor.h"

namespace copyforge {

// Parses the file at `path`; `what` names it in the not-found error ("data config", ...).
absl::StatusOr<YAML::Node> LoadYamlFile(const std::string& path, const std::string& what);
// Parses YAML text; `source` stands for the file in syntax errors ("source:LINE: message").
absl::StatusOr<YAML::Node> ParseYaml(const std::string& text, const std::string& source);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_YAML_UTIL_H_
