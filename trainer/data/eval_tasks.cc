#include "trainer/data/eval_tasks.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace copyforge {

std::string EvalTask::ToJsonLine() const {
  nlohmann::ordered_json j = {{"kind", kind}};
  auto put = [&j](const char* key, const std::string& value) {
    if (!value.empty()) j[key] = value;
  };
  put("title", title);
  put("brand", brand);
  put("category", category);
  put("price", price);
  if (!features.empty()) j["features"] = features;
  put("business_name", business_name);
  put("business_categories", business_categories);
  put("city", city);
  put("state", state);
  if (rating > 0) j["rating"] = rating;
  j["reference"] = reference;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::vector<EvalTask>> LoadEvalTasks(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path,
                     ": no held-out task inputs (prepare writes them with the finetune "
                     "objective)"));
  }
  std::vector<EvalTask> tasks;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const std::string where = absl::StrCat(path, ":", number);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return absl::InvalidArgumentError(where + ": not a JSON object");
    EvalTask t;
    try {
      t.kind = j.at("kind").get<std::string>();
      auto get = [&j](const char* key, std::string* out) {
        if (j.contains(key)) *out = j[key].get<std::string>();
      };
      get("title", &t.title);
      get("brand", &t.brand);
      get("category", &t.category);
      get("price", &t.price);
      if (j.contains("features")) t.features = j["features"].get<std::vector<std::string>>();
      get("business_name", &t.business_name);
      get("business_categories", &t.business_categories);
      get("city", &t.city);
      get("state", &t.state);
      if (j.contains("rating")) t.rating = j["rating"].get<double>();
      t.reference = j.at("reference").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", e.what()));
    }
    if (t.kind != "product_description" && t.kind != "review") {
      return absl::InvalidArgumentError(absl::StrCat(where, ": unknown kind \"", t.kind, "\""));
    }
    tasks.push_back(std::move(t));
  }
  return tasks;
}

}  // namespace copyforge
