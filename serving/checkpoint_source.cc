#include "serving/checkpoint_source.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "control.grpc.pb.h"
#include "protos/grpc_status.h"
#include "trainer/checkpoint/run_dir.h"

namespace copyforge {
namespace {

// Sleeps up to `seconds` in short slices, returning early once `stopped` is set.
void SleepUnless(const std::atomic<bool>& stopped, double seconds) {
  for (int i = 0; i < seconds * 20 && !stopped; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

class RunDirectorySource : public CheckpointSource {
 public:
  RunDirectorySource(std::string dir, double poll_s) : dir_(std::move(dir)), poll_s_(poll_s) {}
  absl::StatusOr<std::string> Latest() override {
    const auto list = ListCheckpoints(dir_);
    if (list.empty()) return absl::NotFoundError(absl::StrCat(dir_, " has no checkpoint yet"));
    return list.back();
  }
  void Follow(const std::function<void(const std::string&)>& on_checkpoint) override {
    while (!stopped_) {
      const auto list = ListCheckpoints(dir_);
      if (!list.empty()) on_checkpoint(list.back());
      SleepUnless(stopped_, poll_s_);
    }
  }
  void Stop() override { stopped_ = true; }
  std::string Describe() const override { return dir_; }

 private:
  const std::string dir_;
  const double poll_s_;
  std::atomic<bool> stopped_{false};
};

class CoordinatorSource : public CheckpointSource {
 public:
  CoordinatorSource(std::shared_ptr<grpc::Channel> channel, std::string address, std::string job,
                    const TokenFile* token)
      : stub_(v1::CheckpointService::NewStub(channel)),
        address_(std::move(address)),
        job_(std::move(job)),
        token_(token) {}

  absl::StatusOr<std::string> Latest() override {
    grpc::ClientContext c;
    AttachBearer(token_, &c);
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetLatestCheckpointRequest req;
    req.set_job_id(job_);
    v1::Checkpoint latest;
    const grpc::Status st = stub_->GetLatestCheckpoint(&c, req, &latest);
    if (!st.ok())
      return FromGrpc(st, absl::StrCat("latest checkpoint of job ", job_, " from ", address_));
    return latest.path();
  }

  void Follow(const std::function<void(const std::string&)>& on_checkpoint) override {
    while (!stopped_) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopped_) break;
        context_ = std::make_unique<grpc::ClientContext>();
        AttachBearer(token_, context_.get());
      }
      v1::WatchCheckpointsRequest req;
      req.set_job_id(job_);
      auto reader = stub_->WatchCheckpoints(context_.get(), req);
      v1::Checkpoint c;
      while (!stopped_ && reader->Read(&c)) on_checkpoint(c.path());
      reader->Finish();
      SleepUnless(stopped_, 1.0);  // then watch again (the coordinator restarted or dropped us)
    }
  }

  void Stop() override {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    if (context_) context_->TryCancel();
  }
  std::string Describe() const override { return absl::StrCat("job ", job_, " at ", address_); }

 private:
  std::unique_ptr<v1::CheckpointService::Stub> stub_;
  const std::string address_, job_;
  const TokenFile* const token_;
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::unique_ptr<grpc::ClientContext> context_;  // guarded by mu_: the watch in progress
};

}  // namespace

std::unique_ptr<CheckpointSource> CheckpointSource::RunDirectory(const std::string& dir,
                                                                 double poll_s) {
  return std::make_unique<RunDirectorySource>(dir, poll_s);
}

absl::StatusOr<std::unique_ptr<CheckpointSource>> CheckpointSource::Coordinator(
    const std::string& address, const std::string& job, const TlsFiles& tls,
    const TokenFile* token) {
  auto channel = OpenChannel(address, tls);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<CheckpointSource>(
      std::make_unique<CoordinatorSource>(*channel, address, job, token));
}

absl::StatusOr<std::string> WaitForFirstCheckpoint(CheckpointSource& source, double wait_s,
                                                   double poll_s,
                                                   const std::function<bool()>& stop) {
  const auto start = std::chrono::steady_clock::now();
  auto waited = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double next_report = 0;
  while (true) {
    auto latest = source.Latest();
    if (latest.ok()) return latest;
    const bool retry = absl::IsNotFound(latest.status()) || absl::IsUnavailable(latest.status());
    if (!retry || waited() >= wait_s) return latest.status();
    if (stop && stop())
      return absl::CancelledError("stopped while waiting for the first checkpoint");
    if (waited() >= next_report) {
      std::fprintf(stderr, "serve: waiting for the first checkpoint (%s; %.0f of %.0f s)\n",
                   std::string(latest.status().message()).c_str(), waited(), wait_s);
      next_report += 10;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(poll_s, 2.0)));
  }
}

}  // namespace copyforge
