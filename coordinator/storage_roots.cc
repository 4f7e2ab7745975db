#include "coordinator/storage_roots.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace copyforge {
namespace fs = std::filesystem;

absl::Status StorageRoots::Resolve() {
  for (auto* list : {&data, &runs}) {
    for (std::string& root : *list) {
      std::error_code ec;
      const fs::path resolved = fs::canonical(root, ec);
      if (ec || !fs::is_directory(resolved, ec)) {
        return absl::InvalidArgumentError(absl::StrCat(
            list == &data ? "--data-root " : "--runs-root ", root, ": not an existing directory"));
      }
      root = resolved.string();
    }
  }
  if (data.empty() || runs.empty()) {
    return absl::InvalidArgumentError(
        "the coordinator needs the roots jobs may use: --storage-root DIR, or --data-root and "
        "--runs-root");
  }
  return absl::OkStatus();
}

bool IsInside(const std::string& path, const std::string& dir) {
  if (dir == "/") return path.size() > 1 && path[0] == '/';
  return path.size() > dir.size() + 1 && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

bool PathsOverlap(const std::string& a, const std::string& b) {
  return a == b || IsInside(a, b) || IsInside(b, a);
}

absl::StatusOr<std::string> ConfinePath(const std::string& path,
                                        const std::vector<std::string>& roots,
                                        const std::string& field) {
  const fs::path p(path);
  if (!p.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " \"", path, "\" must be absolute"));
  }
  for (const fs::path& part : p) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(field, " \"", path, "\" contains \"..\""));
    }
  }
  std::error_code ec;
  std::string resolved = fs::weakly_canonical(p, ec).string();
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(field, " \"", path, "\" cannot be resolved"));
  }
  while (resolved.size() > 1 && resolved.back() == '/') resolved.pop_back();
  for (const std::string& root : roots) {
    if (resolved == root || IsInside(resolved, root)) return resolved;
  }
  return absl::InvalidArgumentError(absl::StrCat(field, " \"", path,
                                                 "\" lies outside the coordinator's roots (",
                                                 absl::StrJoin(roots, ", "), ")"));
}

}  // namespace copyforge
