#include "coordinator/auth.h"

namespace copyforge {

absl::StatusOr<std::unique_ptr<CoordinatorAuth>> CoordinatorAuth::Create(
    const AuthOptions& options) {
  std::unique_ptr<CoordinatorAuth> auth(new CoordinatorAuth());
  for (const auto& [path, slot] : {std::pair{&options.job_token_file, &auth->job_},
                                   std::pair{&options.worker_token_file, &auth->worker_},
                                   std::pair{&options.reader_token_file, &auth->reader_}}) {
    auto file = OpenOptionalTokenFile(*path);
    if (!file.ok()) return file.status();
    *slot = *std::move(file);
  }
  return auth;
}

grpc::Status CoordinatorAuth::Check(const grpc::ServerContextBase& context, Role role) const {
  const TokenFile* primary = role == Role::kJobAdmin ? job_.get()
                             : role == Role::kWorker ? worker_.get()
                                                     : reader_.get();
  // Reads are open only when neither the reader nor the job token is set.
  const TokenFile* also = role == Role::kReader ? job_.get() : nullptr;
  if (primary == nullptr && also == nullptr) return grpc::Status::OK;
  const std::string presented = PresentedBearer(context.client_metadata());
  const bool ok = (primary != nullptr && primary->Accepts(presented)) |
                  (also != nullptr && also->Accepts(presented));
  return ok ? grpc::Status::OK : Unauthenticated();
}

}  // namespace copyforge
