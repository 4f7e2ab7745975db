// JobService: users and the submit Job. Submit and cancel need the job token; reads accept the
// reader token too.
#include "absl/strings/str_cat.h"
#include "coordinator/services.h"
#include "protos/grpc_status.h"

namespace copyforge {

grpc::Status TooManyStreams(const StreamBudget& budget) {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      absl::StrCat("the coordinator already serves its limit of ", budget.max(),
                                   " watch streams (--max-watch-streams)"));
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context,
                                       const v1::SubmitJobRequest* request,
                                       v1::SubmitJobResponse* response) {
  if (auto st = auth_->Check(*context, Role::kJobAdmin); !st.ok()) return st;
  auto submitted = state_->SubmitJob(request->spec_yaml(), request->idempotency_key());
  if (!submitted.ok()) return ToGrpc(submitted.status());
  response->set_job_id(submitted->job_id);
  response->set_existing(submitted->existing);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                                    v1::Job* response) {
  if (auto st = auth_->Check(*context, Role::kReader); !st.ok()) return st;
  auto job = state_->GetJob(request->job_id());
  if (!job.ok()) return ToGrpc(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest*,
                                      v1::ListJobsResponse* response) {
  if (auto st = auth_->Check(*context, Role::kReader); !st.ok()) return st;
  for (v1::Job& job : state_->ListJobs()) *response->add_jobs() = std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request, v1::Job* response) {
  if (auto st = auth_->Check(*context, Role::kJobAdmin); !st.ok()) return st;
  auto job = state_->CancelJob(request->job_id());
  if (!job.ok()) return ToGrpc(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::Job>* writer) {
  if (auto st = auth_->Check(*context, Role::kReader); !st.ok()) return st;
  if (!streams_->Acquire()) return TooManyStreams(*streams_);
  std::string last;
  grpc::Status result = grpc::Status::CANCELLED;
  while (!context->IsCancelled()) {
    auto job = state_->AwaitJob(request->job_id(), last, absl::Milliseconds(500));
    if (!job.ok()) {
      result = ToGrpc(job.status());
      break;
    }
    std::string now = job->SerializeAsString();
    if (now == last) continue;
    if (!writer->Write(*job)) break;
    last = std::move(now);
    const v1::JobState s = job->state();
    if (s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED) {
      result = grpc::Status::OK;
      break;
    }
  }
  streams_->Release();
  return result;
}

}  // namespace copyforge
