// `copyforge coordinator`: the gRPC server of JobService, WorkerService and CheckpointService.
// Jobs, generations and checkpoints are kept in SQLite under the state directory; workers are
// soft state that re-registers after a coordinator restart. A scheduler thread assigns idle
// workers to waiting jobs, detects missed heartbeats and restarts jobs from their latest
// checkpoint (elastic between min_workers and max_workers). The parts: auth.h (who may call
// what), cluster_state.h (state and transitions), placement.h (which workers get a job),
// storage_roots.h (path confinement), checkpoint_verifier.h, services.h (the gRPC adapters).
#ifndef COPYFORGE_COORDINATOR_COORDINATOR_H_
#define COPYFORGE_COORDINATOR_COORDINATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/auth.h"
#include "coordinator/storage_roots.h"
#include "protos/rpc_security.h"

namespace copyforge {

struct CoordinatorOptions {
  std::string host = "127.0.0.1";  // a non-loopback address needs TLS and auth (or --insecure)
  int port = 0;                    // 0 = an ephemeral port (see Coordinator::port)
  std::string state_dir;
  double heartbeat_timeout_s = 10;  // a worker silent this long is dead
  int heartbeat_interval_ms = 500;  // what workers are told to use
  AuthOptions auth;                 // token files per role
  TlsFiles tls;                     // server certificate; with a CA, mutual TLS
  bool insecure = false;            // allow a non-loopback host without TLS and auth
  StorageRoots roots;               // where job data and run directories may lie (required)
  int max_jobs = 1000;
  int64_t max_spec_bytes = 64 << 10;
  int max_watch_streams = 64;
  int verifier_threads = 2;
  int max_pending_verifications = 16;
  RpcServerLimits limits;
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
