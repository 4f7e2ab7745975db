// CheckpointService: serving replicas follow a job's checkpoints. Needs the reader (or job)
// token.
#include "coordinator/services.h"
#include "protos/grpc_status.h"

namespace copyforge {

grpc::Status CheckpointServiceImpl::ListCheckpoints(grpc::ServerContext* context,
                                                    const v1::ListCheckpointsRequest* request,
                                                    v1::ListCheckpointsResponse* response) {
  if (auto st = auth_->Check(*context, Role::kReader); !st.ok()) return st;
  auto list = state_->ListCheckpoints(request->job_id());
  if (!list.ok()) return ToGrpc(list.status());
  for (v1::Checkpoint& c : *list) *response->add_checkpoints() = std::move(c);
  return grpc::Status::OK;
}

grpc::Status CheckpointServiceImpl::GetLatestCheckpoint(
    grpc::ServerContext* context, const v1::GetLatestCheckpointRequest* request,
    v1::Checkpoint* response) {
  if (auto st = auth_->Check(*context, Role::kReader); !st.ok()) return st;
  auto latest = state_->LatestCheckpoint(request->job_id());
  if (!latest.ok()) return ToGrpc(latest.status());
  *response = *std::move(latest);
  return grpc::Status::OK;
}

grpc::Status CheckpointServiceImpl::WatchCheckpoints(grpc::ServerContext* context,
                                                     const v1::WatchCheckpointsRequest* request,
                                                     grpc::ServerWriter<v1::Checkpoint>* writer) {
  if (auto st = auth_->Check(*context, Role::kReader); !st.ok()) return st;
  if (!streams_->Acquire()) return TooManyStreams(*streams_);
  std::map<std::string, int64_t> sent;  // job -> newest step sent
  grpc::Status result = grpc::Status::CANCELLED;
  for (bool first = true; !context->IsCancelled(); first = false) {
    auto out = state_->AwaitCheckpoints(request->job_id(), &sent, first, absl::Milliseconds(500));
    if (!out.ok()) {
      result = ToGrpc(out.status());
      break;
    }
    bool written = true;
    for (const v1::Checkpoint& c : *out) written = written && writer->Write(c);
    if (!written) break;
  }
  streams_->Release();
  return result;
}

}  // namespace copyforge
