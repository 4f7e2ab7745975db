// The checkpoint manifest (manifest.json): every file of a checkpoint directory with its size
// and SHA-256, written last inside the staging directory. Torch-free, so the control plane can
// verify what a worker registers without linking libtorch.
#ifndef COPYFORGE_TRAINER_CHECKPOINT_MANIFEST_H_
#define COPYFORGE_TRAINER_CHECKPOINT_MANIFEST_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace copyforge {

inline constexpr char kModelFile[] = "model.safetensors";
inline constexpr char kConfigFile[] = "config.json";
inline constexpr char kManifestFile[] = "manifest.json";

// Bounds on what a manifest may claim; each is named in the error it causes.
struct ManifestLimits {
  int64_t max_manifest_bytes = 1 << 20;
  int max_files = 64;
  int64_t max_file_bytes = int64_t{64} << 30;
};

// Lists every regular file of `dir` (but the manifest itself) with its size and SHA-256.
absl::Status WriteManifest(const std::string& dir);

// Checks `dir`/manifest.json strictly: a JSON object whose "files" maps plain file names (no
// '/', no "..", no hidden names) to {"bytes", "sha256"}; it lists at least model.safetensors and
// config.json; each listed file is a regular file (not a symlink) inside `dir` whose real size
// equals the claimed one before it is hashed. Errors are DATA_LOSS naming the file that failed,
// never what it contains. Returns the manifest's own SHA-256 (hex).
absl::StatusOr<std::string> VerifyManifest(const std::string& dir,
                                           const ManifestLimits& limits = {});

// Whether `name` is a plain file name a manifest may list.
bool IsPlainFileName(const std::string& name);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_CHECKPOINT_MANIFEST_H_
