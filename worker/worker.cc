#include "worker/worker.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "control.grpc.pb.h"
#include "protos/bearer_token.h"
#include "trainer/common/file_util.h"
#include "trainer/common/net_util.h"
#include "trainer/common/threads.h"
#include "trainer/dist/rank_env.h"
#include "trainer/train/metrics_record.h"
#include "trainer/train/run_status.h"
#include "trainer/train/train_state.h"
#include "trainer/train/trainer.h"

namespace copyforge {
namespace {

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop = true; }

using Clock = std::chrono::steady_clock;

void Log(const std::string& id, const std::string& text) {
  std::fprintf(stderr, "worker %s: %s\n", id.c_str(), text.c_str());
}

// The last `max_bytes` of a file, split into lines.
std::vector<std::string> TailLines(const std::string& path, size_t max_bytes = 16384) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::vector<std::string> lines;
  if (!in) return lines;
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - static_cast<int64_t>(max_bytes));
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  if (start > 0 && !lines.empty()) lines.erase(lines.begin());  // a partial first line
  return lines;
}

// One rank of one generation, run as a child `copyforge train`.
struct Run {
  pid_t pid = -1;
  v1::Assignment assignment;
  std::string log_path;
  std::string status_path;  // the trainer's RunStatus record (train --status-file)
};

class Agent {
 public:
  explicit Agent(const WorkerOptions& o) : o_(o) {}

  absl::Status Connect() {
    // Reconnect quickly when the coordinator comes back (gRPC's default backoff grows to 120 s),
    // so that a restarted coordinator sees its running workers within a heartbeat timeout.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    auto channel = OpenChannel(o_.coordinator, o_.tls, args);
    if (!channel.ok()) return channel.status();
    stub_ = v1::WorkerService::NewStub(*channel);
    auto token = OpenOptionalTokenFile(o_.token_file);
    if (!token.ok()) return token.status();
    token_ = *std::move(token);
    return absl::OkStatus();
  }

  absl::Status Loop() {
    std::error_code ec;
    std::filesystem::create_directories(o_.workdir, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create --workdir ", o_.workdir));
    double backoff = 0.2;
    while (!g_stop) {
      if (incarnation_ == 0 && !Register()) {
        Sleep(backoff);
        backoff = std::min(1.0, backoff * 2);
        continue;
      }
      Poll();
      MarkAlive();
      v1::HeartbeatResponse response;
      const grpc::Status status = SendHeartbeat(Phase(), &response);
      if (!status.ok()) {
        if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
          return absl::UnauthenticatedError(status.error_message());
        }
        if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
          // This registration's session is no longer the worker id's (it expired and another
          // process registered the id): register again once that one is gone.
          Log(o_.worker_id,
              absl::StrCat("heartbeat refused (", status.error_message(), "); registering again"));
          incarnation_ = 0;
          continue;
        }
        Log(o_.worker_id, absl::StrCat("coordinator unreachable (", status.error_message(),
                                       "); retrying in ", backoff, " s"));
        Sleep(backoff);
        backoff = std::min(1.0, backoff * 2);
        continue;
      }
      backoff = 0.2;
      // A finished run has been reported: this worker is free again.
      if (phase_ == v1::DONE || phase_ == v1::FAILED_RUN) {
        phase_ = v1::IDLE;
        run_.reset();
        port_ = 0;
      }
      Act(response);
      Sleep(interval_ms_ / 1000.0);
    }
    // SIGTERM: tell the coordinator first (so the job's loss is recorded as this worker leaving,
    // not as the failure its peers see when its trainer stops), then stop the trainer, exit.
    Log(o_.worker_id, "stopping (signal)");
    if (incarnation_ != 0) {
      v1::HeartbeatResponse ignored;
      SendHeartbeat(v1::LEAVING, &ignored);
    }
    StopRun();
    return absl::OkStatus();
  }

 private:
  static void Sleep(double seconds) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    while (!g_stop && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void Authorize(grpc::ClientContext* c) {
    // Wait (briefly) for the channel to connect rather than failing fast while it reconnects.
    c->set_wait_for_ready(true);
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    AttachBearer(token_.get(), c);
  }

  bool Register() {
    grpc::ClientContext c;
    Authorize(&c);
    v1::RegisterWorkerRequest req;
    req.set_worker_id(o_.worker_id);
    req.set_host(o_.host);
    req.set_device(o_.device);
    req.set_cores(AvailableCpus());
    if (port_ == 0) port_ = FreeTcpPort();
    req.set_rendezvous_port(port_);
    req.set_session(session_);
    SetRun(&req);
    v1::RegisterWorkerResponse resp;
    const grpc::Status s = stub_->RegisterWorker(&c, req, &resp);
    if (!s.ok()) {
      Log(o_.worker_id,
          absl::StrCat("cannot register with ", o_.coordinator, ": ", s.error_message()));
      return false;
    }
    incarnation_ = resp.incarnation();
    session_ = resp.session();
    interval_ms_ = std::max(50, resp.heartbeat_interval_ms());
    Log(o_.worker_id,
        absl::StrCat("registered with ", o_.coordinator, " (incarnation ", incarnation_, ")"));
    return true;
  }

  v1::WorkerPhase Phase() const { return phase_; }

  // Rewrites the alive file at most every 5 s; a failure to write it is logged, not fatal.
  void MarkAlive() {
    if (o_.alive_file.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_alive_ < std::chrono::seconds(5)) return;
    last_alive_ = now;
    const auto unix_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    if (absl::Status st = WriteFileAtomic(o_.alive_file, absl::StrCat(unix_s, "\n")); !st.ok()) {
      Log(o_.worker_id, absl::StrCat("cannot write the alive file: ", st.message()));
    }
  }

  // The run this worker is part of, on a registration or heartbeat.
  template <typename Request>
  void SetRun(Request* req) const {
    if (!run_) return;
    req->set_job_id(run_->assignment.job_id());
    req->set_generation(run_->assignment.generation());
    req->set_rank(run_->assignment.rank());
  }

  grpc::Status SendHeartbeat(v1::WorkerPhase phase, v1::HeartbeatResponse* response) {
    grpc::ClientContext c;
    Authorize(&c);
    v1::HeartbeatRequest req;
    req.set_worker_id(o_.worker_id);
    req.set_incarnation(incarnation_);
    req.set_session(session_);
    req.set_phase(phase);
    if (phase == v1::IDLE) {
      if (port_ == 0) port_ = FreeTcpPort();
      req.set_rendezvous_port(port_);
    }
    if (run_) {
      SetRun(&req);
      req.set_step(step_);
      req.set_loss(loss_);
      req.set_tokens_per_s(tokens_per_s_);
      req.set_eta_s(eta_s_);
      req.set_error(error_);
      req.set_permanent(permanent_);
    }
    return stub_->Heartbeat(&c, req, response);
  }

  void Act(const v1::HeartbeatResponse& response) {
    switch (response.action()) {
      case v1::HeartbeatResponse::START:
        StopRun();
        Start(response.assignment());
        break;
      case v1::HeartbeatResponse::ABORT:
        Log(o_.worker_id, "told to abort its run (stale generation or cancelled job)");
        StopRun();
        break;
      case v1::HeartbeatResponse::REREGISTER:
        incarnation_ = 0;
        Register();  // at once: a restarted coordinator is waiting to adopt running workers
        break;
      default:
        break;
    }
  }

  void Start(const v1::Assignment& a) {
    const std::string base =
        absl::StrCat(o_.workdir, "/", a.job_id(), "-g", a.generation(), "-r", a.rank());
    const std::string config = base + ".yaml";
    if (absl::Status st = WriteFileAtomic(config, a.train_config_yaml()); !st.ok()) {
      Fail(absl::StrCat("cannot write ", config, ": ", st.message()));
      return;
    }
    // The coordinator's resolved paths travel verbatim: never re-read as YAML.
    std::vector<std::string> args = {"copyforge",     "train",
                                     "--config",      config,
                                     "--status-file", base + ".status.json",
                                     "--set-string",  "out=" + a.out_dir(),
                                     "--set-string",  "data=" + a.data_dir(),
                                     "--set-string",  "dist.backend=" + a.backend()};
    if (!a.model_path().empty())
      args.insert(args.end(), {"--set-string", "model=" + a.model_path()});
    if (!a.init_from().empty()) {
      args.insert(args.end(), {"--set-string", "init_from=" + a.init_from()});
    }
    if (o_.threads > 0) {
      args.insert(args.end(), {"--set-string", absl::StrCat("threads=", o_.threads)});
    }
    if (!a.resume_from().empty()) args.insert(args.end(), {"--resume", a.resume_from()});
    run_ = Run();
    run_->assignment = a;
    run_->log_path = base + ".log";
    run_->status_path = base + ".status.json";
    std::filesystem::remove(run_->status_path);
    step_ = 0;
    permanent_ = false;
    loss_ = tokens_per_s_ = eta_s_ = 0;
    error_.clear();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the trainer dies with its agent
      const int fd = ::open(run_->log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      RankEnv env;
      env.rank = a.rank();
      env.world = a.world();
      env.store_host = a.store_host();
      env.store_port = a.store_port();
      ExportRankEnv(env);
      // The worker's GPU: the first visible one, unless the worker was started with LOCAL_RANK
      // (several workers on one machine).
      ::setenv("LOCAL_RANK", "0", /*overwrite=*/0);
      std::vector<char*> argv;
      for (std::string& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::_Exit(127);
    }
    if (pid < 0) {
      Fail("fork failed");
      return;
    }
    run_->pid = pid;
    phase_ = v1::TRAINING;
    port_ = 0;
    Log(o_.worker_id, absl::StrCat("job ", a.job_id(), " generation ", a.generation(), ": rank ",
                                   a.rank(), " of ", a.world(),
                                   a.resume_from().empty() ? "" : ", resuming " + a.resume_from(),
                                   " (log ", run_->log_path, ")"));
  }

  void Fail(const std::string& why) {
    error_ = why;
    phase_ = v1::FAILED_RUN;
    Log(o_.worker_id, why);
  }

  // Stops the trainer: SIGTERM, then SIGKILL after the grace period.
  void StopRun() {
    finishing_ = false;
    if (!run_ || run_->pid <= 0) {
      run_.reset();
      phase_ = v1::IDLE;
      return;
    }
    ::kill(run_->pid, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::duration<double>(o_.stop_grace_s);
    int status = 0;
    while (::waitpid(run_->pid, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(run_->pid, SIGKILL);
        ::waitpid(run_->pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    run_.reset();
    phase_ = v1::IDLE;
    port_ = 0;
  }

  // Checks the trainer: progress from metrics.jsonl, new checkpoints, exit status.
  void Poll() {
    // A finished rank 0 reports DONE only once every checkpoint it wrote is registered (or
    // refused): the coordinator needs the final one to call the job SUCCEEDED.
    if (run_ && run_->pid <= 0 && finishing_) {
      if (RegisterCheckpoints()) {
        finishing_ = false;
        phase_ = v1::DONE;
      }
      return;
    }
    if (!run_ || run_->pid <= 0 || phase_ != v1::TRAINING) return;
    const bool lead = run_->assignment.rank() == 0;
    if (lead) ReadProgress();
    int status = 0;
    const pid_t done = ::waitpid(run_->pid, &status, WNOHANG);
    if (done == 0) {
      if (lead) RegisterCheckpoints();
      return;
    }
    run_->pid = -1;
    const absl::StatusOr<RunStatus> record = ReadRunStatus(run_->status_path);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && record.ok() && record->ok) {
      Log(o_.worker_id, absl::StrCat("job ", run_->assignment.job_id(), " rank ",
                                     run_->assignment.rank(), " finished"));
      if (lead) {
        ReadProgress();
        finishing_ = true;  // DONE once its checkpoints are registered (Poll)
        return;
      }
      phase_ = v1::DONE;
      return;
    }
    const std::string how = WIFEXITED(status)
                                ? absl::StrCat("exited with code ", WEXITSTATUS(status))
                                : absl::StrCat("was killed by signal ", WTERMSIG(status));
    if (record.ok() && !record->ok) {
      permanent_ = record->permanent;
      Fail(absl::StrCat("trainer ", how, ": ", record->code, ": ", record->message));
    } else {
      Fail(absl::StrCat("trainer ", how, " without a status record (log ", run_->log_path, ")"));
    }
  }

  static absl::StatusOr<RunStatus> ReadRunStatus(const std::string& path) {
    auto text = ReadFile(path);
    if (!text.ok()) return text.status();
    return RunStatus::FromJson(*text, path);
  }

  void ReadProgress() {
    for (const std::string& line : TailLines(MetricsPath(run_->assignment.out_dir()))) {
      // Whatever a line holds (a NaN loss is written as null), it never throws here.
      const std::optional<MetricsRecord> r = MetricsRecord::Parse(line);
      if (!r || r->kind != MetricsRecord::Kind::kStep) continue;
      step_ = r->step;
      loss_ = r->loss;
      tokens_per_s_ = r->tokens_per_s;
      eta_s_ = r->eta_s;
    }
  }

  // Registers the run's new checkpoints; true when none is left unregistered.
  bool RegisterCheckpoints() {
    const std::string out = run_->assignment.out_dir();
    bool all = true;
    for (const std::string& dir : ListCheckpoints(out)) {
      if (registered_.count(dir)) continue;
      const absl::StatusOr<int64_t> state_step = ReadCheckpointStep(dir);
      if (!state_step.ok()) continue;
      const int64_t step = *state_step;
      double val_loss = std::nan("");
      for (const std::string& line : TailLines(MetricsPath(out), 1 << 20)) {
        const std::optional<MetricsRecord> r = MetricsRecord::Parse(line);
        if (r && r->kind == MetricsRecord::Kind::kEval && r->step == step) val_loss = r->val_loss;
      }
      grpc::ClientContext c;
      Authorize(&c);
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::RegisterCheckpointRequest req;
      req.set_worker_id(o_.worker_id);
      req.set_incarnation(incarnation_);
      req.set_session(session_);
      v1::Checkpoint* ck = req.mutable_checkpoint();
      ck->set_job_id(run_->assignment.job_id());
      ck->set_generation(run_->assignment.generation());
      ck->set_path(std::filesystem::absolute(dir).string());
      ck->set_step(step);
      ck->set_val_loss(val_loss);
      v1::Checkpoint resp;
      const grpc::Status st = stub_->RegisterCheckpoint(&c, req, &resp);
      if (st.ok() || st.error_code() == grpc::StatusCode::DATA_LOSS) {
        registered_.insert(dir);
        Log(o_.worker_id, st.ok()
                              ? absl::StrCat("registered checkpoint ", dir, " (step ", step, ")")
                              : st.error_message());
      } else {
        all = false;
      }
    }
    return all;
  }

  WorkerOptions o_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::unique_ptr<TokenFile> token_;
  int64_t incarnation_ = 0;
  std::chrono::steady_clock::time_point last_alive_;  // when the alive file was last written
  std::string session_;     // this registration's credential (RegisterWorkerResponse)
  bool finishing_ = false;  // rank 0's trainer exited OK; registering its checkpoints
  bool permanent_ = false;  // the failed run would fail the same way on a restart
  int interval_ms_ = 500;
  int port_ = 0;
  v1::WorkerPhase phase_ = v1::IDLE;
  std::optional<Run> run_;
  int64_t step_ = 0;
  double loss_ = 0, tokens_per_s_ = 0, eta_s_ = 0;
  std::string error_;
  std::set<std::string> registered_;
};

}  // namespace

absl::Status RunWorker(const WorkerOptions& options) {
  WorkerOptions o = options;
  if (o.coordinator.empty()) return absl::InvalidArgumentError("--coordinator is required");
  if (o.workdir.empty()) return absl::InvalidArgumentError("--workdir is required");
  if (o.worker_id.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    o.worker_id = absl::StrCat(host, "-", ::getpid());
  }
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  Agent agent(o);
  if (absl::Status st = agent.Connect(); !st.ok()) return st;
  return agent.Loop();
}

}  // namespace copyforge
