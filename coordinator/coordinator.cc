#include "coordinator/coordinator.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordinator/services.h"

namespace copyforge {

// Owns the parts in dependency order: the state outlives the verifier and the services, which
// outlive the server.
class Coordinator::Impl {
 public:
  ~Impl() { Stop(); }

  absl::Status Init(const CoordinatorOptions& o) {
    std::error_code ec;
    std::filesystem::create_directories(o.state_dir, ec);
    auto store = JobStore::Open(o.state_dir + "/coordinator.sqlite");
    if (!store.ok()) return store.status();
    ClusterOptions cluster;
    cluster.heartbeat_timeout_s = o.heartbeat_timeout_s;
    cluster.heartbeat_interval_ms = o.heartbeat_interval_ms;
    cluster.roots = o.roots;
    if (absl::Status st = cluster.roots.Resolve(); !st.ok()) return st;
    cluster.max_jobs = o.max_jobs;
    cluster.max_spec_bytes = o.max_spec_bytes;
    auto state = ClusterState::Open(std::move(cluster), *std::move(store));
    if (!state.ok()) return state.status();
    state_ = *std::move(state);
    auto auth = CoordinatorAuth::Create(o.auth);
    if (!auth.ok()) return auth.status();
    auth_ = *std::move(auth);
    verifier_ = std::make_unique<CheckpointVerifier>(o.verifier_threads,
                                                     o.max_pending_verifications, ManifestLimits());
    streams_ = std::make_unique<StreamBudget>(o.max_watch_streams);
    jobs_ = std::make_unique<JobServiceImpl>(state_.get(), auth_.get(), streams_.get());
    workers_ = std::make_unique<WorkerServiceImpl>(state_.get(), auth_.get(), verifier_.get());
    checkpoints_ =
        std::make_unique<CheckpointServiceImpl>(state_.get(), auth_.get(), streams_.get());
    return absl::OkStatus();
  }

  absl::Status Serve(const CoordinatorOptions& o) {
    const bool mutual = !o.tls.ca.empty();
    auto exposure = CheckExposure("coordinator", o.host, !o.tls.cert.empty(),
                                  mutual || auth_->AllRolesGuarded(), o.insecure);
    if (!exposure.ok()) return exposure.status();
    if (!exposure->empty()) std::fprintf(stderr, "%s\n", exposure->c_str());
    auto credentials = MakeServerCredentials(o.tls);
    if (!credentials.ok()) return credentials.status();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat(o.host, ":", o.port), *credentials, &port_);
    ApplyServerLimits(o.limits, &builder);
    builder.RegisterService(jobs_.get());
    builder.RegisterService(workers_.get());
    builder.RegisterService(checkpoints_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", o.host, ":", o.port));
    }
    scheduler_ = std::thread([this] {
      while (!stopping_.load()) {
        state_->Tick();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    return absl::OkStatus();
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    if (state_) state_->Stop();
    // Pending verifications are answered before the server waits for its calls to finish.
    if (verifier_) verifier_->Stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (scheduler_.joinable()) scheduler_.join();
  }

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;

 private:
  std::atomic<bool> stopping_{false};
  std::unique_ptr<ClusterState> state_;
  std::unique_ptr<CoordinatorAuth> auth_;
  std::unique_ptr<CheckpointVerifier> verifier_;
  std::unique_ptr<StreamBudget> streams_;
  std::unique_ptr<JobServiceImpl> jobs_;
  std::unique_ptr<WorkerServiceImpl> workers_;
  std::unique_ptr<CheckpointServiceImpl> checkpoints_;
  std::thread scheduler_;
};

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() { impl_->Stop(); }
int Coordinator::port() const { return impl_->port_; }
void Coordinator::Wait() { impl_->server_->Wait(); }
void Coordinator::Shutdown() { impl_->Stop(); }

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const CoordinatorOptions& o) {
  if (o.state_dir.empty()) return absl::InvalidArgumentError("--state-dir is required");
  auto impl = std::make_unique<Impl>();
  if (absl::Status st = impl->Init(o); !st.ok()) return st;
  if (absl::Status st = impl->Serve(o); !st.ok()) return st;
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

}  // namespace copyforge
