// Reading and writing the safetensors format: an 8-byte little-endian header length N, N bytes
// of JSON header ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"}),
// then the raw little-endian tensor bytes. Torch-free, so any component can inspect a file.
#ifndef COPYFORGE_TRAINER_CHECKPOINT_SAFETENSORS_H_
#define COPYFORGE_TRAINER_CHECKPOINT_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace copyforge {

// Bytes per element of a safetensors dtype name ("F32", "BF16", ...), or 0 when unknown.
size_t SafetensorsDtypeSize(std::string_view dtype);

struct TensorView {
  std::string name;
  std::string dtype;  // safetensors spelling: F32, F16, BF16, I64, ...
  std::vector<int64_t> shape;
  const char* data = nullptr;  // points into the owning SafetensorsFile's mapping
  size_t nbytes = 0;
};

// A validated, memory-mapped safetensors file. TensorViews stay valid while it lives.
class SafetensorsFile {
 public:
  // Opens and validates `path`: header bounds, JSON, dtypes, shapes, and offsets that tile the
  // data region exactly. Errors name the file and, where one is at fault, the tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* Find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string_view data;  // exactly numel * dtype size bytes, little-endian
};

// Writes a safetensors file (header padded to 8 bytes) and fsyncs it.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_CHECKPOINT_SAFETENSORS_H_
