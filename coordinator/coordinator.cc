#include "coordinator/coordinator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "control.grpc.pb.h"
#include "coordinator/job_spec.h"
#include "coordinator/job_store.h"
#include "protos/grpc_status.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

using Clock = std::chrono::steady_clock;
using v1::HeartbeatResponse;
using v1::JobState;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Terminal(JobState s) { return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED; }

std::string NewJobId() {
  static std::mt19937_64 rng(std::random_device{}());
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat("job-", absl::Hex(UnixMs() & 0xffffffffff), "-", absl::Hex(rng() & 0xffff));
}

// Checks "authorization: Bearer <token>" when a token is configured.
grpc::Status Authorize(grpc::ServerContext* context, const std::string& token,
                       const char* service) {
  if (token.empty()) return grpc::Status::OK;
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) {
    const std::string value(it->second.data(), it->second.size());
    if (value == "Bearer " + token) return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat(service,
                                   " needs \"authorization: Bearer <token>\" metadata with "
                                   "the right token"));
}

struct WorkerState {
  int64_t incarnation = 0;
  std::string host, device;
  int cores = 0;
  int rendezvous_port = 0;
  Clock::time_point last_seen;
  v1::WorkerPhase phase = v1::IDLE;
  // The generation this worker belongs to (empty job_id: none).
  std::string job_id;
  int64_t generation = 0;
  int rank = -1;
  bool done = false;
  bool pending_start = false;
  v1::Assignment assignment;
};

struct JobRuntime {
  v1::Job job;
  JobSpec spec;
  std::string idempotency_key;
  Clock::time_point waiting_since = Clock::now();
  // After a coordinator restart, a RUNNING job waits this long for its workers to come back.
  Clock::time_point adopt_deadline{};
  Clock::time_point min_reached_at{};  // when min_workers first were idle (rendezvous window)
};

}  // namespace

class Coordinator::Impl final : public v1::JobService::Service,
                                public v1::WorkerService::Service,
                                public v1::CheckpointService::Service {
 public:
  explicit Impl(CoordinatorOptions options) : options_(std::move(options)) {}

  absl::Status Init() {
    std::error_code ec;
    std::filesystem::create_directories(options_.state_dir, ec);
    auto store = JobStore::Open(options_.state_dir + "/coordinator.sqlite");
    if (!store.ok()) return store.status();
    store_ = *std::move(store);
    auto jobs = store_->LoadJobs();
    if (!jobs.ok()) return jobs.status();
    for (StoredJob& stored : *jobs) {
      const v1::Job& job = stored.job;
      auto spec = ParseJobSpec(job.spec_yaml(), job.id());
      if (!spec.ok()) return spec.status();
      JobRuntime& rt = jobs_[job.id()];
      rt.job = job;
      rt.spec = *std::move(spec);
      rt.idempotency_key = std::move(stored.idempotency_key);
      if (job.state() == v1::RUNNING) {
        // Its workers may still be training: give them a heartbeat timeout to re-register.
        rt.adopt_deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                               options_.heartbeat_timeout_s * 1000 * 1.5));
      }
    }
    auto checkpoints = store_->LoadCheckpoints();
    if (!checkpoints.ok()) return checkpoints.status();
    for (v1::Checkpoint& c : *checkpoints) checkpoints_[c.job_id()].push_back(c);
    for (const auto& [path, slot] : {std::pair{options_.job_token_file, &job_token_},
                                     std::pair{options_.worker_token_file, &worker_token_}}) {
      if (path.empty()) continue;
      auto token = ReadFile(path);
      if (!token.ok()) return token.status();
      *slot = std::string(absl::StripAsciiWhitespace(*token));
      if (slot->empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty token"));
    }
    return absl::OkStatus();
  }

  void StartScheduler() {
    scheduler_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        Tick();
        cv_.wait_for(lock, std::chrono::milliseconds(100));
      }
    });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (scheduler_.joinable()) scheduler_.join();
  }

  // ---- JobService ----
  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override {
    if (auto st = Authorize(context, job_token_, "JobService"); !st.ok()) return st;
    auto spec = ParseJobSpec(request->spec_yaml(), "spec_yaml");
    if (!spec.ok()) return ToGrpc(spec.status());
    std::lock_guard<std::mutex> lock(mu_);
    if (!request->idempotency_key().empty()) {
      for (const auto& [id, rt] : jobs_) {
        if (rt.idempotency_key == request->idempotency_key()) {
          response->set_job_id(id);
          response->set_existing(true);
          return grpc::Status::OK;
        }
      }
    }
    JobRuntime rt;
    rt.job.set_id(NewJobId());
    rt.job.set_name(spec->name);
    rt.job.set_state(v1::PENDING);
    rt.job.set_reason(absl::StrCat("waiting for ", spec->min_workers, " idle worker(s)"));
    rt.job.set_total_steps(spec->train.steps);
    rt.job.set_spec_yaml(request->spec_yaml());
    rt.job.set_min_workers(spec->min_workers);
    rt.job.set_max_workers(spec->max_workers);
    rt.job.set_created_unix_ms(UnixMs());
    rt.job.set_updated_unix_ms(UnixMs());
    rt.spec = *std::move(spec);
    rt.idempotency_key = request->idempotency_key();
    if (absl::Status st = store_->PutJob(rt.job, rt.idempotency_key); !st.ok()) {
      return ToGrpc(st);
    }
    response->set_job_id(rt.job.id());
    jobs_[rt.job.id()] = std::move(rt);
    Changed();
    return grpc::Status::OK;
  }

  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override {
    if (auto st = Authorize(context, job_token_, "JobService"); !st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(request->job_id());
    if (it == jobs_.end()) return NotFound(request->job_id());
    *response = it->second.job;
    return grpc::Status::OK;
  }

  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest*,
                        v1::ListJobsResponse* response) override {
    if (auto st = Authorize(context, job_token_, "JobService"); !st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<const v1::Job*> jobs;
    for (const auto& [id, rt] : jobs_) jobs.push_back(&rt.job);
    std::sort(jobs.begin(), jobs.end(), [](const v1::Job* a, const v1::Job* b) {
      return a->created_unix_ms() < b->created_unix_ms();
    });
    for (const v1::Job* j : jobs) *response->add_jobs() = *j;
    return grpc::Status::OK;
  }

  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override {
    if (auto st = Authorize(context, job_token_, "JobService"); !st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(request->job_id());
    if (it == jobs_.end()) return NotFound(request->job_id());
    JobRuntime& rt = it->second;
    if (!Terminal(rt.job.state())) {
      ReleaseWorkers(rt);
      rt.job.set_generation(rt.job.generation() + 1);  // stale generation: workers abort
      SetState(rt, v1::CANCELLED, "cancelled by the user");
    }
    *response = rt.job;
    return grpc::Status::OK;
  }

  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::Job>* writer) override {
    if (auto st = Authorize(context, job_token_, "JobService"); !st.ok()) return st;
    std::string last;
    while (true) {
      v1::Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        auto it = jobs_.find(request->job_id());
        if (it == jobs_.end()) return NotFound(request->job_id());
        cv_.wait_for(lock, std::chrono::milliseconds(500),
                     [&] { return stopping_ || it->second.job.SerializeAsString() != last; });
        if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator stopping");
        job = it->second.job;
      }
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      std::string now = job.SerializeAsString();
      if (now != last) {
        if (!writer->Write(job)) return grpc::Status::CANCELLED;
        last = std::move(now);
        if (Terminal(job.state())) return grpc::Status::OK;
      }
    }
  }

  // ---- WorkerService ----
  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override {
    if (auto st = Authorize(context, worker_token_, "WorkerService"); !st.ok()) return st;
    if (request->worker_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "worker_id is empty");
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto existing = workers_.find(request->worker_id());
    if (existing != workers_.end() && !existing->second.job_id.empty()) {
      // The same id registering again: the old process is gone (or restarted), and with it its
      // part of the generation.
      LoseWorker(request->worker_id(), existing->second, "re-registered (restarted)");
    }
    WorkerState& w = workers_[request->worker_id()];
    w = WorkerState();
    w.incarnation = ++incarnations_;
    w.host = request->host();
    w.device = request->device();
    w.cores = request->cores();
    w.rendezvous_port = request->rendezvous_port();
    w.last_seen = Clock::now();
    w.phase = request->job_id().empty() ? v1::IDLE : v1::TRAINING;
    // A worker of a RUNNING job's current generation coming back after a coordinator restart.
    if (!request->job_id().empty()) {
      auto it = jobs_.find(request->job_id());
      if (it != jobs_.end() && it->second.job.state() == v1::RUNNING &&
          it->second.job.generation() == request->generation()) {
        w.job_id = request->job_id();
        w.generation = request->generation();
        w.rank = request->rank();
      }
    }
    response->set_incarnation(w.incarnation);
    response->set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
    Changed();
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         HeartbeatResponse* response) override {
    if (auto st = Authorize(context, worker_token_, "WorkerService"); !st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu_);
    auto wit = workers_.find(request->worker_id());
    if (wit == workers_.end() || wit->second.incarnation != request->incarnation()) {
      response->set_action(HeartbeatResponse::REREGISTER);
      return grpc::Status::OK;
    }
    WorkerState& w = wit->second;
    w.last_seen = Clock::now();
    w.phase = request->phase();
    if (request->rendezvous_port() > 0) w.rendezvous_port = request->rendezvous_port();
    if (request->phase() == v1::LEAVING) {
      LoseWorker(request->worker_id(), w, "left (SIGTERM)");
      workers_.erase(wit);
      Changed();
      return grpc::Status::OK;
    }
    const bool reports_run = request->phase() == v1::TRAINING || request->phase() == v1::DONE ||
                             request->phase() == v1::FAILED_RUN;
    const bool current =
        !w.job_id.empty() && request->job_id() == w.job_id && request->generation() == w.generation;
    if (reports_run && !current) {
      // A run of an old generation, a cancelled job, or one we never assigned: stop it.
      if (request->phase() == v1::TRAINING) response->set_action(HeartbeatResponse::ABORT);
      return grpc::Status::OK;
    }
    if (current) {
      JobRuntime& rt = jobs_[w.job_id];
      if (request->phase() == v1::TRAINING && w.rank == 0 && request->step() > 0) {
        rt.job.set_step(request->step());
        rt.job.set_loss(request->loss());
        rt.job.set_tokens_per_s(request->tokens_per_s());
        rt.job.set_eta_s(request->eta_s());
        Save(rt);
      } else if (request->phase() == v1::FAILED_RUN) {
        LoseWorker(request->worker_id(), w, absl::StrCat("failed: ", request->error()));
      } else if (request->phase() == v1::DONE) {
        w.done = true;
        MaybeSucceed(rt);
      }
    }
    if (w.pending_start) {
      w.pending_start = false;
      response->set_action(HeartbeatResponse::START);
      *response->mutable_assignment() = w.assignment;
    }
    return grpc::Status::OK;
  }

  grpc::Status RegisterCheckpoint(grpc::ServerContext* context,
                                  const v1::RegisterCheckpointRequest* request,
                                  v1::Checkpoint* response) override {
    if (auto st = Authorize(context, worker_token_, "WorkerService"); !st.ok()) return st;
    const v1::Checkpoint& c = request->checkpoint();
    // Verify outside the lock: hashing a checkpoint takes a while.
    if (absl::Status st = VerifyManifest(c.path()); !st.ok()) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("checkpoint ", c.path(), " refused: ", st.message()));
    }
    auto manifest = ReadFile(c.path() + "/" + kManifestFile);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(c.job_id());
    if (it == jobs_.end()) return NotFound(c.job_id());
    v1::Checkpoint stored = c;
    stored.set_created_unix_ms(UnixMs());
    if (manifest.ok()) stored.set_manifest_sha256(Sha256Hex(*manifest));
    if (absl::Status st = store_->PutCheckpoint(stored); !st.ok()) return ToGrpc(st);
    auto& list = checkpoints_[c.job_id()];
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const v1::Checkpoint& x) { return x.step() == c.step(); }),
               list.end());
    list.push_back(stored);
    std::sort(list.begin(), list.end(),
              [](const v1::Checkpoint& a, const v1::Checkpoint& b) { return a.step() < b.step(); });
    it->second.job.set_latest_checkpoint(list.back().path());
    Save(it->second);
    *response = stored;
    return grpc::Status::OK;
  }

  // ---- CheckpointService ----
  grpc::Status ListCheckpoints(grpc::ServerContext*, const v1::ListCheckpointsRequest* request,
                               v1::ListCheckpointsResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!request->job_id().empty() && !jobs_.count(request->job_id())) {
      return NotFound(request->job_id());
    }
    for (const auto& [job, list] : checkpoints_) {
      if (!request->job_id().empty() && job != request->job_id()) continue;
      for (const v1::Checkpoint& c : list) *response->add_checkpoints() = c;
    }
    return grpc::Status::OK;
  }

  grpc::Status GetLatestCheckpoint(grpc::ServerContext*,
                                   const v1::GetLatestCheckpointRequest* request,
                                   v1::Checkpoint* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!jobs_.count(request->job_id())) return NotFound(request->job_id());
    auto it = checkpoints_.find(request->job_id());
    if (it == checkpoints_.end() || it->second.empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("job ", request->job_id(), " has no checkpoint yet"));
    }
    *response = it->second.back();
    return grpc::Status::OK;
  }

  grpc::Status WatchCheckpoints(grpc::ServerContext* context,
                                const v1::WatchCheckpointsRequest* request,
                                grpc::ServerWriter<v1::Checkpoint>* writer) override {
    std::map<std::string, int64_t> sent;  // job -> newest step sent
    bool first = true;
    while (!context->IsCancelled()) {
      std::vector<v1::Checkpoint> out;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (!first) cv_.wait_for(lock, std::chrono::milliseconds(500));
        if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator stopping");
        for (const auto& [job, list] : checkpoints_) {
          if (!request->job_id().empty() && job != request->job_id()) continue;
          if (list.empty()) continue;
          auto s = sent.find(job);
          if (s == sent.end()) {
            out.push_back(list.back());  // the latest first
          } else {
            for (const v1::Checkpoint& c : list) {
              if (c.step() > s->second) out.push_back(c);
            }
          }
          sent[job] = list.back().step();
        }
      }
      first = false;
      for (const v1::Checkpoint& c : out) {
        if (!writer->Write(c)) return grpc::Status::CANCELLED;
      }
    }
    return grpc::Status::CANCELLED;
  }

  CoordinatorOptions options_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

 private:
  static grpc::Status NotFound(const std::string& id) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no job \"", id, "\""));
  }

  void Changed() { cv_.notify_all(); }

  void Save(JobRuntime& rt) {
    rt.job.set_updated_unix_ms(UnixMs());
    if (absl::Status st = store_->PutJob(rt.job, rt.idempotency_key); !st.ok()) {
      std::fprintf(stderr, "coordinator: %s\n", std::string(st.message()).c_str());
    }
    Changed();
  }

  void SetState(JobRuntime& rt, JobState state, const std::string& reason) {
    if (rt.job.state() != state || rt.job.reason() != reason) {
      std::fprintf(stderr, "coordinator: job %s %s -> %s%s%s\n", rt.job.id().c_str(),
                   v1::JobState_Name(rt.job.state()).c_str(), v1::JobState_Name(state).c_str(),
                   reason.empty() ? "" : ": ", reason.c_str());
    }
    rt.job.set_state(state);
    rt.job.set_reason(reason);
    rt.waiting_since = Clock::now();
    Save(rt);
  }

  // Takes every worker out of the job's current generation.
  void ReleaseWorkers(JobRuntime& rt) {
    for (auto& [id, w] : workers_) {
      if (w.job_id == rt.job.id()) {
        w.job_id.clear();
        w.rank = -1;
        w.done = false;
        w.pending_start = false;
      }
    }
    rt.job.clear_workers();
  }

  // A member of a generation is gone (dead, failed, left, restarted): the job restarts from its
  // latest checkpoint with the workers it can get, or fails when out of restarts.
  void LoseWorker(const std::string& id, WorkerState& w, const std::string& why) {
    if (w.job_id.empty()) return;
    auto it = jobs_.find(w.job_id);
    if (it == jobs_.end()) return;
    JobRuntime& rt = it->second;
    if (rt.job.state() != v1::RUNNING || rt.job.generation() != w.generation) return;
    const std::string reason = w.rank >= 0
                                   ? absl::StrCat("worker ", id, " (rank ", w.rank, ") ", why)
                                   : absl::StrCat("worker(s) ", id, " ", why);
    ReleaseWorkers(rt);
    rt.job.set_generation(rt.job.generation() + 1);  // survivors' heartbeats now abort them
    rt.job.set_tokens_per_s(0);
    if (rt.job.restarts() >= rt.spec.max_restarts) {
      SetState(rt, v1::FAILED,
               absl::StrCat(reason, "; restart limit ", rt.spec.max_restarts, " reached"));
      return;
    }
    rt.job.set_restarts(rt.job.restarts() + 1);
    SetState(
        rt, v1::RECOVERING,
        absl::StrCat(reason, "; restarting from ",
                     rt.job.latest_checkpoint().empty() ? "scratch" : rt.job.latest_checkpoint()));
  }

  void MaybeSucceed(JobRuntime& rt) {
    int members = 0, done = 0;
    for (const auto& [id, w] : workers_) {
      if (w.job_id == rt.job.id() && w.generation == rt.job.generation()) {
        ++members;
        done += w.done ? 1 : 0;
      }
    }
    if (members > 0 && members == done) {
      ReleaseWorkers(rt);
      rt.job.set_step(rt.job.total_steps());
      SetState(rt, v1::SUCCEEDED, absl::StrCat("trained ", rt.job.total_steps(), " steps"));
    }
  }

  void StartGeneration(JobRuntime& rt, std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    rt.job.set_generation(rt.job.generation() + 1);
    rt.job.clear_workers();
    const WorkerState& leader = workers_[ids[0]];
    v1::Assignment a;
    a.set_job_id(rt.job.id());
    a.set_generation(rt.job.generation());
    a.set_world(static_cast<int>(ids.size()));
    a.set_store_host(leader.host);
    a.set_store_port(leader.rendezvous_port);
    a.set_backend(rt.spec.train.backend);
    a.set_data_dir(rt.spec.train.data);
    a.set_resume_from(rt.job.latest_checkpoint());
    a.set_train_config_yaml(rt.spec.train_yaml);
    a.set_out_dir(rt.spec.train.out);
    for (size_t r = 0; r < ids.size(); ++r) {
      WorkerState& w = workers_[ids[r]];
      w.job_id = rt.job.id();
      w.generation = rt.job.generation();
      w.rank = static_cast<int>(r);
      w.done = false;
      w.pending_start = true;
      w.phase = v1::TRAINING;
      w.assignment = a;
      w.assignment.set_rank(static_cast<int>(r));
      rt.job.add_workers(ids[r]);
    }
    if (absl::Status st = store_->PutGeneration(rt.job.id(), rt.job.generation(), a, ids);
        !st.ok()) {
      std::fprintf(stderr, "coordinator: %s\n", std::string(st.message()).c_str());
    }
    SetState(rt, v1::RUNNING,
             absl::StrCat("generation ", rt.job.generation(), " on ", ids.size(), " worker(s)",
                          a.resume_from().empty() ? "" : ", resumed from " + a.resume_from()));
  }

  // One pass of the scheduler (under mu_).
  void Tick() {
    const auto now = Clock::now();
    const auto timeout =
        std::chrono::milliseconds(static_cast<int64_t>(options_.heartbeat_timeout_s * 1000));
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (now - it->second.last_seen > timeout) {
        std::fprintf(stderr, "coordinator: worker %s missed its heartbeats for %.1f s\n",
                     it->first.c_str(), options_.heartbeat_timeout_s);
        LoseWorker(it->first, it->second,
                   absl::StrCat("missed heartbeats for ", options_.heartbeat_timeout_s, " s"));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<JobRuntime*> order;
    for (auto& [id, rt] : jobs_) order.push_back(&rt);
    std::sort(order.begin(), order.end(), [](const JobRuntime* a, const JobRuntime* b) {
      return a->job.created_unix_ms() < b->job.created_unix_ms();
    });
    for (JobRuntime* rt : order) {
      const JobState state = rt->job.state();
      if (state == v1::RUNNING && rt->adopt_deadline != Clock::time_point{}) {
        // After a restart: adopt the generation once all its workers are back, else recover.
        int back = 0;
        for (const auto& [id, w] : workers_) {
          back += (w.job_id == rt->job.id() && w.generation == rt->job.generation()) ? 1 : 0;
        }
        if (back == rt->job.workers_size()) {
          rt->adopt_deadline = {};
          std::fprintf(stderr, "coordinator: job %s: all %d workers are back; continuing\n",
                       rt->job.id().c_str(), back);
        } else if (now > rt->adopt_deadline) {
          rt->adopt_deadline = {};
          std::vector<std::string> missing;
          for (const std::string& id : rt->job.workers()) {
            auto w = workers_.find(id);
            if (w == workers_.end() || w->second.job_id != rt->job.id()) missing.push_back(id);
          }
          WorkerState gone;
          gone.job_id = rt->job.id();
          gone.generation = rt->job.generation();
          LoseWorker(absl::StrJoin(missing, ", "), gone,
                     "did not come back after the coordinator restarted");
        }
        continue;
      }
      if (state != v1::PENDING && state != v1::RECOVERING) continue;
      std::vector<std::string> idle;
      for (const auto& [id, w] : workers_) {
        if (w.phase == v1::IDLE && w.job_id.empty() && w.rendezvous_port > 0) idle.push_back(id);
      }
      const int have = static_cast<int>(idle.size());
      if (have >= rt->spec.min_workers && have < rt->spec.max_workers) {
        // Enough to start; give more workers a short window to join (up to max_workers).
        if (rt->min_reached_at == Clock::time_point{}) rt->min_reached_at = now;
        if (now - rt->min_reached_at <
            std::chrono::milliseconds(static_cast<int64_t>(rt->spec.rendezvous_wait_s * 1000))) {
          continue;
        }
      }
      if (have >= rt->spec.min_workers) {
        rt->min_reached_at = {};
        std::sort(idle.begin(), idle.end());
        idle.resize(std::min<size_t>(idle.size(), rt->spec.max_workers));
        StartGeneration(*rt, idle);
      } else {
        rt->min_reached_at = {};
        const auto limit =
            std::chrono::milliseconds(static_cast<int64_t>(rt->spec.recovery_timeout_s * 1000));
        if (state == v1::RECOVERING && now - rt->waiting_since > limit) {
          SetState(*rt, v1::FAILED,
                   absl::StrCat("waited ", rt->spec.recovery_timeout_s,
                                " s for min_workers=", rt->spec.min_workers, " idle workers, have ",
                                idle.size(), " (after: ", rt->job.reason(), ")"));
        }
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::unique_ptr<JobStore> store_;
  std::map<std::string, JobRuntime> jobs_;
  std::map<std::string, WorkerState> workers_;
  std::map<std::string, std::vector<v1::Checkpoint>> checkpoints_;
  int64_t incarnations_ = static_cast<int64_t>(UnixMs()) * 1000;  // unique across restarts
  std::string job_token_, worker_token_;
  std::thread scheduler_;
};

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Coordinator::~Coordinator() { impl_->Stop(); }
int Coordinator::port() const { return impl_->port_; }
void Coordinator::Wait() { impl_->server_->Wait(); }
void Coordinator::Shutdown() { impl_->Stop(); }

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const CoordinatorOptions& o) {
  if (o.state_dir.empty()) return absl::InvalidArgumentError("--state-dir is required");
  auto impl = std::make_unique<Impl>(o);
  if (absl::Status st = impl->Init(); !st.ok()) return st;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(o.host, ":", o.port), grpc::InsecureServerCredentials(),
                           &impl->port_);
  builder.RegisterService(static_cast<v1::JobService::Service*>(impl.get()));
  builder.RegisterService(static_cast<v1::WorkerService::Service*>(impl.get()));
  builder.RegisterService(static_cast<v1::CheckpointService::Service*>(impl.get()));
  impl->server_ = builder.BuildAndStart();
  if (impl->server_ == nullptr || impl->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.host, ":", o.port));
  }
  impl->StartScheduler();
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

}  // namespace copyforge
