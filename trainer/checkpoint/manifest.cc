#include "trainer/checkpoint/manifest.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace fs = std::filesystem;
namespace {

bool IsLowerHex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The size of a regular file that is not a symlink, or -1.
int64_t RegularFileSize(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  return static_cast<int64_t>(st.st_size);
}

}  // namespace

bool IsPlainFileName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  return name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

absl::Status WriteManifest(const std::string& dir) {
  nlohmann::ordered_json files = nlohmann::ordered_json::object();
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename() != kManifestFile) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    CF_ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    files[name] = {{"sha256", sha}, {"bytes", fs::file_size(path)}};
  }
  nlohmann::ordered_json manifest = {{"format", "copyforge-checkpoint/1"}, {"files", files}};
  return WriteFileSynced(dir + "/" + kManifestFile, manifest.dump(2) + "\n");
}

absl::StatusOr<std::string> VerifyManifest(const std::string& dir, const ManifestLimits& limits) {
  const std::string path = dir + "/" + kManifestFile;
  const int64_t manifest_bytes = RegularFileSize(path);
  if (manifest_bytes < 0) {
    return absl::DataLossError(absl::StrCat(path, ": missing or not a regular file"));
  }
  if (manifest_bytes > limits.max_manifest_bytes) {
    return absl::DataLossError(absl::StrCat(path, ": larger than the manifest limit of ",
                                            limits.max_manifest_bytes, " bytes"));
  }
  auto read = ReadFile(path);
  if (!read.ok()) return absl::DataLossError(read.status().message());
  const std::string text = *std::move(read);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("files") || !j["files"].is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": not a checkpoint manifest"));
  }
  const nlohmann::json& files = j["files"];
  if (static_cast<int64_t>(files.size()) > limits.max_files) {
    return absl::DataLossError(
        absl::StrCat(path, ": lists more than the limit of ", limits.max_files, " files"));
  }
  for (const char* required : {kModelFile, kConfigFile}) {
    if (!files.contains(required)) {
      return absl::DataLossError(absl::StrCat(path, ": does not list ", required));
    }
  }
  // Every entry is checked for shape and size before any file is hashed.
  for (auto it = files.begin(); it != files.end(); ++it) {
    if (!IsPlainFileName(it.key())) {
      return absl::DataLossError(absl::StrCat(path, ": an entry is not a plain file name"));
    }
    const std::string file = dir + "/" + it.key();
    const nlohmann::json& e = it.value();
    if (!e.is_object() || !e.contains("bytes") || !e["bytes"].is_number_unsigned() ||
        !e.contains("sha256") || !e["sha256"].is_string() ||
        !IsLowerHex64(e["sha256"].get<std::string>())) {
      return absl::DataLossError(
          absl::StrCat(file, ": the manifest entry needs \"bytes\" and a hex \"sha256\""));
    }
    const int64_t size = RegularFileSize(file);
    if (size < 0) {
      return absl::DataLossError(
          absl::StrCat(file, ": listed in ", path, " but missing or not a regular file"));
    }
    if (size > limits.max_file_bytes) {
      return absl::DataLossError(
          absl::StrCat(file, ": larger than the limit of ", limits.max_file_bytes, " bytes"));
    }
    if (e["bytes"].get<uint64_t>() != static_cast<uint64_t>(size)) {
      return absl::DataLossError(
          absl::StrCat(file, ": size differs from the manifest (truncated or replaced)"));
    }
  }
  for (auto it = files.begin(); it != files.end(); ++it) {
    const std::string file = dir + "/" + it.key();
    auto sha = Sha256File(file);
    if (!sha.ok()) return absl::DataLossError(sha.status().message());
    if (*sha != it.value()["sha256"].get<std::string>()) {
      return absl::DataLossError(
          absl::StrCat(file, ": SHA-256 differs from the manifest (corrupt or replaced)"));
    }
  }
  return Sha256Hex(text);
}

}  // namespace copyforge
