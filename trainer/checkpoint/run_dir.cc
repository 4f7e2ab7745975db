#include "trainer/checkpoint/run_dir.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace fs = std::filesystem;

std::string MetricsPath(const std::string& run_dir) {
  return absl::StrCat(run_dir, "/", kMetricsFile);
}

std::string CheckpointDir(const std::string& run_dir, int64_t step) {
  return absl::StrFormat("%s/%s/step_%07d", run_dir, kCheckpointsDir, step);
}

std::vector<std::string> ListCheckpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(run_dir) / kCheckpointsDir, ec)) {
    const std::string name = e.path().filename().string();
    // step_<digits> only: staging directories of a save in progress end in .tmp-*.
    int64_t step = 0;
    if (e.is_directory() && name.rfind("step_", 0) == 0 &&
        name.find_first_not_of("0123456789", 5) == std::string::npos &&
        absl::SimpleAtoi(name.substr(5), &step)) {
      steps.emplace_back(step, e.path().string());
    }
  }
  std::sort(steps.begin(), steps.end());
  std::vector<std::string> out;
  for (auto& [step, path] : steps) out.push_back(std::move(path));
  return out;
}

absl::StatusOr<std::string> LatestCheckpoint(const std::string& run_dir) {
  std::vector<std::string> steps = ListCheckpoints(run_dir);
  if (steps.empty()) {
    return absl::NotFoundError(absl::StrCat("no checkpoint under ", run_dir, "/", kCheckpointsDir));
  }
  return steps.back();
}

int RemoveStaleStaging(const std::string& run_dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(run_dir) / kCheckpointsDir, ec)) {
    const int pid = StagingOwnerPid(e.path().filename().string());
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno == EPERM) continue;
    fs::remove_all(e.path(), ec);
    if (!ec) ++removed;
  }
  return removed;
}

}  // namespace copyforge
