// NCCL backend: raw NCCL collectives on CUDA memory, one GPU per rank. Rank 0 creates the
// ncclUniqueId and publishes it in the rendezvous store; the others read it from there. The
// communicator is non-blocking (ncclConfig_t.blocking = 0) so that every wait can be bounded: a
// collective that does not finish within the timeout aborts the communicator (ncclCommAbort, as
// PyTorch's NCCL watchdog does) and fails with an error naming the rank.
//
// Tensors are reduced in place on the device, with no staging copy. Each collective is ordered
// after the work libtorch queued on its current CUDA stream (the kernels that produced the tensor,
// such as backward's gradient copies into a bucket) by an event that the communicator's stream
// waits on, so it never reads a tensor before it is written; Wait returns once the collective's
// own event completed, after which libtorch's stream may use the result. CPU tensors are refused:
// on the CPU the gloo backend reduces them.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "trainer/device/device.h"
#include "trainer/device/torch_compat.h"
#include "trainer/dist/communicator.h"
#include "trainer/dist/rendezvous.h"

namespace copyforge {
namespace {

constexpr char kUniqueIdKey[] = "copyforge/nccl_unique_id";

std::string CudaText(cudaError_t e) {
  return absl::StrCat(cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

absl::StatusOr<ncclDataType_t> NcclType(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32:
      return ncclFloat32;
    case torch::kFloat64:
      return ncclFloat64;
    case torch::kFloat16:
      return ncclFloat16;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kInt32:
      return ncclInt32;
    case torch::kInt64:
      return ncclInt64;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("nccl: unsupported tensor dtype ", c10::toString(type)));
  }
}

class NcclCommunicator;

class NcclPending : public PendingCollective {
 public:
  // Holds `tensor` so that its memory stays allocated until the collective completed.
  NcclPending(NcclCommunicator* owner, cudaEvent_t done, torch::Tensor tensor, std::string what)
      : owner_(owner), done_(done), tensor_(std::move(tensor)), what_(std::move(what)) {}
  ~NcclPending() override;
  absl::Status Wait() override;

 private:
  NcclCommunicator* owner_;
  cudaEvent_t done_;
  torch::Tensor tensor_;
  std::string what_;
  bool waited_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, cudaStream_t stream, int device, int rank, int world,
                   std::chrono::milliseconds timeout)
      : comm_(comm),
        stream_(stream),
        device_(device),
        rank_(rank),
        world_(world),
        timeout_(timeout) {}

  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    if (comm_ != nullptr) {
      if (broken_) {
        ncclCommAbort(comm_);
      } else {
        cudaStreamSynchronize(stream_);
        ncclCommDestroy(comm_);
      }
    }
    if (ready_ != nullptr) cudaEventDestroy(ready_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::StatusOr<std::unique_ptr<PendingCollective>> AllReduceSumAsync(
      torch::Tensor& tensor) override {
    return Launch(tensor, "all-reduce", [&](void* buffer, size_t count, ncclDataType_t type) {
      return ncclAllReduce(buffer, buffer, count, type, ncclSum, comm_, stream_);
    });
  }

  absl::Status Broadcast(torch::Tensor& tensor, int root) override {
    auto pending =
        Launch(tensor, "broadcast", [&](void* buffer, size_t count, ncclDataType_t type) {
          return ncclBroadcast(buffer, buffer, count, type, root, comm_, stream_);
        });
    if (!pending.ok()) return pending.status();
    return (*pending)->Wait();
  }

  absl::Status Barrier() override {
    torch::Tensor one;
    try {
      one = torch::ones({1}, torch::TensorOptions().device(torch::kCUDA, device_));
    } catch (const c10::Error& e) {
      return absl::FailedPreconditionError(absl::StrCat(
          "nccl rank ", rank_, ": barrier needs a CUDA tensor: ", e.what_without_backtrace()));
    }
    return AllReduceSum(one);
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string backend() const override { return "nccl"; }

  // Polls `done` (and the communicator's asynchronous error) until the work finishes, fails, or
  // the timeout passes; on failure the communicator is aborted so that no rank blocks on it.
  absl::Status WaitFor(cudaEvent_t done, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (true) {
      const cudaError_t state = cudaEventQuery(done);
      if (state == cudaSuccess) return absl::OkStatus();
      if (state != cudaErrorNotReady) {
        return Fail(absl::InternalError(
            absl::StrCat("nccl rank ", rank_, ": ", what, " failed: ", CudaText(state))));
      }
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        return Fail(absl::UnavailableError(absl::StrCat("nccl rank ", rank_, ": ", what,
                                                        " failed: ", ncclGetErrorString(async),
                                                        " (", ncclGetLastError(comm_), ")")));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return Fail(absl::DeadlineExceededError(
            absl::StrCat("nccl rank ", rank_, ": ", what, " timed out after ",
                         timeout_.count() / 1000.0, " s (a peer is dead or stuck); aborted")));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // The event that orders a collective after libtorch's current stream; created with the
  // communicator (see Create).
  void set_ready_event(cudaEvent_t ready) { ready_ = ready; }

 private:
  template <typename Op>
  absl::StatusOr<std::unique_ptr<PendingCollective>> Launch(torch::Tensor& tensor,
                                                            const std::string& what, Op op) {
    if (broken_) {
      return absl::FailedPreconditionError(
          absl::StrCat("nccl rank ", rank_,
                       ": the communicator was aborted after an earlier "
                       "failure; create a new one (re-rendezvous)"));
    }
    auto type = NcclType(tensor.scalar_type());
    if (!type.ok()) return type.status();
    if (!tensor.is_cuda()) {
      return absl::InvalidArgumentError(
          absl::StrCat("nccl rank ", rank_, ": ", what, " needs a CUDA tensor, got one on ",
                       tensor.device().str(), " (CPU tensors are reduced by the gloo backend)"));
    }
    if (tensor.device().index() != device_) {
      return absl::InvalidArgumentError(absl::StrCat("nccl rank ", rank_, ": ", what,
                                                     " got a tensor on ", tensor.device().str(),
                                                     ", but this rank drives cuda:", device_));
    }
    if (!tensor.is_contiguous()) {
      return absl::InvalidArgumentError(
          absl::StrCat("nccl rank ", rank_, ": ", what, " needs a contiguous tensor"));
    }
    cudaSetDevice(device_);
    // After whatever libtorch queued that writes the tensor.
    auto producer = static_cast<cudaStream_t>(compat::CurrentCudaStream(device_));
    cudaError_t ordered = cudaEventRecord(ready_, producer);
    if (ordered == cudaSuccess) ordered = cudaStreamWaitEvent(stream_, ready_, 0);
    if (ordered != cudaSuccess) return CudaFailure(what, ordered);
    ncclResult_t result = op(tensor.data_ptr(), static_cast<size_t>(tensor.numel()), *type);
    // A non-blocking communicator may still be enqueueing; wait (bounded) until it has.
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (result == ncclInProgress && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      ncclCommGetAsyncError(comm_, &result);
    }
    if (result != ncclSuccess) {
      return Fail(absl::UnavailableError(absl::StrCat(
          "nccl rank ", rank_, ": ", what, " failed to launch: ", ncclGetErrorString(result))));
    }
    cudaEvent_t done;
    const cudaError_t created = cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
    if (created != cudaSuccess) return CudaFailure(what, created);
    cudaEventRecord(done, stream_);
    return std::unique_ptr<PendingCollective>(new NcclPending(this, done, tensor, what));
  }

  absl::Status CudaFailure(const std::string& what, cudaError_t e) {
    return Fail(absl::InternalError(
        absl::StrCat("nccl rank ", rank_, ": ", what, " failed: ", CudaText(e))));
  }

  absl::Status Fail(absl::Status status) {
    broken_ = true;
    return status;
  }

  ncclComm_t comm_;
  cudaStream_t stream_;
  int device_, rank_, world_;
  std::chrono::milliseconds timeout_;
  bool broken_ = false;
  cudaEvent_t ready_ = nullptr;
};

NcclPending::~NcclPending() {
  if (!waited_) Wait().IgnoreError();
  cudaEventDestroy(done_);
}

absl::Status NcclPending::Wait() {
  if (waited_) return absl::OkStatus();
  waited_ = true;
  return owner_->WaitFor(done_, what_);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const CommunicatorOptions& o) {
  int count = 0;
  const cudaError_t probe = cudaGetDeviceCount(&count);
  if (probe != cudaSuccess || count == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("nccl rank ", o.rank, ": no CUDA device is visible (cudaGetDeviceCount: ",
                     probe == cudaSuccess ? "0 devices" : CudaText(probe),
                     "); the nccl backend needs one GPU per rank; use backend \"gloo\" on CPU"));
  }
  if (o.device_index >= count) {
    return absl::InvalidArgumentError(absl::StrCat("nccl rank ", o.rank, ": cuda:", o.device_index,
                                                   " is not among the ", count, " visible GPUs"));
  }
  const int device = o.device_index >= 0 ? o.device_index : LocalDeviceOrdinal(o.rank, count);
  cudaSetDevice(device);

  ncclUniqueId id;
  try {
    auto store = ConnectStore(o);
    if (o.rank == 0) {
      const ncclResult_t made = ncclGetUniqueId(&id);
      if (made != ncclSuccess) {
        return absl::UnavailableError(
            absl::StrCat("nccl rank 0: ncclGetUniqueId failed: ", ncclGetErrorString(made)));
      }
      const auto* raw = reinterpret_cast<const uint8_t*>(&id);
      store->set(kUniqueIdKey, std::vector<uint8_t>(raw, raw + sizeof(id)));
    } else {
      const std::vector<uint8_t> raw = store->get(kUniqueIdKey);
      if (raw.size() != sizeof(id)) {
        return absl::DataLossError(absl::StrCat("nccl rank ", o.rank,
                                                ": the unique id in the store has ", raw.size(),
                                                " bytes, expected ", sizeof(id)));
      }
      std::memcpy(&id, raw.data(), sizeof(id));
    }
  } catch (const std::exception& e) {
    return CollectiveError("nccl", absl::StrCat("rendezvous at ", o.store_host, ":", o.store_port),
                           o.rank, e);
  }

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t result = ncclCommInitRankConfig(&comm, o.world, id, o.rank, &config);
  const auto deadline = std::chrono::steady_clock::now() + o.timeout;
  while (result == ncclInProgress && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ncclCommGetAsyncError(comm, &result);
  }
  if (result != ncclSuccess) {
    const std::string why = result == ncclInProgress ? "timed out (a peer is dead or stuck)"
                                                     : ncclGetErrorString(result);
    if (comm != nullptr) ncclCommAbort(comm);
    return absl::UnavailableError(absl::StrCat("nccl rank ", o.rank, ": communicator init on GPU ",
                                               device, " failed: ", why));
  }
  cudaStream_t stream = nullptr;
  cudaEvent_t ready = nullptr;
  cudaError_t made = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (made == cudaSuccess) made = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
  auto communicator =
      std::make_unique<NcclCommunicator>(comm, stream, device, o.rank, o.world, o.timeout);
  communicator->set_ready_event(ready);
  if (made != cudaSuccess) {
    return absl::InternalError(absl::StrCat(
        "nccl rank ", o.rank, ": cannot create a CUDA stream or event: ", CudaText(made)));
  }
  return std::unique_ptr<Communicator>(std::move(communicator));
}

}  // namespace copyforge
