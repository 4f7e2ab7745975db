#include "trainer/dist/communicator.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/str_cat.h"
#include "trainer/dist/rendezvous.h"

namespace copyforge {

#ifdef COPYFORGE_WITH_GLOO
absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(
    const CommunicatorOptions& options);
#endif
#ifdef COPYFORGE_WITH_NCCL
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const CommunicatorOptions& options);
#endif

c10::intrusive_ptr<c10d::Store> ConnectStore(const CommunicatorOptions& o) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(o.store_port);
  store_options.isServer = o.rank == 0;
  store_options.numWorkers = o.world;
  store_options.waitWorkers = true;
  store_options.timeout = o.timeout;
  return c10::make_intrusive<c10d::TCPStore>(o.store_host, store_options);
}

absl::Status CollectiveError(const std::string& backend, const std::string& what, int rank,
                             const std::exception& e) {
  const std::string message = e.what();
  const bool timeout =
      message.find("imeout") != std::string::npos || message.find("imed out") != std::string::npos;
  const std::string text = absl::StrCat(backend, " rank ", rank, ": ", what, " failed",
                                        timeout ? " (timed out: a peer is dead or stuck)" : "",
                                        ": ", message.substr(0, message.find('\n')));
  return timeout ? absl::DeadlineExceededError(text) : absl::UnavailableError(text);
}

std::string ResolveBackend(const std::string& backend, const torch::Device& device) {
  if (backend != "auto") return backend;
  return device.is_cuda() ? "nccl" : "gloo";
}

absl::Status CheckBackendFitsDevice(const std::string& backend, const torch::Device& device) {
  if (backend == "nccl" && !device.is_cuda()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dist.backend nccl all-reduces CUDA tensors but device is ", device.str(),
                     "; use device cuda, or dist.backend gloo (or auto) on the CPU"));
  }
  if (backend == "gloo" && device.is_cuda()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dist.backend gloo runs on the CPU but device is ", device.str(),
                     "; use dist.backend nccl (or auto) on a GPU"));
  }
  return absl::OkStatus();
}

namespace {

// A backend this build left out: says which, why, and what to use instead (unused when every
// backend is built).
[[maybe_unused]] absl::Status NotInThisBuild(const std::string& backend, const std::string& because,
                                             const std::string& instead) {
  return absl::UnimplementedError(absl::StrCat(
      "backend \"", backend, "\" is not available in this build (", because, "); use ", instead));
}

}  // namespace

absl::Status Communicator::AllReduceSum(torch::Tensor& tensor) {
  auto pending = AllReduceSumAsync(tensor);
  if (!pending.ok()) return pending.status();
  return (*pending)->Wait();
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(
    const CommunicatorOptions& options) {
  if (options.world < 1 || options.rank < 0 || options.rank >= options.world) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " is outside a world of ", options.world));
  }
  if (options.backend == "gloo") {
#ifdef COPYFORGE_WITH_GLOO
    return CreateGlooCommunicator(options);
#else
    return NotInThisBuild("gloo", "configured with COPYFORGE_WITH_GLOO=OFF",
                          "\"nccl\" on GPUs or the CPU build");
#endif
  }
  if (options.backend == "nccl") {
#ifdef COPYFORGE_WITH_NCCL
    return CreateNcclCommunicator(options);
#else
    return NotInThisBuild("nccl", "CUDA and NCCL were not found when it was configured",
                          "\"gloo\"");
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend \"", options.backend, "\" (gloo or nccl)"));
}

}  // namespace copyforge
