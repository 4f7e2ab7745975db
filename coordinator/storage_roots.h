// Confinement of job paths: the coordinator is started with the roots jobs may read data from
// and write runs to, and every path of a job must resolve (no "..", no symlink leading out) to a
// place under one of them. Pure functions of the file system; no state.
#ifndef COPYFORGE_COORDINATOR_STORAGE_ROOTS_H_
#define COPYFORGE_COORDINATOR_STORAGE_ROOTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

struct StorageRoots {
  std::vector<std::string> data;  // prepared shards (train.data) and starting checkpoints
  std::vector<std::string> runs;  // run directories (train.out)
  // Resolves every root (each must exist and be a directory); errors name the flag.
  absl::Status Resolve();
};

// `path` resolved: the existing part of it through the file system (symlinks followed), the rest
// lexically. A path with a ".." component, a relative path, or one that resolves outside every
// root in `roots` is INVALID_ARGUMENT naming `field`. Returns the resolved path.
absl::StatusOr<std::string> ConfinePath(const std::string& path,
                                        const std::vector<std::string>& roots,
                                        const std::string& field);

// Whether `a` and `b` (resolved paths) are the same directory or one lies inside the other.
bool PathsOverlap(const std::string& a, const std::string& b);

// Whether resolved `path` lies strictly inside resolved directory `dir`.
bool IsInside(const std::string& path, const std::string& dir);

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_STORAGE_ROOTS_H_
