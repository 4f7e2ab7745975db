#include "trainer/dist/gradient_reducer.h"

#include <chrono>

namespace copyforge {
namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

struct GradientReducer::Bucket {
  torch::Tensor buffer;  // flat float32
  std::vector<size_t> params;
  size_t ready = 0;
  std::unique_ptr<PendingCollective> pending;
};

GradientReducer::GradientReducer(Communicator* comm, std::vector<torch::Tensor> params,
                                 int64_t bucket_bytes)
    : comm_(comm), params_(std::move(params)), slot_(params_.size()) {
  // Later layers finish backward first, so buckets are filled from the last parameter backwards.
  int64_t used = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t bytes = params_[k].numel() * static_cast<int64_t>(sizeof(float));
    if (buckets_.empty() || (used + bytes > bucket_bytes && !buckets_.back()->params.empty())) {
      buckets_.push_back(std::make_unique<Bucket>());
      used = 0;
    }
    Bucket& b = *buckets_.back();
    slot_[k] = {buckets_.size() - 1, used / static_cast<int64_t>(sizeof(float))};
    b.params.push_back(k);
    used += bytes;
  }
  for (auto& b : buckets_) {
    int64_t numel = 0;
    for (size_t k : b->params) numel += params_[k].numel();
    // On the parameters' device: NCCL reduces GPU buckets in place.
    b->buffer = torch::zeros({numel}, params_[b->params[0]].options().dtype(torch::kFloat));
    stats_.bytes += numel * static_cast<int64_t>(sizeof(float));
  }
  stats_.buckets = static_cast<int>(buckets_.size());
  for (size_t k = 0; k < params_.size(); ++k) {
    params_[k].register_hook([this, k](torch::Tensor grad) {
      OnGradient(k, grad);
      return grad;
    });
  }
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::Arm() {
  armed_ = true;
  error_ = absl::OkStatus();
  for (auto& b : buckets_) {
    b->ready = 0;
    b->pending.reset();
  }
  stats_.wait_seconds = 0;
  armed_at_ = Now();
}

void GradientReducer::OnGradient(size_t k, const torch::Tensor& grad) {
  if (!armed_ || !error_.ok()) return;
  const auto [bi, offset] = slot_[k];
  Bucket& b = *buckets_[bi];
  torch::NoGradGuard no_grad;
  torch::Tensor slice = b.buffer.narrow(0, offset, params_[k].numel());
  // The hook sees this backward's gradient before it is added to .grad, which holds the earlier
  // micro-steps of the accumulation.
  const torch::Tensor& accumulated = params_[k].grad();
  if (accumulated.defined()) {
    slice.copy_((grad + accumulated).reshape({-1}));
  } else {
    slice.copy_(grad.reshape({-1}));
  }
  if (++b.ready == b.params.size()) {
    auto pending = comm_->AllReduceSumAsync(b.buffer);
    if (pending.ok()) {
      b.pending = *std::move(pending);
    } else {
      error_ = pending.status();
    }
  }
}

absl::Status GradientReducer::Finish() {
  armed_ = false;
  const double start = Now();
  absl::Status status = error_;
  for (auto& b : buckets_) {
    if (!status.ok()) break;
    if (b->pending == nullptr) {
      status =
          absl::InternalError("a gradient bucket never filled: a parameter received no gradient");
      break;
    }
    status = b->pending->Wait();
  }
  stats_.wait_seconds = Now() - start;
  stats_.backward_seconds = Now() - armed_at_;
  if (!status.ok()) return status;
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < params_.size(); ++k) {
    const auto [bi, offset] = slot_[k];
    torch::Tensor summed =
        buckets_[bi]->buffer.narrow(0, offset, params_[k].numel()).view_as(params_[k]);
    if (params_[k].grad().defined()) {
      params_[k].mutable_grad().copy_(summed);
    } else {
      params_[k].mutable_grad() = summed.clone();
    }
  }
  return absl::OkStatus();
}

}  // namespace copyforge
