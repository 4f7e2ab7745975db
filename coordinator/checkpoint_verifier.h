// Verifies registered checkpoints (manifest sizes and SHA-256 of every file, which takes seconds
// for a large model) on its own threads, off the coordinator's lock and off the gRPC threads.
#ifndef COPYFORGE_COORDINATOR_CHECKPOINT_VERIFIER_H_
#define COPYFORGE_COORDINATOR_CHECKPOINT_VERIFIER_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "trainer/checkpoint/manifest.h"

namespace copyforge {

class CheckpointVerifier {
 public:
  // The manifest's SHA-256, or why the directory was refused.
  using Done = std::function<void(const absl::StatusOr<std::string>&)>;

  CheckpointVerifier(int threads, int max_pending, ManifestLimits limits);
  // Stops; queued work is answered UNAVAILABLE, running work finishes first.
  ~CheckpointVerifier();
  CheckpointVerifier(const CheckpointVerifier&) = delete;
  CheckpointVerifier& operator=(const CheckpointVerifier&) = delete;

  // Queues `dir`; `done` runs on a verifier thread. False (and `done` never runs) when
  // `max_pending` are already queued or the verifier is stopping.
  bool Submit(std::string dir, Done done) ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Work {
    std::string dir;
    Done done;
  };
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const int max_pending_;
  const ManifestLimits limits_;

  absl::Mutex mu_;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // started in the constructor, joined by Stop
};

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_CHECKPOINT_VERIFIER_H_
