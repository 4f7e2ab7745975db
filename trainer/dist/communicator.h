// Collectives for data-parallel training behind one interface. Gloo (through c10d's
// ProcessGroupGloo, the engine PyTorch DDP uses on CPU) is built here; every collective has a
// timeout so a dead peer fails the call with an error naming the backend and rank instead of
// hanging it.
#ifndef COPYFORGE_TRAINER_DIST_COMMUNICATOR_H_
#define COPYFORGE_TRAINER_DIST_COMMUNICATOR_H_

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

struct CommunicatorOptions {
  std::string backend = "gloo";
  int rank = 0;
  int world = 1;
  // Rendezvous: rank 0 serves a TCP key-value store at store_host:store_port, the others connect.
  std::string store_host = "127.0.0.1";
  int store_port = 29500;
  std::chrono::milliseconds timeout{30000};
  // nccl: the GPU this rank drives (-1: LocalDeviceOrdinal, from LOCAL_RANK or the rank).
  int device_index = -1;
};

// A collective in flight; Wait blocks until it completes or the timeout passes.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual absl::Status Wait() = 0;
};

// One per process and rank; not thread-safe (issue collectives from one thread, in the same order
// on every rank).
class Communicator {
 public:
  virtual ~Communicator() = default;
  // Sums `tensor` in place across ranks (AllReduceSumAsync, then Wait).
  absl::Status AllReduceSum(torch::Tensor& tensor);
  // Starts summing `tensor` in place; the tensor must stay alive and untouched until Wait.
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> AllReduceSumAsync(
      torch::Tensor& tensor) = 0;
  // Copies `tensor` of rank `root` into every rank's `tensor`.
  virtual absl::Status Broadcast(torch::Tensor& tensor, int root) = 0;
  virtual absl::Status Barrier() = 0;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual std::string backend() const = 0;
};

// "auto" is nccl on a CUDA device and gloo on the CPU; any other name is returned as it is.
std::string ResolveBackend(const std::string& backend, const torch::Device& device);

// NCCL reduces tensors on a GPU and Gloo (as used here) on the CPU: another pairing is an
// INVALID_ARGUMENT naming both.
absl::Status CheckBackendFitsDevice(const std::string& backend, const torch::Device& device);

// Connects to the others (rendezvous) and returns the communicator, or an error naming what
// failed ("gloo rank 1: ..."). An unknown backend, or "nccl" in a build or on a machine without
// it, is an error saying so.
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(
    const CommunicatorOptions& options);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DIST_COMMUNICATOR_H_
