// Reading numbers out of JSON written by another process (metrics.jsonl, training_state.json):
// a missing key, a null (how a NaN is written) or a value of another type never throws.
#ifndef COPYFORGE_TRAINER_COMMON_JSON_UTIL_H_
#define COPYFORGE_TRAINER_COMMON_JSON_UTIL_H_

#include <cmath>
#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"

namespace copyforge {

// The number under `key`, `fallback` when it is missing or not a number; a null reads as NaN.
inline double JsonDouble(const nlohmann::json& j, const std::string& key, double fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (it->is_null()) return std::nan("");
  return it->is_number() ? it->get<double>() : fallback;
}

// The integer under `key`, `fallback` when it is missing or not an integer.
inline int64_t JsonInt(const nlohmann::json& j, const std::string& key, int64_t fallback) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_JSON_UTIL_H_
