// The safetensors reader: any file is opened and validated or refused with a status.
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "trainer/checkpoint/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ::memfd_create("fuzz.safetensors", 0);
  if (fd < 0) return 0;
  if (::write(fd, data, size) == static_cast<ssize_t>(size)) {
    auto file = copyforge::SafetensorsFile::Open("/proc/self/fd/" + std::to_string(fd));
    if (file.ok()) {
      for (const copyforge::TensorView& t : (*file)->tensors()) {
        // Every view lies inside the mapping: touch its first and last byte.
        if (t.nbytes > 0) {
          volatile char first = t.data[0];
          volatile char last = t.data[t.nbytes - 1];
          (void)first;
          (void)last;
        }
      }
    }
  }
  ::close(fd);
  return 0;
}
