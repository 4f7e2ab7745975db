#include "coordinator/checkpoint_verifier.h"

namespace copyforge {

CheckpointVerifier::CheckpointVerifier(int threads, int max_pending, ManifestLimits limits)
    : max_pending_(max_pending), limits_(limits) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

CheckpointVerifier::~CheckpointVerifier() { Stop(); }

bool CheckpointVerifier::Submit(std::string dir, Done done) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || static_cast<int>(queue_.size()) >= max_pending_) return false;
  queue_.push_back({std::move(dir), std::move(done)});
  return true;
}

void CheckpointVerifier::Stop() {
  std::deque<Work> left;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    left.swap(queue_);
  }
  for (Work& w : left) w.done(absl::UnavailableError("coordinator stopping"));
  for (std::thread& t : threads_) t.join();
}

void CheckpointVerifier::Run() {
  while (true) {
    Work work;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CheckpointVerifier* v) { return v->stopping_ || !v->queue_.empty(); }, this));
      if (queue_.empty()) return;  // stopping
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work.done(VerifyManifest(work.dir, limits_));
  }
}

}  // namespace copyforge
