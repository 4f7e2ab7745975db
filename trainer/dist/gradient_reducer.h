// Bucketed gradient all-reduce that overlaps with backward, as DDP does: gradients are copied into
// fixed buckets from autograd hooks as they become ready, and each bucket's all-reduce starts as
// soon as it is full, while backward is still computing earlier layers.
#ifndef COPYFORGE_TRAINER_DIST_GRADIENT_REDUCER_H_
#define COPYFORGE_TRAINER_DIST_GRADIENT_REDUCER_H_

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "trainer/dist/communicator.h"

namespace copyforge {

struct ReducerStats {
  int64_t bytes = 0;  // gradient bytes all-reduced per step
  int buckets = 0;
  double wait_seconds = 0;      // time Finish spent waiting (communication not hidden)
  double backward_seconds = 0;  // from Arm to Finish
};

// Not thread-safe. `comm` must outlive the reducer; `params` must all receive a gradient in every
// backward pass that is armed.
class GradientReducer {
 public:
  GradientReducer(Communicator* comm, std::vector<torch::Tensor> params, int64_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Arms the hooks for the next backward: its gradients (plus what .grad already accumulated) are
  // summed across ranks. Unarmed backwards (earlier micro-steps) do not communicate.
  void Arm();
  // Waits for every bucket and writes the summed gradients into .grad.
  absl::Status Finish();
  const ReducerStats& last() const { return stats_; }

 private:
  struct Bucket;
  void OnGradient(size_t param, const torch::Tensor& grad);
  Communicator* comm_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::pair<size_t, int64_t>> slot_;  // param -> (bucket, offset)
  bool armed_ = false;
  absl::Status error_;
  ReducerStats stats_;
  double armed_at_ = 0;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DIST_GRADIENT_REDUCER_H_
