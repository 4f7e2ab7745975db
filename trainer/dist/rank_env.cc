#include "trainer/dist/rank_env.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace copyforge {
namespace {

constexpr char kRank[] = "COPYFORGE_RANK";
constexpr char kWorld[] = "COPYFORGE_WORLD";
constexpr char kStoreHost[] = "COPYFORGE_STORE_HOST";
constexpr char kStorePort[] = "COPYFORGE_STORE_PORT";

absl::Status ReadInt(const char* name, int low, int high, int* out) {
  const char* value = std::getenv(name);
  if (value == nullptr) return absl::OkStatus();  // keeps the default
  if (!absl::SimpleAtoi(value, out) || *out < low || *out > high) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "=\"", value, "\" is not an integer in ", low, "..", high));
  }
  return absl::OkStatus();
}

}  // namespace

void ExportRankEnv(const RankEnv& env) {
  ::setenv(kRank, std::to_string(env.rank).c_str(), 1);
  ::setenv(kWorld, std::to_string(env.world).c_str(), 1);
  ::setenv(kStoreHost, env.store_host.c_str(), 1);
  ::setenv(kStorePort, std::to_string(env.store_port).c_str(), 1);
  if (env.local_rank >= 0) ::setenv("LOCAL_RANK", std::to_string(env.local_rank).c_str(), 1);
}

absl::StatusOr<std::optional<RankEnv>> ReadRankEnv() {
  if (std::getenv(kRank) == nullptr) return std::optional<RankEnv>();
  RankEnv env;
  if (absl::Status st = ReadInt(kWorld, 1, 1 << 16, &env.world); !st.ok()) return st;
  if (absl::Status st = ReadInt(kRank, 0, env.world - 1, &env.rank); !st.ok()) return st;
  if (absl::Status st = ReadInt(kStorePort, 1, 65535, &env.store_port); !st.ok()) return st;
  if (const char* host = std::getenv(kStoreHost)) env.store_host = host;
  return std::optional<RankEnv>(env);
}

}  // namespace copyforge
