// Checkpoint manifests: any manifest.json is verified or refused, and never reaches a file
// outside its directory.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "trainer/checkpoint/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    std::string d = std::filesystem::temp_directory_path() /
                    ("copyforge-fuzz-manifest-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d + "/ckpt");
    std::ofstream(d + "/ckpt/model.safetensors") << "weights";
    std::ofstream(d + "/ckpt/config.json") << "{}";
    std::ofstream(d + "/secret") << "outside";
    return d;
  }();
  std::ofstream(dir + "/ckpt/manifest.json", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  (void)copyforge::VerifyManifest(dir + "/ckpt");
  return 0;
}
