// The coordinator's three gRPC services: thin adapters that check the caller's role
// (coordinator/auth.h), convert requests and statuses, and call ClusterState. Each lives in its
// own file (job_service.cc, worker_service.cc, checkpoint_service.cc). The pointers they hold
// are owned by the Coordinator and outlive the server.
#ifndef COPYFORGE_COORDINATOR_SERVICES_H_
#define COPYFORGE_COORDINATOR_SERVICES_H_

#include <atomic>

#include "control.grpc.pb.h"
#include "coordinator/auth.h"
#include "coordinator/checkpoint_verifier.h"
#include "coordinator/cluster_state.h"

namespace copyforge {

// Bounds the watch streams (WatchJob + WatchCheckpoints) open at once; each holds a thread.
class StreamBudget {
 public:
  explicit StreamBudget(int max_streams) : max_(max_streams) {}
  bool Acquire() {
    if (open_.fetch_add(1) < max_) return true;
    open_.fetch_sub(1);
    return false;
  }
  void Release() { open_.fetch_sub(1); }
  int max() const { return max_; }

 private:
  const int max_;
  std::atomic<int> open_{0};
};

class JobServiceImpl final : public v1::JobService::Service {
 public:
  JobServiceImpl(ClusterState* state, const CoordinatorAuth* auth, StreamBudget* streams)
      : state_(state), auth_(auth), streams_(streams) {}
  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::Job>* writer) override;

 private:
  ClusterState* const state_;
  const CoordinatorAuth* const auth_;
  StreamBudget* const streams_;
};

// The callback API: RegisterCheckpoint answers from the verifier's thread once the manifest has
// been checked, holding no gRPC thread meanwhile.
class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  WorkerServiceImpl(ClusterState* state, const CoordinatorAuth* auth, CheckpointVerifier* verifier)
      : state_(state), auth_(auth), verifier_(verifier) {}
  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* context,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* RegisterCheckpoint(grpc::CallbackServerContext* context,
                                               const v1::RegisterCheckpointRequest* request,
                                               v1::Checkpoint* response) override;

 private:
  ClusterState* const state_;
  const CoordinatorAuth* const auth_;
  CheckpointVerifier* const verifier_;
};

class CheckpointServiceImpl final : public v1::CheckpointService::Service {
 public:
  CheckpointServiceImpl(ClusterState* state, const CoordinatorAuth* auth, StreamBudget* streams)
      : state_(state), auth_(auth), streams_(streams) {}
  grpc::Status ListCheckpoints(grpc::ServerContext* context,
                               const v1::ListCheckpointsRequest* request,
                               v1::ListCheckpointsResponse* response) override;
  grpc::Status GetLatestCheckpoint(grpc::ServerContext* context,
                                   const v1::GetLatestCheckpointRequest* request,
                                   v1::Checkpoint* response) override;
  grpc::Status WatchCheckpoints(grpc::ServerContext* context,
                                const v1::WatchCheckpointsRequest* request,
                                grpc::ServerWriter<v1::Checkpoint>* writer) override;

 private:
  ClusterState* const state_;
  const CoordinatorAuth* const auth_;
  StreamBudget* const streams_;
};

// RESOURCE_EXHAUSTED naming the limit.
grpc::Status TooManyStreams(const StreamBudget& budget);

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_SERVICES_H_
