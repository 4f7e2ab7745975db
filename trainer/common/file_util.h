// Whole-file I/O and crash-safe writes.
#ifndef COPYFORGE_TRAINER_COMMON_FILE_UTIL_H_
#define COPYFORGE_TRAINER_COMMON_FILE_UTIL_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace copyforge {

// Reads a whole file; the error names the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` and fsyncs it (no rename; used inside a staging directory).
absl::Status WriteFileSynced(const std::string& path, std::string_view contents);

// Writes `contents` to a temporary file beside `path`, fsyncs it and renames it over `path`,
// so readers see either the old file or the whole new one.
absl::Status WriteFileAtomic(const std::string& path, std::string_view contents);

// fsyncs a directory so that renames inside it are durable.
absl::Status SyncDirectory(const std::string& dir);

// Builds a directory atomically: `fill` writes into a fresh staging directory next to `final_dir`;
// on success the staging directory is fsynced and renamed to `final_dir`. With `overwrite`, an
// existing `final_dir` is replaced; without it, an existing non-empty `final_dir` is an error.
// On failure the staging directory is removed and `final_dir` is untouched.
absl::Status WriteDirectoryAtomic(const std::string& final_dir, bool overwrite,
                                  const std::function<absl::Status(const std::string&)>& fill);

// The process that made a staging name of WriteFileAtomic / WriteDirectoryAtomic
// ("<name>.tmp-<pid>-<random>"), or -1 when `name` is not one.
int StagingOwnerPid(const std::string& name);

// SHA-256 of a file, as lowercase hex.
absl::StatusOr<std::string> Sha256File(const std::string& path);
// SHA-256 of bytes, as lowercase hex.
std::string Sha256Hex(std::string_view bytes);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_FILE_UTIL_H_
