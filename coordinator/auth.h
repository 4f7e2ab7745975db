// Who may call what on the coordinator. Three bearer tokens, each from a file (so Kubernetes
// Secrets can mount them and rotation needs no restart): the job token (JobService: submit,
// cancel, read), the worker token (WorkerService) and the reader token (CheckpointService and
// JobService's reads, for serving replicas and dashboards). A role without a token file is open;
// the start-up exposure rule (protos/rpc_security.h) decides whether that is allowed.
#ifndef COPYFORGE_COORDINATOR_AUTH_H_
#define COPYFORGE_COORDINATOR_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "protos/bearer_token.h"

namespace copyforge {

struct AuthOptions {
  std::string job_token_file;
  std::string worker_token_file;
  std::string reader_token_file;
};

enum class Role { kJobAdmin, kWorker, kReader };

// Thread-safe; constant after Create but for the token files' own reloading.
class CoordinatorAuth {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorAuth>> Create(const AuthOptions& options);
  // OK, or UNAUTHENTICATED with no detail. kReader also accepts the job token.
  grpc::Status Check(const grpc::ServerContextBase& context, Role role) const;
  // Whether every role needs a token (the exposure rule's "authenticated").
  bool AllRolesGuarded() const { return job_ != nullptr && worker_ != nullptr; }

 private:
  CoordinatorAuth() = default;
  std::unique_ptr<TokenFile> job_, worker_, reader_;  // null: that role is open
};

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_AUTH_H_
