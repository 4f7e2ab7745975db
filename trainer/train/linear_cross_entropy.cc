#include "trainer/train/linear_cross_entropy.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

namespace copyforge {
namespace {

class LinearCrossEntropyFn : public torch::autograd::Function<LinearCrossEntropyFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets,
                               int64_t ignore_index, torch::ScalarType compute,
                               int64_t chunk_rows) {
    // The casts below are explicit; autocast must not add its own.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(
        c10::DispatchKeySet({c10::DispatchKey::AutocastCPU, c10::DispatchKey::AutocastCUDA}));
    const int64_t n = hidden.size(0), vocab = weight.size(0);
    const torch::Tensor h = hidden.to(compute).contiguous();
    const torch::Tensor w = weight.to(compute);
    const torch::Tensor wt = w.t();
    // d(loss)/d(logits) for every row, in the compute dtype: the input of both gradient matmuls.
    torch::Tensor dlogits = torch::empty({n, vocab}, h.options());
    torch::Tensor total = torch::zeros({}, h.options().dtype(torch::kFloat));
    for (int64_t start = 0; start < n; start += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n - start);
      torch::Tensor logits = torch::mm(h.narrow(0, start, rows), wt).to(torch::kFloat);
      const torch::Tensor t = targets.narrow(0, start, rows);
      const torch::Tensor counted = t != ignore_index;
      const torch::Tensor safe = t.masked_fill(counted.logical_not(), 0).unsqueeze(1);
      const torch::Tensor lse = logits.logsumexp(1, /*keepdim=*/true);
      const torch::Tensor picked = logits.gather(1, safe);
      const torch::Tensor weight_of_row = counted.to(torch::kFloat).unsqueeze(1);
      total += ((lse - picked) * weight_of_row).sum();
      // softmax - one_hot(target), zero for rows that do not count.
      logits.sub_(lse).exp_();
      logits.scatter_add_(1, safe, -torch::ones_like(picked));
      logits.mul_(weight_of_row);
      dlogits.narrow(0, start, rows).copy_(logits);
    }
    torch::Tensor grad_hidden = torch::mm(dlogits, w).to(hidden.scalar_type());
    torch::Tensor grad_weight = torch::mm(dlogits.t(), h).to(weight.scalar_type());
    ctx->saved_data["grad_hidden"] = grad_hidden;
    ctx->saved_data["grad_weight"] = grad_weight;
    return total;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    const torch::Tensor scale = grad_outputs[0];
    return {ctx->saved_data["grad_hidden"].toTensor() * scale,
            ctx->saved_data["grad_weight"].toTensor() * scale,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor LinearCrossEntropySum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets, int64_t ignore_index,
                                    torch::ScalarType compute, int64_t chunk_rows) {
  return LinearCrossEntropyFn::apply(hidden, weight, targets, ignore_index, compute,
                                     std::max<int64_t>(1, chunk_rows));
}

}  // namespace copyforge
