// `copyforge coordinator`: the gRPC server of JobService, WorkerService and CheckpointService.
// Jobs, generations and checkpoints are kept in SQLite under the state directory; workers are
// soft state that re-registers after a coordinator restart. A scheduler thread assigns idle
// workers to waiting jobs, detects missed heartbeats and restarts jobs from their latest
// checkpoint (elastic between min_workers and max_workers).
#ifndef COPYFORGE_COORDINATOR_COORDINATOR_H_
#define COPYFORGE_COORDINATOR_COORDINATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace copyforge {

struct CoordinatorOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 = an ephemeral port (see Coordinator::port)
  std::string state_dir;
  double heartbeat_timeout_s = 10;  // a worker silent this long is dead
  int heartbeat_interval_ms = 500;  // what workers are told to use
  // A file holding the bearer token JobService callers must send ("authorization: Bearer T");
  // empty disables auth.
  std::string job_token_file;
  // The same for WorkerService callers.
  std::string worker_token_file;
};

class Coordinator {
 public:
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(const CoordinatorOptions& options);
  ~Coordinator();
  int port() const;
  // Blocks until Shutdown (from another thread or a signal handler's thread).
  void Wait();
  void Shutdown();

  class Impl;

 private:
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_COORDINATOR_H_
