// Where a process computes: the device setting of `train` (YAML `device`) and the `--device` flag
// of `serve`, `eval` and `generate`. "auto" is the local GPU when this build's libtorch has CUDA
// and a GPU is visible, else the CPU; "cuda" is this process's GPU (LOCAL_RANK when a launcher
// sets it, one GPU per rank); "cuda:N" names one. A CUDA request on a CPU build or a machine
// without a GPU is an error naming the device, returned before any work starts.
#ifndef COPYFORGE_TRAINER_DEVICE_DEVICE_H_
#define COPYFORGE_TRAINER_DEVICE_DEVICE_H_

#include <torch/torch.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/device/device_name.h"

namespace copyforge {

// Resolves a device name on this machine (see the file comment). `local_rank` < 0 reads
// LOCAL_RANK from the environment (0 when unset).
absl::StatusOr<torch::Device> ResolveDevice(const std::string& name, const std::string& what,
                                            int local_rank = -1);

// Whether the libtorch this binary was built against has CUDA.
bool TorchHasCuda();

// The GPU a rank drives among `count` visible ones: LOCAL_RANK when set, else `rank`, modulo
// `count`. The NCCL communicator and the trainer agree through this one function.
int LocalDeviceOrdinal(int rank, int count);

// Makes `device` current for this thread and allows TF32 matmuls and convolutions on CUDA (as
// PyTorch's torch.backends.cuda.matmul.allow_tf32 does); a no-op on the CPU.
void PrepareDevice(const torch::Device& device);

// Waits until every kernel queued on `device` finished (for timing); a no-op on the CPU.
void SynchronizeDevice(const torch::Device& device);

// Dense matmul throughput of `device` in `dtype` (FLOP/s, the MFU denominator): square products
// of 1024 on the CPU and 8192 on a GPU for about 0.3 s after a warm-up. Float32 on a GPU runs
// as TF32 (PrepareDevice allows it), as training does. Uses its own generator, so the global
// random state is untouched.
double MeasureMatmulFlops(const torch::Device& device, torch::Dtype dtype);

// The default random generator of `device` (CPU or the given GPU), for saving and restoring its
// state with a checkpoint.
at::Generator DefaultGenerator(const torch::Device& device);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DEVICE_DEVICE_H_
