#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "absl/strings/str_cat.h"
#include "trainer/dist/communicator.h"
#include "trainer/dist/rendezvous.h"

namespace copyforge {
namespace {

absl::Status CollectiveError(const std::string& what, int rank, const std::exception& e) {
  return copyforge::CollectiveError("gloo", what, rank, e);
}

class GlooPending : public PendingCollective {
 public:
  GlooPending(c10::intrusive_ptr<c10d::Work> work, int rank, std::chrono::milliseconds timeout)
      : work_(std::move(work)), rank_(rank), timeout_(timeout) {}
  absl::Status Wait() override {
    try {
      if (!work_->wait(timeout_))
        return absl::DeadlineExceededError(
            absl::StrCat("gloo rank ", rank_, ": all-reduce timed out"));
    } catch (const std::exception& e) {
      return CollectiveError("all-reduce", rank_, e);
    }
    return absl::OkStatus();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  int rank_;
  std::chrono::milliseconds timeout_;
};

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank, int world,
                   std::chrono::milliseconds timeout)
      : group_(std::move(group)), rank_(rank), world_(world), timeout_(timeout) {}

  absl::StatusOr<std::unique_ptr<PendingCollective>> AllReduceSumAsync(
      torch::Tensor& tensor) override {
    try {
      std::vector<at::Tensor> tensors = {tensor};
      return std::unique_ptr<PendingCollective>(
          new GlooPending(group_->allreduce(tensors), rank_, timeout_));
    } catch (const std::exception& e) {
      return CollectiveError("all-reduce", rank_, e);
    }
  }

  absl::Status Broadcast(torch::Tensor& tensor, int root) override {
    try {
      std::vector<at::Tensor> tensors = {tensor};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      opts.timeout = timeout_;
      if (!group_->broadcast(tensors, opts)->wait(timeout_)) {
        return absl::DeadlineExceededError(
            absl::StrCat("gloo rank ", rank_, ": broadcast timed out"));
      }
    } catch (const std::exception& e) {
      return CollectiveError("broadcast", rank_, e);
    }
    return absl::OkStatus();
  }

  absl::Status Barrier() override {
    try {
      c10d::BarrierOptions opts;
      opts.timeout = timeout_;
      if (!group_->barrier(opts)->wait(timeout_)) {
        return absl::DeadlineExceededError(
            absl::StrCat("gloo rank ", rank_, ": barrier timed out"));
      }
    } catch (const std::exception& e) {
      return CollectiveError("barrier", rank_, e);
    }
    return absl::OkStatus();
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string backend() const override { return "gloo"; }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  int rank_, world_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(const CommunicatorOptions& o) {
  try {
    auto store = ConnectStore(o);
    auto options = c10d::ProcessGroupGloo::Options::create(o.timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.store_host));
    options->threads = 2;
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.world, options);
    return std::unique_ptr<Communicator>(new GlooCommunicator(group, o.rank, o.world, o.timeout));
  } catch (const std::exception& e) {
    return CollectiveError(absl::StrCat("rendezvous at ", o.store_host, ":", o.store_port), o.rank,
                           e);
  }
}

}  // namespace copyforge
