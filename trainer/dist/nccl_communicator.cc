// NCCL backend: raw NCCL collectives on CUDA memory, one GPU per rank. Rank 0 creates the
// ncclUniqueId and publishes it in the rendezvous store; the others read it from there. The
// communicator is non-blocking (ncclConfig_t.blocking = 0) so that every wait can be bounded: a
// collective that does not finish within the timeout aborts the communicator (ncclCommAbort, as
// PyTorch's NCCL watchdog does) and fails with an error naming the rank.
//
// CUDA tensors are reduced in place on the device. CPU tensors (the CPU-only libtorch build) go
// through a pinned host buffer and a device buffer of the same size, reused across steps, so the
// same trainer code runs unchanged on either build.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
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

// A device buffer and its pinned host twin, for staging CPU tensors.
struct Staging {
  void* device = nullptr;
  void* host = nullptr;
  size_t bytes = 0;
};

class NcclCommunicator;

class NcclPending : public PendingCollective {
 public:
  NcclPending(NcclCommunicator* owner, cudaEvent_t done, torch::Tensor tensor, Staging staging,
              std::string what)
      : owner_(owner),
        done_(done),
        tensor_(std::move(tensor)),
        staging_(staging),
        what_(std::move(what)) {}
  ~NcclPending() override;
  absl::Status Wait() override;

 private:
  NcclCommunicator* owner_;
  cudaEvent_t done_;
  torch::Tensor tensor_;
  Staging staging_;
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
    for (auto& [bytes, buffers] : free_) {
      for (Staging& s : buffers) Free(s);
    }
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
    torch::Tensor one = torch::ones({1});
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

  void Release(Staging staging) {
    if (staging.bytes > 0) free_[staging.bytes].push_back(staging);
  }

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
    if (!tensor.is_contiguous()) {
      return absl::InvalidArgumentError(
          absl::StrCat("nccl rank ", rank_, ": ", what, " needs a contiguous tensor"));
    }
    cudaSetDevice(device_);
    const size_t bytes = tensor.numel() * tensor.element_size();
    const size_t count = static_cast<size_t>(tensor.numel());
    Staging staging;
    void* buffer = tensor.data_ptr();
    if (!tensor.is_cuda()) {
      auto acquired = Acquire(bytes);
      if (!acquired.ok()) return acquired.status();
      staging = *acquired;
      std::memcpy(staging.host, tensor.data_ptr(), bytes);
      const cudaError_t copy =
          cudaMemcpyAsync(staging.device, staging.host, bytes, cudaMemcpyHostToDevice, stream_);
      if (copy != cudaSuccess) return CudaFailure(what, copy, staging);
      buffer = staging.device;
    }
    ncclResult_t result = op(buffer, count, *type);
    // A non-blocking communicator may still be enqueueing; wait (bounded) until it has.
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (result == ncclInProgress && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      ncclCommGetAsyncError(comm_, &result);
    }
    if (result != ncclSuccess) {
      Release(staging);
      return Fail(absl::UnavailableError(absl::StrCat(
          "nccl rank ", rank_, ": ", what, " failed to launch: ", ncclGetErrorString(result))));
    }
    if (!tensor.is_cuda()) {
      const cudaError_t copy =
          cudaMemcpyAsync(staging.host, staging.device, bytes, cudaMemcpyDeviceToHost, stream_);
      if (copy != cudaSuccess) return CudaFailure(what, copy, staging);
    }
    cudaEvent_t done;
    const cudaError_t created = cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
    if (created != cudaSuccess) return CudaFailure(what, created, staging);
    cudaEventRecord(done, stream_);
    return std::unique_ptr<PendingCollective>(new NcclPending(this, done, tensor, staging, what));
  }

  absl::StatusOr<Staging> Acquire(size_t bytes) {
    auto& list = free_[bytes];
    if (!list.empty()) {
      Staging s = list.back();
      list.pop_back();
      return s;
    }
    Staging s;
    s.bytes = bytes;
    cudaError_t e = cudaMalloc(&s.device, bytes);
    if (e == cudaSuccess) e = cudaMallocHost(&s.host, bytes);
    if (e != cudaSuccess) {
      Free(s);
      return absl::ResourceExhaustedError(absl::StrCat("nccl rank ", rank_, ": cannot allocate ",
                                                       bytes, " staging bytes: ", CudaText(e)));
    }
    return s;
  }

  static void Free(Staging& s) {
    if (s.device != nullptr) cudaFree(s.device);
    if (s.host != nullptr) cudaFreeHost(s.host);
    s = Staging{};
  }

  absl::Status CudaFailure(const std::string& what, cudaError_t e, Staging staging) {
    Release(staging);
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
  std::map<size_t, std::vector<Staging>> free_;
};

NcclPending::~NcclPending() {
  if (!waited_) Wait().IgnoreError();
  cudaEventDestroy(done_);
}

absl::Status NcclPending::Wait() {
  if (waited_) return absl::OkStatus();
  waited_ = true;
  absl::Status status = owner_->WaitFor(done_, what_);
  if (status.ok() && staging_.bytes > 0) {
    std::memcpy(tensor_.data_ptr(), staging_.host, staging_.bytes);
  }
  // After a failure the staging buffers may still be in use by aborted work; they are freed with
  // the communicator.
  owner_->Release(staging_);
  return status;
}

// The GPU this rank drives: LOCAL_RANK when the launcher sets it, else rank modulo the count.
int PickDevice(int rank, int count) {
  if (const char* local = std::getenv("LOCAL_RANK")) return std::atoi(local) % count;
  return rank % count;
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
  const int device = PickDevice(o.rank, count);
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
  const cudaError_t made = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (made != cudaSuccess) {
    ncclCommDestroy(comm);
    return absl::InternalError(
        absl::StrCat("nccl rank ", o.rank, ": cannot create a CUDA stream: ", CudaText(made)));
  }
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(comm, stream, device, o.rank, o.world, o.timeout));
}

}  // namespace copyforge
