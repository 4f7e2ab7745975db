#include "trainer/device/device.h"

#include <chrono>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "trainer/device/torch_compat.h"

namespace copyforge {
namespace {

int EnvLocalRank() {
  const char* value = std::getenv("LOCAL_RANK");
  int rank = 0;
  if (value == nullptr || !absl::SimpleAtoi(value, &rank) || rank < 0) return 0;
  return rank;
}

}  // namespace

bool TorchHasCuda() { return compat::kTorchHasCuda; }

int LocalDeviceOrdinal(int rank, int count) {
  if (count <= 0) return 0;
  const char* local = std::getenv("LOCAL_RANK");
  int index = rank;
  if (local != nullptr) index = EnvLocalRank();
  return index % count;
}

absl::StatusOr<torch::Device> ResolveDevice(const std::string& name, const std::string& what,
                                            int local_rank) {
  if (absl::Status st = ValidateDeviceName(name, what); !st.ok()) return st;
  if (name == "cpu") return torch::Device(torch::kCPU);
  const int count = TorchHasCuda() ? static_cast<int>(torch::cuda::device_count()) : 0;
  const int rank = local_rank >= 0 ? local_rank : EnvLocalRank();
  if (name == "auto") {
    if (count == 0) return torch::Device(torch::kCPU);
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(rank % count));
  }
  if (!TorchHasCuda()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " \"", name,
        "\": this build's libtorch has no CUDA (it was built against a CPU libtorch, such as "
        "Debian's); rebuild with `make build TORCH_DIR=<a CUDA libtorch 2.x>` or use cpu"));
  }
  if (count == 0) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    return absl::FailedPreconditionError(absl::StrCat(
        what, " \"", name, "\": no CUDA device is visible",
        visible != nullptr ? absl::StrCat(" (CUDA_VISIBLE_DEVICES=", visible, ")") : std::string(),
        "; use cpu or auto"));
  }
  const int ordinal = CudaOrdinal(name);
  if (ordinal >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", name, "\": only ", count, " CUDA device(s) are visible"));
  }
  const int index = ordinal >= 0 ? ordinal : rank % count;
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

void PrepareDevice(const torch::Device& device) {
  if (!device.is_cuda()) return;
  compat::SetCurrentCudaDevice(device.index());
  at::globalContext().setFloat32MatmulPrecision("high");  // TF32 in cuBLAS
  at::globalContext().setAllowTF32CuDNN(true);
}

void SynchronizeDevice(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

double MeasureMatmulFlops(const torch::Device& device, torch::Dtype dtype) {
  torch::NoGradGuard no_grad;
  const int64_t n = device.is_cuda() ? 8192 : 1024;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  const torch::Tensor a = torch::randn({n, n}, gen).to(options);
  const torch::Tensor b = torch::randn({n, n}, gen).to(options);
  torch::Tensor c = torch::matmul(a, b);  // warm-up (and cuBLAS's choice of kernel)
  SynchronizeDevice(device);
  const auto now = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  int iters = 0;
  const double start = now();
  while (now() - start < 0.3 || iters < 3) {
    for (int k = 0; k < (device.is_cuda() ? 10 : 1); ++k, ++iters) torch::matmul_out(c, a, b);
    SynchronizeDevice(device);
  }
  return 2.0 * static_cast<double>(n) * n * n * iters / (now() - start);
}

at::Generator DefaultGenerator(const torch::Device& device) {
  return at::globalContext().defaultGenerator(device);
}

}  // namespace copyforge
