#include "trainer/train/trainer.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/file_util.h"
#include "trainer/common/progress.h"
#include "trainer/common/status_macros.h"
#include "trainer/common/threads.h"
#include "trainer/device/device.h"
#include "trainer/dist/communicator.h"
#include "trainer/dist/gradient_reducer.h"
#include "trainer/model/gpt2.h"
#include "trainer/tokenizer/tokenizer.h"
#include "trainer/train/autocast.h"
#include "trainer/train/linear_cross_entropy.h"
#include "trainer/train/metrics_record.h"
#include "trainer/train/schedule.h"
#include "trainer/train/shard_dataset.h"
#include "trainer/train/tensorboard.h"
#include "trainer/train/train_state.h"

namespace copyforge {
namespace fs = std::filesystem;
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct Trainer::Impl {
  TrainConfig config;
  const std::atomic<bool>* stop = nullptr;  // set by a signal handler (SetStopFlag)
  torch::Device device{torch::kCPU};        // where the model, optimizer and batches live
  Gpt2 model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ShardDataset> train, val;
  std::unique_ptr<BatchSampler> sampler;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  int64_t step = 0;
  double peak_flops = 0;
  Communicator* comm = nullptr;  // null in a single process
  std::unique_ptr<GradientReducer> reducer;
  bool leader() const { return comm == nullptr || comm->rank() == 0; }

  // Sums a scalar over ranks (for loss and target counts).
  absl::StatusOr<double> SumOverRanks(double value) {
    if (comm == nullptr) return value;
    torch::Tensor t = torch::full({1}, value, torch::dtype(torch::kDouble).device(device));
    CF_RETURN_IF_ERROR(comm->AllReduceSum(t));
    return t.item<double>();
  }
  std::vector<int64_t> inputs, targets;

  // One batch drawn from a sampler as [batch, seq] tensors, and how many targets count.
  struct Batch {
    torch::Tensor x, y;
    int64_t counted = 0;
  };
  Batch Draw(BatchSampler& s) {
    s.Next(&inputs, &targets);
    const int64_t b = config.batch_size, t = config.seq_len;
    Batch batch;
    batch.counted = static_cast<int64_t>(std::count_if(
        targets.begin(), targets.end(), [](int64_t y) { return y != kIgnoreTarget; }));
    // On a GPU the batch goes through pinned host memory and is copied without blocking (the
    // caching host allocator keeps the buffer until the copy is done).
    const bool cuda = device.is_cuda();
    const auto host = torch::TensorOptions().dtype(torch::kLong).pinned_memory(cuda);
    batch.x = torch::empty({b, t}, host);
    batch.y = torch::empty({b, t}, host);
    std::memcpy(batch.x.data_ptr<int64_t>(), inputs.data(), sizeof(int64_t) * b * t);
    std::memcpy(batch.y.data_ptr<int64_t>(), targets.data(), sizeof(int64_t) * b * t);
    if (cuda) {
      batch.x = batch.x.to(device, /*non_blocking=*/true);
      batch.y = batch.y.to(device, /*non_blocking=*/true);
    }
    return batch;
  }

  // Summed cross-entropy over the batch's counted targets; the LM head and the loss are one fused
  // node (linear_cross_entropy.h). Row chunks from bench/lce_bench on the CPU: in bfloat16,
  // 64 rows run the head 1.3x faster than matmul + cross_entropy; in float32 the head is bound by
  // the matmuls themselves and 128 rows only match it, but keep ~0.8 GB of logits out of memory.
  // On a GPU a chunk is large enough to fill the device (4096 rows: 0.8 GB of float32 logits).
  torch::Tensor SummedLoss(const Batch& batch) {
    const bool bf16 = config.precision == "bf16";
    Bf16Autocast autocast(device, bf16);
    torch::Tensor hidden = model->Hidden(batch.x);
    const int64_t chunk = device.is_cuda() ? 4096 : (bf16 ? 64 : 128);
    return LinearCrossEntropySum(hidden.reshape({-1, hidden.size(-1)}), model->wte->weight,
                                 batch.y.reshape({-1}), kIgnoreTarget,
                                 bf16 ? torch::kBFloat16 : torch::kFloat, chunk);
  }

  TrainProgress Progress() const {
    return {step, sampler->cursor(), comm == nullptr ? 1 : comm->world()};
  }
};

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;
int64_t Trainer::step() const { return impl_->step; }
void Trainer::SetStopFlag(const std::atomic<bool>* stop) { impl_->stop = stop; }

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainConfig& config,
                                                         Communicator* comm) {
  CF_RETURN_IF_ERROR(config.Validate());
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->comm = comm;
  const int threads = ResolveThreads(config.threads);
  torch::set_num_threads(threads);
  CF_ASSIGN_OR_RETURN(impl->device, ResolveDevice(config.device, "device"));
  if (comm != nullptr) CF_RETURN_IF_ERROR(CheckBackendFitsDevice(comm->backend(), impl->device));
  PrepareDevice(impl->device);
  torch::manual_seed(config.seed);  // the CPU generator and every GPU's

  CF_ASSIGN_OR_RETURN(
      impl->train, ShardDataset::Open(config.data, config.objective, "train", config.verify_data));
  auto val = ShardDataset::Open(config.data, config.objective, "val", config.verify_data);
  if (val.ok()) impl->val = *std::move(val);
  CF_ASSIGN_OR_RETURN(impl->tokenizer, Tokenizer::Load(config.data + "/tokenizer"));
  if (impl->tokenizer->vocab_size() != impl->train->vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.data, "/tokenizer has ", impl->tokenizer->vocab_size(),
                     " tokens but the manifest says the shards use ", impl->train->vocab_size()));
  }
  if (!config.init_from.empty()) {
    LoadOptions options;
    options.load_tokenizer = false;
    CF_ASSIGN_OR_RETURN(LoadedCheckpoint ckpt, LoadCheckpoint(config.init_from, options));
    impl->model = ckpt.model;
  } else {
    CF_ASSIGN_OR_RETURN(Gpt2Config mc, Gpt2Config::FromYamlFile(config.model));
    impl->model = Gpt2(mc);
    impl->model->InitWeights(config.init_seed);
  }
  const Gpt2Config& mc = impl->model->config();
  if (mc.vocab_size < impl->tokenizer->vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model's vocab_size ", mc.vocab_size, " is smaller than the ",
                     impl->tokenizer->vocab_size(), " tokens of ", config.data));
  }
  if (config.seq_len > mc.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "seq_len ", config.seq_len, " exceeds the model's n_positions ", mc.n_positions));
  }
  // A split too small for one window of seq_len + 1 tokens (or without a single pair) would
  // leave the sampler nothing to draw; it is named here instead.
  for (const auto& [split, data] :
       {std::pair<const char*, const ShardDataset*>{"train", impl->train.get()},
        {"val", impl->val.get()}}) {
    if (data == nullptr || data->NumSamples(config.seq_len) >= 1) continue;
    return absl::InvalidArgumentError(
        absl::StrCat(config.data, ": the ", config.objective, " ", split, " split holds ",
                     data->num_tokens(), " tokens, not one sample of seq_len ", config.seq_len,
                     "; lower seq_len, or prepare more data (or a larger split.validation_ratio)"));
  }
  // Parameters (and so the optimizer's moments, created from them) live on the device.
  impl->model->to(impl->device);
  // Decoupled weight decay on matrices (embeddings and Conv1D weights) only.
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [name, p] : impl->model->NamedTensors())
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config.lr)
                                                            .betas({config.beta1, config.beta2})
                                                            .eps(config.eps)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(config.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  impl->optimizer =
      std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(config.lr));
  impl->params = impl->model->parameters();
  impl->sampler =
      std::make_unique<BatchSampler>(*impl->train, config.seq_len, config.batch_size, config.seed,
                                     comm ? comm->rank() : 0, comm ? comm->world() : 1, true);

  if (!config.resume.empty()) {
    std::string dir = config.resume;
    if (dir == "latest") {
      CF_ASSIGN_OR_RETURN(dir, LatestCheckpoint(config.out));
    }
    LoadOptions options;
    options.load_tokenizer = false;
    CF_ASSIGN_OR_RETURN(LoadedCheckpoint ckpt, LoadCheckpoint(dir, options));
    auto from = ckpt.model->NamedTensors();
    auto to = impl->model->NamedTensors();
    if (from.size() != to.size())
      return absl::InvalidArgumentError(absl::StrCat(dir, ": a model of another shape"));
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < to.size(); ++i) {
      if (from[i].second.sizes() != to[i].second.sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat(dir, ": tensor ", from[i].first, " has another shape than the model"));
      }
      to[i].second.copy_(from[i].second);
    }
    CF_ASSIGN_OR_RETURN(const TrainProgress saved,
                        ReadTrainingState(dir, *impl->optimizer, impl->device));
    impl->step = saved.step;
    // The cursor counts this rank's samples; a resume with another number of ranks (an elastic
    // restart after a worker died) converts it through the samples all ranks consumed, rounding
    // up: at most world - 1 samples of the epoch are skipped, none is seen twice.
    const int64_t world = comm == nullptr ? 1 : comm->world();
    const int64_t consumed = saved.cursor.position * saved.world;
    impl->sampler->set_cursor({saved.cursor.epoch, (consumed + world - 1) / world});
  }
  if (comm != nullptr) {
    // Every rank starts from rank 0's parameters, as DDP does.
    torch::NoGradGuard no_grad;
    for (torch::Tensor& p : impl->params) CF_RETURN_IF_ERROR(comm->Broadcast(p, 0));
    impl->reducer = std::make_unique<GradientReducer>(
        comm, impl->params, static_cast<int64_t>(config.bucket_mb * (1 << 20)));
  }
  impl->peak_flops = MeasureMatmulFlops(
      impl->device, config.precision == "bf16" ? torch::kBFloat16 : torch::kFloat);
  return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

absl::StatusOr<StepStats> Trainer::Step() {
  Impl& m = *impl_;
  const double start = Now();
  StepStats stats;
  try {
    m.model->train();
    m.optimizer->zero_grad();
    // The step's loss is the mean over every counted target of all its micro-batches: the data
    // is drawn first so each micro-batch's backward can be scaled by the step's total count.
    std::vector<Impl::Batch> batches;
    int64_t local = 0;
    for (int64_t k = 0; k < m.config.grad_accum; ++k) {
      batches.push_back(m.Draw(*m.sampler));
      local += batches.back().counted;
    }
    // Normalise by the count over all ranks, so N ranks of batch B match one rank of batch N*B.
    CF_ASSIGN_OR_RETURN(const double global, m.SumOverRanks(static_cast<double>(local)));
    const int64_t counted = static_cast<int64_t>(global);
    const double divisor = std::max<double>(1.0, global);
    torch::Tensor local_sum = torch::zeros({}, torch::dtype(torch::kDouble).device(m.device));
    for (size_t k = 0; k < batches.size(); ++k) {
      // Only the last micro-step of an accumulation communicates.
      if (m.reducer != nullptr && k + 1 == batches.size()) m.reducer->Arm();
      torch::Tensor sum = m.SummedLoss(batches[k]);
      (sum / divisor).backward();
      local_sum += sum.detach().to(torch::kDouble);
    }
    if (m.reducer != nullptr) CF_RETURN_IF_ERROR(m.reducer->Finish());
    CF_ASSIGN_OR_RETURN(const double loss_sum, m.SumOverRanks(local_sum.item<double>()));
    stats.loss = counted > 0 ? loss_sum / static_cast<double>(counted) : 0.0;
    // A diverged step fails here, before the optimizer writes NaN into the weights (so the last
    // checkpoint stays the one to resume from).
    const auto finite = [&](const char* what, double value) {
      if (std::isfinite(value)) return absl::OkStatus();
      return absl::DataLossError(absl::StrFormat(
          "training step %d: the %s is %f (not finite): training diverged; lower optimizer.lr "
          "or raise warmup_steps, and resume from the last checkpoint",
          m.step + 1, what, value));
    };
    CF_RETURN_IF_ERROR(finite("loss", stats.loss));
    stats.grad_norm = m.config.grad_clip > 0
                          ? torch::nn::utils::clip_grad_norm_(m.params, m.config.grad_clip)
                          : 0.0;
    CF_RETURN_IF_ERROR(finite("gradient norm", stats.grad_norm));
    stats.lr =
        ScheduledLr(m.step, m.config.steps, m.config.warmup_steps, m.config.lr, m.config.min_lr);
    for (auto& group : m.optimizer->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(stats.lr);
    }
    m.optimizer->step();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("training step ", m.step + 1, " failed: ", e.what_without_backtrace()));
  }
  ++m.step;
  stats.step = m.step;
  stats.tokens = m.config.grad_accum * m.config.batch_size * m.config.seq_len;
  stats.seconds = Now() - start;
  return stats;
}

absl::StatusOr<double> Trainer::Evaluate() {
  Impl& m = *impl_;
  if (m.val == nullptr)
    return absl::NotFoundError(absl::StrCat(m.config.data, " has no validation split"));
  torch::NoGradGuard no_grad;
  m.model->eval();
  BatchSampler sampler(*m.val, m.config.seq_len, m.config.batch_size, 0, 0, 1, /*shuffle=*/false);
  double total = 0;
  int64_t counted = 0;
  const int64_t batches =
      std::min(m.config.eval_batches,
               std::max<int64_t>(1, sampler.samples_per_epoch() / m.config.batch_size));
  try {
    for (int64_t i = 0; i < batches; ++i) {
      Impl::Batch batch = m.Draw(sampler);
      if (batch.counted == 0) continue;
      total += m.SummedLoss(batch).item<double>();
      counted += batch.counted;
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("evaluation failed: ", e.what_without_backtrace()));
  }
  return counted > 0 ? total / static_cast<double>(counted) : 0.0;
}

absl::StatusOr<std::string> Trainer::SaveCheckpoint() {
  Impl& m = *impl_;
  if (!m.leader()) return std::string();  // rank 0 holds the same parameters and writes them
  const std::string dir = CheckpointDir(m.config.out, m.step);
  SaveOptions options;
  options.overwrite = true;
  options.extra_files = [&](const std::string& staging) {
    return WriteTrainingState(staging, *m.optimizer, m.device, m.Progress(), m.config.ToJson());
  };
  CF_RETURN_IF_ERROR(copyforge::SaveCheckpoint(dir, m.model, m.tokenizer.get(), options));
  // Keep the newest `keep_checkpoints`.
  const std::vector<std::string> all = ListCheckpoints(m.config.out);
  std::error_code ec;
  for (size_t i = 0; i + static_cast<size_t>(m.config.keep_checkpoints) < all.size(); ++i)
    fs::remove_all(all[i], ec);
  return dir;
}

absl::Status Trainer::Run() {
  Impl& m = *impl_;
  std::error_code ec;
  fs::create_directories(m.config.out, ec);
  const bool lead = m.leader();
  std::ofstream metrics;
  if (lead) metrics.open(MetricsPath(m.config.out), std::ios::app);
  if (lead && !metrics) {
    return absl::InternalError(absl::StrCat("cannot write ", MetricsPath(m.config.out)));
  }
  std::unique_ptr<EventWriter> events;
  if (lead) {
    if (const int stale = RemoveStaleStaging(m.config.out); stale > 0) {
      std::fprintf(stderr, "train: removed %d staging directories left by an interrupted save\n",
                   stale);
    }
    CF_ASSIGN_OR_RETURN(events, EventWriter::Create(m.config.out));
    // Marks each (re)start in the metrics, so restarts of an elastic job can be told apart.
    MetricsRecord started;
    started.kind = MetricsRecord::Kind::kStart;
    started.step = m.step;
    started.world = m.comm == nullptr ? 1 : m.comm->world();
    started.resumed_from = m.config.resume;
    metrics << started.ToJsonLine() << "\n" << std::flush;
  }
  const Gpt2Config& mc = m.model->config();
  const double flops_per_token = mc.TrainingFlopsPerToken(m.config.seq_len);
  if (lead)
    std::fprintf(
        stderr,
        "train: %.1fM parameters, %lld tokens in %s/%s, %lld steps of %lld tokens, %s on %s, "
        "peak %.0f GFLOP/s\n",
        mc.NumParameters() / 1e6, static_cast<long long>(m.train->num_tokens()),
        m.config.data.c_str(), m.config.objective.c_str(), static_cast<long long>(m.config.steps),
        static_cast<long long>(m.config.grad_accum * m.config.batch_size * m.config.seq_len),
        m.config.precision.c_str(), m.device.str().c_str(), m.peak_flops / 1e9);
  const double start = Now();
  const int64_t first_step = m.step;
  int64_t tokens = 0;
  double last_loss = 0, last_val = -1;
  std::string last_checkpoint;
  while (m.step < m.config.steps) {
    if (m.stop != nullptr && m.stop->load()) {
      return absl::CancelledError(absl::StrCat("stopped by a signal after step ", m.step,
                                               "; resume from the last checkpoint"));
    }
    CF_ASSIGN_OR_RETURN(StepStats s, Step());
    tokens += s.tokens;
    last_loss = s.loss;
    const double elapsed = Now() - start;
    const double tok_s = tokens / std::max(1e-9, elapsed);
    const double mfu = tok_s * flops_per_token / m.peak_flops;
    if (lead && (s.step % m.config.log_interval == 0 || s.step == m.config.steps)) {
      const double eta =
          (m.config.steps - s.step) * elapsed / static_cast<double>(s.step - first_step);
      std::fprintf(
          stderr,
          "step %lld/%lld | loss %.4f | lr %.2e | grad %.2f | %.0f tok/s | MFU %.1f%% | ETA %s\n",
          static_cast<long long>(s.step), static_cast<long long>(m.config.steps), s.loss, s.lr,
          s.grad_norm, tok_s, 100 * mfu, FormatDuration(eta).c_str());
      MetricsRecord r;
      r.step = s.step;
      r.loss = s.loss;
      r.lr = s.lr;
      r.grad_norm = s.grad_norm;
      r.tokens_per_s = tok_s;
      r.mfu = mfu;
      r.elapsed_s = elapsed;
      r.eta_s = eta;
      metrics << r.ToJsonLine() << "\n" << std::flush;
      for (const auto& [tag, value] : {std::pair<const char*, double>{"train/loss", s.loss},
                                       {"train/lr", s.lr},
                                       {"train/grad_norm", s.grad_norm},
                                       {"train/tokens_per_s", tok_s},
                                       {"train/mfu", mfu}}) {
        CF_RETURN_IF_ERROR(events->AddScalar(tag, s.step, value));
      }
    }
    const bool last = s.step == m.config.steps;
    if (m.val != nullptr &&
        ((m.config.eval_interval > 0 && s.step % m.config.eval_interval == 0) || last)) {
      CF_ASSIGN_OR_RETURN(last_val, Evaluate());
      if (lead)
        std::fprintf(stderr, "eval step %lld | val loss %.4f | val ppl %.2f\n",
                     static_cast<long long>(s.step), last_val, std::exp(last_val));
      if (lead) {
        MetricsRecord r;
        r.kind = MetricsRecord::Kind::kEval;
        r.step = s.step;
        r.val_loss = last_val;
        r.val_ppl = std::exp(last_val);
        metrics << r.ToJsonLine() << "\n" << std::flush;
      }
      if (lead) {
        CF_RETURN_IF_ERROR(events->AddScalar("val/loss", s.step, last_val));
        CF_RETURN_IF_ERROR(events->AddScalar("val/perplexity", s.step, std::exp(last_val)));
      }
    }
    if ((m.config.checkpoint_interval > 0 && s.step % m.config.checkpoint_interval == 0) || last) {
      CF_ASSIGN_OR_RETURN(last_checkpoint, SaveCheckpoint());
    }
  }
  const double elapsed = Now() - start;
  if (lead)
    std::printf("train: finished %lld steps in %s\n", static_cast<long long>(m.step),
                FormatDuration(elapsed).c_str());
  if (lead)
    std::printf("  tokens            %lld (%.0f tok/s)\n", static_cast<long long>(tokens),
                tokens / std::max(1e-9, elapsed));
  if (lead) std::printf("  final train loss  %.4f\n", last_loss);
  if (last_val >= 0)
    if (lead)
      std::printf("  final val loss    %.4f (perplexity %.2f)\n", last_val, std::exp(last_val));
  if (lead) std::printf("  checkpoint        %s\n", last_checkpoint.c_str());
  if (lead) std::printf("  metrics           %s\n", MetricsPath(m.config.out).c_str());
  return absl::OkStatus();
}

}  // namespace copyforge
