// `copyforge worker`: the agent on each training machine. It registers with the coordinator,
// heartbeats from its own loop, runs its rank of a job as a child `copyforge train` process (so
// an abort is a signal, never a wedged collective in this process), reports progress from the
// run's metrics, registers the checkpoints rank 0 writes, and leaves cleanly on SIGTERM.
#ifndef COPYFORGE_WORKER_WORKER_H_
#define COPYFORGE_WORKER_WORKER_H_

#include <string>

#include "absl/status/status.h"
#include "protos/rpc_security.h"

namespace copyforge {

struct WorkerOptions {
  std::string coordinator;         // host:port
  std::string workdir;             // per-generation configs and trainer logs
  std::string worker_id;           // default: hostname-pid
  std::string host = "127.0.0.1";  // the address peers use for this worker's rendezvous store
  std::string device = "cpu";
  int threads = 0;           // trainer intra-op threads (0: all cores)
  std::string token_file;    // the coordinator's worker token (re-read when it changes)
  TlsFiles tls;              // TLS to the coordinator (its CA; this worker's client certificate)
  double stop_grace_s = 10;  // SIGTERM to the trainer, then SIGKILL after this long
  // Rewritten (with the time) every few seconds while the worker's loop runs, whether or not the
  // coordinator answers: a liveness probe reads its age (a hung worker stops updating it).
  std::string alive_file;
};

// Runs until SIGTERM/SIGINT; returns OK after a clean exit.
absl::Status RunWorker(const WorkerOptions& options);

}  // namespace copyforge

#endif  // COPYFORGE_WORKER_WORKER_H_
