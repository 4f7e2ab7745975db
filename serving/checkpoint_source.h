// Where `serve` gets its checkpoints when it follows training: a run directory (polled for the
// newest complete checkpoint) or a coordinator (its WatchCheckpoints stream for one job), behind
// one interface, so the server's reload logic does not care which.
#ifndef COPYFORGE_SERVING_CHECKPOINT_SOURCE_H_
#define COPYFORGE_SERVING_CHECKPOINT_SOURCE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "protos/bearer_token.h"
#include "protos/rpc_security.h"

namespace copyforge {

class CheckpointSource {
 public:
  virtual ~CheckpointSource() = default;
  // The newest checkpoint now: NOT_FOUND while there is none yet, UNAVAILABLE while the source
  // does not answer.
  virtual absl::StatusOr<std::string> Latest() = 0;
  // Calls `on_checkpoint` with each checkpoint the source announces until Stop (blocking: run it
  // on its own thread). The callback decides whether a path is new.
  virtual void Follow(const std::function<void(const std::string&)>& on_checkpoint) = 0;
  // Ends Follow soon (from any thread).
  virtual void Stop() = 0;
  // What the source is, for messages.
  virtual std::string Describe() const = 0;

  static std::unique_ptr<CheckpointSource> RunDirectory(const std::string& dir, double poll_s);
  // `token` (may be null): the coordinator's reader token.
  static absl::StatusOr<std::unique_ptr<CheckpointSource>> Coordinator(const std::string& address,
                                                                       const std::string& job,
                                                                       const TlsFiles& tls,
                                                                       const TokenFile* token);
};

// Waits up to `wait_s` for the source's first checkpoint, retrying while it has none or does not
// answer (a server brought up with its training job), reporting every 10 s; CANCELLED once
// `stop` says so.
absl::StatusOr<std::string> WaitForFirstCheckpoint(CheckpointSource& source, double wait_s,
                                                   double poll_s,
                                                   const std::function<bool()>& stop);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_CHECKPOINT_SOURCE_H_
