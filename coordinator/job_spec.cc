#include "coordinator/job_spec.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "trainer/common/yaml_util.h"

namespace copyforge {

absl::StatusOr<JobSpec> ParseJobSpec(const std::string& yaml_text, const std::string& source) {
  auto root = ParseYaml(yaml_text, source);
  if (!root.ok()) return root.status();
  if (!root->IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": a job is a YAML mapping"));
  }
  JobSpec spec;
  bool has_train = false;
  for (const auto& kv : *root) {
    const std::string where = absl::StrCat(source, ":", kv.first.Mark().line + 1, ": ");
    if (!kv.first.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "a key must be a plain name"));
    }
    const std::string key = kv.first.Scalar();
    try {
      if (key == "name") {
        spec.name = kv.second.as<std::string>();
      } else if (key == "min_workers") {
        spec.min_workers = kv.second.as<int>();
      } else if (key == "max_workers") {
        spec.max_workers = kv.second.as<int>();
      } else if (key == "max_restarts") {
        spec.max_restarts = kv.second.as<int>();
      } else if (key == "recovery_timeout_s") {
        spec.recovery_timeout_s = kv.second.as<double>();
      } else if (key == "rendezvous_wait_s") {
        spec.rendezvous_wait_s = kv.second.as<double>();
      } else if (key == "train") {
        has_train = true;
        auto train = TrainConfig::FromYamlNode(kv.second, source);
        if (!train.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("train: ", train.status().message()));
        }
        spec.train = *std::move(train);
        YAML::Emitter out;
        out << kv.second;
        spec.train_yaml = out.c_str();
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "unknown key \"", key,
            "\" (known: name, min_workers, max_workers, max_restarts, recovery_timeout_s, "
            "rendezvous_wait_s, train)"));
      }
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "key \"", key, "\" has a value of the wrong type"));
    }
  }
  auto bad = [&](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", field, " ", why));
  };
  if (!has_train) return bad("train", "is required (the configs/train/*.yaml keys)");
  if (spec.name.empty()) return bad("name", "is required");
  if (spec.min_workers < 1) return bad("min_workers", "must be >= 1");
  if (spec.max_workers < spec.min_workers) return bad("max_workers", "must be >= min_workers");
  if (spec.max_restarts < 0) return bad("max_restarts", "must be >= 0");
  if (!(spec.recovery_timeout_s > 0)) return bad("recovery_timeout_s", "must be > 0");
  if (!(spec.rendezvous_wait_s >= 0)) return bad("rendezvous_wait_s", "must be >= 0");
  if (spec.train.out.empty()) {
    return bad("train.out", "is required: the shared run directory for checkpoints");
  }
  if (!spec.train.resume.empty()) {
    return bad("train.resume", "is set by the coordinator, not the job");
  }
  if (absl::Status st = spec.train.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": train.", st.message()));
  }
  return spec;
}

}  // namespace copyforge
