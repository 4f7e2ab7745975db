// The libtorch APIs that differ between Debian's libtorch 1.13 (CPU) and libtorch 2.x (CPU or
// CUDA): autocast state, scaled-dot-product attention and libtorch's current CUDA stream. This is
// the one place that names them; everything else calls these functions.
#ifndef COPYFORGE_TRAINER_DEVICE_TORCH_COMPAT_H_
#define COPYFORGE_TRAINER_DEVICE_TORCH_COMPAT_H_

#include <torch/torch.h>
#include <torch/version.h>

namespace copyforge::compat {

#define COPYFORGE_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||            \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#ifdef COPYFORGE_TORCH_CUDA
inline constexpr bool kTorchHasCuda = true;
#else
inline constexpr bool kTorchHasCuda = false;
#endif

// at::scaled_dot_product_attention exists from libtorch 2.0 on.
inline constexpr bool kHasSdpa = COPYFORGE_TORCH_AT_LEAST(2, 0);

// Autocast state of one device type (CPU or CUDA).
bool AutocastEnabled(c10::DeviceType type);
void SetAutocast(c10::DeviceType type, bool enabled, at::ScalarType dtype);
void ClearAutocastCache();

// Causal attention of q, k, v [B, H, T, D] through the fused kernel (flash / memory-efficient on
// CUDA). Only where kHasSdpa; throws otherwise.
torch::Tensor CausalSdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                         double dropout_p);

// Makes GPU `index` current for this thread.
void SetCurrentCudaDevice(int index);

// libtorch's current CUDA stream on GPU `index` (a cudaStream_t), which the kernels that produced
// a tensor were queued on; nullptr (the legacy default stream) in a build without CUDA.
void* CurrentCudaStream(int index);

}  // namespace copyforge::compat

#endif  // COPYFORGE_TRAINER_DEVICE_TORCH_COMPAT_H_
