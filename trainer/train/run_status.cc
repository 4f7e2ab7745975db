#include "trainer/train/run_status.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace copyforge {

RunStatus RunStatus::FromStatus(const absl::Status& status, int64_t step) {
  RunStatus r;
  r.ok = status.ok();
  r.code = absl::StatusCodeToString(status.code());
  r.message = std::string(status.message());
  r.step = step;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      r.permanent = true;
      break;
    default:
      r.permanent = false;
  }
  return r;
}

std::string RunStatus::ToJson() const {
  return nlohmann::ordered_json({{"ok", ok},
                                 {"code", code},
                                 {"message", message},
                                 {"permanent", permanent},
                                 {"step", step}})
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

absl::StatusOr<RunStatus> RunStatus::FromJson(const std::string& text, const std::string& source) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ok") || !j["ok"].is_boolean()) {
    return absl::DataLossError(absl::StrCat(source, ": not a run status record"));
  }
  RunStatus r;
  r.ok = j["ok"].get<bool>();
  if (j.contains("code") && j["code"].is_string()) r.code = j["code"].get<std::string>();
  if (j.contains("message") && j["message"].is_string()) {
    r.message = j["message"].get<std::string>();
  }
  if (j.contains("permanent") && j["permanent"].is_boolean()) {
    r.permanent = j["permanent"].get<bool>();
  }
  if (j.contains("step") && j["step"].is_number_integer()) r.step = j["step"].get<int64_t>();
  return r;
}

}  // namespace copyforge
