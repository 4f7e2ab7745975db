#include "trainer/device/torch_compat.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#ifdef COPYFORGE_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace copyforge::compat {

// libtorch 2.4 replaced the per-device autocast functions (now deprecated) by ones taking the
// device type.
#if COPYFORGE_TORCH_AT_LEAST(2, 4)
bool AutocastEnabled(c10::DeviceType type) { return at::autocast::is_autocast_enabled(type); }
void SetAutocast(c10::DeviceType type, bool enabled, at::ScalarType dtype) {
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
}
#else
bool AutocastEnabled(c10::DeviceType type) {
  return type == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void SetAutocast(c10::DeviceType type, bool enabled, at::ScalarType dtype) {
  if (type == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  } else {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  }
}
#endif

void ClearAutocastCache() { at::autocast::clear_cache(); }

torch::Tensor CausalSdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                         double dropout_p) {
#if COPYFORGE_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, dropout_p,
                                          /*is_causal=*/true);
#else
  (void)q, (void)k, (void)v, (void)dropout_p;
  TORCH_CHECK(false, "scaled_dot_product_attention needs libtorch 2.0 or later");
#endif
}

void SetCurrentCudaDevice(int index) {
  c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)
      ->setDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index)));
}

void* CurrentCudaStream(int index) {
#ifdef COPYFORGE_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(index)).stream();
#else
  (void)index;
  return nullptr;
#endif
}

}  // namespace copyforge::compat
