// WorkerService: the worker agents. Every call needs the worker token; after RegisterWorker, a
// worker's calls also carry its session credential (checked by ClusterState).
#include "coordinator/services.h"
#include "protos/grpc_status.h"

namespace copyforge {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const grpc::Status& s) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(s);
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* WorkerServiceImpl::RegisterWorker(
    grpc::CallbackServerContext* context, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  if (auto st = auth_->Check(*context, Role::kWorker); !st.ok()) return Finish(context, st);
  auto registered = state_->RegisterWorker(*request);
  if (registered.ok()) *response = *std::move(registered);
  return Finish(context, ToGrpc(registered.status()));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* context,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse* response) {
  if (auto st = auth_->Check(*context, Role::kWorker); !st.ok()) return Finish(context, st);
  auto answer = state_->Heartbeat(*request);
  if (answer.ok()) *response = *std::move(answer);
  return Finish(context, ToGrpc(answer.status()));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::RegisterCheckpoint(
    grpc::CallbackServerContext* context, const v1::RegisterCheckpointRequest* request,
    v1::Checkpoint* response) {
  if (auto st = auth_->Check(*context, Role::kWorker); !st.ok()) return Finish(context, st);
  auto claim = state_->ClaimCheckpoint(*request);
  if (!claim.ok()) return Finish(context, ToGrpc(claim.status()));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ClusterState* state = state_;
  const CheckpointClaim accepted = *claim;
  const bool queued = verifier_->Submit(
      accepted.checkpoint.path(),
      [state, accepted, reactor, response](const absl::StatusOr<std::string>& sha) {
        auto stored = state->CompleteCheckpoint(accepted, sha);
        if (stored.ok()) *response = *std::move(stored);
        reactor->Finish(ToGrpc(stored.status()));
      });
  if (!queued) {
    state_->ReleaseClaim(accepted);
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "the checkpoint verifier is full or stopping; retry"));
  }
  return reactor;
}

}  // namespace copyforge
