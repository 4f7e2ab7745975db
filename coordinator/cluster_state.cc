// ClusterState: jobs and the scheduler. Worker and checkpoint transitions are in
// cluster_workers.cc.
#include "coordinator/cluster_state.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/placement.h"

namespace copyforge {
namespace cluster_internal {

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status NoJob(const std::string& ref) {
  return absl::NotFoundError(absl::StrCat("no job \"", ref, "\""));
}

}  // namespace cluster_internal

namespace {

using cluster_internal::NoJob;
using cluster_internal::UnixMs;

bool Terminal(v1::JobState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

std::string NewJobId() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  return absl::StrCat("job-", absl::Hex(UnixMs() & 0xffffffffff), "-", absl::Hex(rng() & 0xffff));
}

}  // namespace

ClusterState::ClusterState(ClusterOptions options, std::unique_ptr<JobStore> store)
    : options_(std::move(options)), store_(std::move(store)), incarnations_(UnixMs() * 1000) {}

absl::StatusOr<std::unique_ptr<ClusterState>> ClusterState::Open(ClusterOptions options,
                                                                 std::unique_ptr<JobStore> store) {
  std::unique_ptr<ClusterState> state(new ClusterState(std::move(options), std::move(store)));
  if (absl::Status st = state->Load(); !st.ok()) return st;
  return state;
}

absl::Status ClusterState::Load() {
  absl::MutexLock lock(&mu_);
  auto jobs = store_->LoadJobs();
  if (!jobs.ok()) return jobs.status();
  for (StoredJob& stored : *jobs) {
    const v1::Job& job = stored.job;
    auto spec = ParseJobSpec(job.spec_yaml(), job.id());
    if (!spec.ok()) return spec.status();
    Job& rt = jobs_[job.id()];
    rt.job = job;
    rt.spec = *std::move(spec);
    rt.idempotency_key = std::move(stored.idempotency_key);
    if (absl::Status st = ConfineJobPaths(&rt); !st.ok() && !Terminal(job.state())) {
      // Started again with other roots: a live job outside them may not go on.
      ReleaseWorkers(rt);
      SetState(rt, v1::FAILED, absl::StrCat("after a coordinator restart: ", st.message()));
      continue;
    }
    if (job.state() == v1::RUNNING) {
      // Its workers may still be training: give them a heartbeat timeout to re-register.
      rt.adopt_deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                             options_.heartbeat_timeout_s * 1000 * 1.5));
    }
  }
  auto checkpoints = store_->LoadCheckpoints();
  if (!checkpoints.ok()) return checkpoints.status();
  for (v1::Checkpoint& c : *checkpoints) checkpoints_[c.job_id()].push_back(c);
  for (auto& [job, list] : checkpoints_) {
    std::sort(list.begin(), list.end(),
              [](const v1::Checkpoint& a, const v1::Checkpoint& b) { return a.step() < b.step(); });
  }
  return absl::OkStatus();
}

absl::Status ClusterState::ConfineJobPaths(Job* job) const {
  const StorageRoots& roots = options_.roots;
  // A relative path is taken against the first root of its kind.
  auto resolve = [](const std::string& path, const std::vector<std::string>& list,
                    const std::string& field) -> absl::StatusOr<std::string> {
    if (path.empty()) return std::string();
    const std::string absolute = path[0] == '/' ? path : absl::StrCat(list.front(), "/", path);
    return ConfinePath(absolute, list, field);
  };
  std::vector<std::string> checkpoint_roots = roots.runs;
  checkpoint_roots.insert(checkpoint_roots.end(), roots.data.begin(), roots.data.end());
  const TrainConfig& t = job->spec.train;
  auto data = resolve(t.data, roots.data, "train.data");
  if (!data.ok()) return data.status();
  auto run = resolve(t.out, roots.runs, "train.out");
  if (!run.ok()) return run.status();
  auto model = resolve(t.model, roots.data, "train.model");
  if (!model.ok()) return model.status();
  auto init = resolve(t.init_from, checkpoint_roots, "train.init_from");
  if (!init.ok()) return init.status();
  job->data_dir = *data;
  job->run_dir = *run;
  job->model_path = *model;
  job->init_from = *init;
  return absl::OkStatus();
}

absl::Status ClusterState::CheckRunDirFree(const Job& job) const {
  for (const auto& [id, other] : jobs_) {
    if (Terminal(other.job.state()) || other.run_dir.empty()) continue;
    if (PathsOverlap(job.run_dir, other.run_dir)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "train.out \"", job.spec.train.out, "\" overlaps the run directory ", other.run_dir,
          " of live job ", id, " (two live jobs may not share a run directory)"));
    }
  }
  return absl::OkStatus();
}

ClusterState::Job* ClusterState::FindJob(const std::string& id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

ClusterState::Job* ClusterState::ResolveJob(const std::string& ref) {
  if (Job* job = FindJob(ref); job != nullptr) return job;
  Job* newest = nullptr;
  for (auto& [id, job] : jobs_) {
    if (job.job.name() != ref) continue;
    if (!Terminal(job.job.state())) return &job;  // at most one live job has a name
    if (newest == nullptr || job.job.created_unix_ms() > newest->job.created_unix_ms()) {
      newest = &job;
    }
  }
  return newest;
}

absl::StatusOr<ClusterState::Submitted> ClusterState::SubmitJob(const std::string& spec_yaml,
                                                                const std::string& key) {
  if (static_cast<int64_t>(spec_yaml.size()) > options_.max_spec_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("spec_yaml is ", spec_yaml.size(),
                                                   " bytes; the limit is ", options_.max_spec_bytes,
                                                   " (--max-spec-bytes)"));
  }
  if (key.size() > 256) {
    return absl::InvalidArgumentError("idempotency_key is longer than the limit of 256 bytes");
  }
  auto spec = ParseJobSpec(spec_yaml, "spec_yaml");
  if (!spec.ok()) return spec.status();
  Job rt;
  rt.spec = *std::move(spec);
  if (absl::Status st = ConfineJobPaths(&rt); !st.ok()) return st;
  absl::MutexLock lock(&mu_);
  if (!key.empty()) {
    for (const auto& [id, other] : jobs_) {
      if (other.idempotency_key == key) return Submitted{id, true};
    }
  }
  if (static_cast<int>(jobs_.size()) >= options_.max_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat("the coordinator holds ", jobs_.size(),
                                                     " jobs, its limit (--max-jobs ",
                                                     options_.max_jobs, ")"));
  }
  for (const auto& [id, other] : jobs_) {
    if (other.job.name() == rt.spec.name && !Terminal(other.job.state())) {
      return absl::AlreadyExistsError(absl::StrCat("name \"", rt.spec.name,
                                                   "\" belongs to live job ", id,
                                                   " (cancel it, or give this job another name)"));
    }
  }
  if (absl::Status st = CheckRunDirFree(rt); !st.ok()) return st;
  rt.job.set_id(NewJobId());
  rt.job.set_name(rt.spec.name);
  rt.job.set_state(v1::PENDING);
  rt.job.set_reason(absl::StrCat("waiting for ", rt.spec.min_workers, " idle worker(s)"));
  rt.job.set_total_steps(rt.spec.train.steps);
  rt.job.set_spec_yaml(spec_yaml);
  rt.job.set_min_workers(rt.spec.min_workers);
  rt.job.set_max_workers(rt.spec.max_workers);
  rt.job.set_created_unix_ms(UnixMs());
  rt.job.set_updated_unix_ms(UnixMs());
  rt.idempotency_key = key;
  if (absl::Status st = store_->PutJob(rt.job, rt.idempotency_key); !st.ok()) return st;
  const std::string id = rt.job.id();
  jobs_[id] = std::move(rt);
  Changed();
  return Submitted{id, false};
}

absl::StatusOr<v1::Job> ClusterState::GetJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  const Job* job = ResolveJob(id);
  if (job == nullptr) return NoJob(id);
  return job->job;
}

std::vector<v1::Job> ClusterState::ListJobs() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> jobs;
  for (const auto& [id, rt] : jobs_) jobs.push_back(rt.job);
  std::sort(jobs.begin(), jobs.end(), [](const v1::Job& a, const v1::Job& b) {
    return a.created_unix_ms() < b.created_unix_ms();
  });
  return jobs;
}

absl::StatusOr<v1::Job> ClusterState::CancelJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Job* job = ResolveJob(id);
  if (job == nullptr) return NoJob(id);
  if (!Terminal(job->job.state())) {
    ReleaseWorkers(*job);
    job->job.set_generation(job->job.generation() + 1);  // stale generation: workers abort
    SetState(*job, v1::CANCELLED, "cancelled by the user");
  }
  return job->job;
}

absl::StatusOr<v1::Job> ClusterState::AwaitJob(const std::string& id, const std::string& last,
                                               absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (stopping_) return absl::UnavailableError("coordinator stopping");
    const Job* job = ResolveJob(id);
    if (job == nullptr) return NoJob(id);
    if (last.empty() || job->job.SerializeAsString() != last) return job->job;
    if (changed_.WaitWithDeadline(&mu_, deadline)) return job->job;
  }
}

void ClusterState::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  Changed();
}

void ClusterState::Save(Job& job) {
  job.job.set_updated_unix_ms(UnixMs());
  if (absl::Status st = store_->PutJob(job.job, job.idempotency_key); !st.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", std::string(st.message()).c_str());
  }
  Changed();
}

void ClusterState::SetState(Job& job, v1::JobState state, const std::string& reason) {
  if (job.job.state() != state || job.job.reason() != reason) {
    std::fprintf(stderr, "coordinator: job %s %s -> %s%s%s\n", job.job.id().c_str(),
                 v1::JobState_Name(job.job.state()).c_str(), v1::JobState_Name(state).c_str(),
                 reason.empty() ? "" : ": ", reason.c_str());
  }
  job.job.set_state(state);
  job.job.set_reason(reason);
  job.waiting_since = Clock::now();
  Save(job);
}

void ClusterState::StartGeneration(Job& rt, const std::vector<std::string>& ranked) {
  rt.job.set_generation(rt.job.generation() + 1);
  rt.job.clear_workers();
  const Worker& leader = workers_[ranked[0]];
  v1::Assignment a;
  a.set_job_id(rt.job.id());
  a.set_generation(rt.job.generation());
  a.set_world(static_cast<int>(ranked.size()));
  a.set_store_host(leader.host);
  a.set_store_port(leader.rendezvous_port);
  a.set_backend(rt.spec.train.backend);
  a.set_data_dir(rt.data_dir);
  a.set_out_dir(rt.run_dir);
  a.set_model_path(rt.model_path);
  a.set_init_from(rt.init_from);
  a.set_resume_from(rt.job.latest_checkpoint());
  a.set_train_config_yaml(rt.spec.train_yaml);
  for (size_t r = 0; r < ranked.size(); ++r) {
    Worker& w = workers_[ranked[r]];
    w.job_id = rt.job.id();
    w.generation = rt.job.generation();
    w.rank = static_cast<int>(r);
    w.done = false;
    w.pending_start = true;
    w.phase = v1::TRAINING;
    w.assignment = a;
    w.assignment.set_rank(static_cast<int>(r));
    rt.job.add_workers(ranked[r]);
  }
  rt.job.set_state(v1::RUNNING);
  rt.job.set_reason(
      absl::StrCat("generation ", rt.job.generation(), " on ", ranked.size(), " worker(s)",
                   a.resume_from().empty() ? "" : ", resumed from " + a.resume_from()));
  rt.job.set_updated_unix_ms(UnixMs());
  // The generation and the job that names it commit together.
  const absl::Status st = store_->Transaction([&] {
    if (absl::Status s = store_->PutGeneration(rt.job.id(), rt.job.generation(), a, ranked);
        !s.ok()) {
      return s;
    }
    return store_->PutJob(rt.job, rt.idempotency_key);
  });
  if (!st.ok()) std::fprintf(stderr, "coordinator: %s\n", std::string(st.message()).c_str());
  std::fprintf(stderr, "coordinator: job %s -> RUNNING: %s\n", rt.job.id().c_str(),
               rt.job.reason().c_str());
  rt.waiting_since = Clock::now();
  Changed();
}

void ClusterState::AdoptOrRecover(Job& rt, Clock::time_point now) {
  int back = 0;
  for (const auto& [id, w] : workers_) {
    back += (w.job_id == rt.job.id() && w.generation == rt.job.generation()) ? 1 : 0;
  }
  if (back == rt.job.workers_size()) {
    rt.adopt_deadline = {};
    std::fprintf(stderr, "coordinator: job %s: all %d workers are back; continuing\n",
                 rt.job.id().c_str(), back);
  } else if (now > rt.adopt_deadline) {
    rt.adopt_deadline = {};
    std::vector<std::string> missing;
    for (const std::string& id : rt.job.workers()) {
      auto w = workers_.find(id);
      if (w == workers_.end() || w->second.job_id != rt.job.id()) missing.push_back(id);
    }
    Worker gone;
    gone.job_id = rt.job.id();
    gone.generation = rt.job.generation();
    LoseWorker(absl::StrJoin(missing, ", "), gone,
               "did not come back after the coordinator restarted");
  }
}

void ClusterState::TrySchedule(Job& rt, Clock::time_point now) {
  std::vector<IdleWorker> idle;
  for (const auto& [id, w] : workers_) {
    if (w.phase == v1::IDLE && w.job_id.empty() && w.rendezvous_port > 0) {
      idle.push_back({id, w.device, w.cores});
    }
  }
  const int have = static_cast<int>(idle.size());
  if (have >= rt.spec.min_workers && have < rt.spec.max_workers) {
    // Enough to start; give more workers a short window to join (up to max_workers), as
    // torchrun's rendezvous "last call" does.
    if (rt.min_reached_at == Clock::time_point{}) rt.min_reached_at = now;
    if (now - rt.min_reached_at <
        std::chrono::milliseconds(static_cast<int64_t>(rt.spec.rendezvous_wait_s * 1000))) {
      return;
    }
  }
  rt.min_reached_at = {};
  const std::vector<std::string> ranked =
      PlaceJob(rt.spec.min_workers, rt.spec.max_workers, rt.spec.train.device, std::move(idle));
  if (!ranked.empty()) {
    StartGeneration(rt, ranked);
    return;
  }
  const auto limit =
      std::chrono::milliseconds(static_cast<int64_t>(rt.spec.recovery_timeout_s * 1000));
  if (rt.job.state() == v1::RECOVERING && now - rt.waiting_since > limit) {
    SetState(rt, v1::FAILED,
             absl::StrCat("waited ", rt.spec.recovery_timeout_s,
                          " s for min_workers=", rt.spec.min_workers, " idle workers, have ", have,
                          " (after: ", rt.job.reason(), ")"));
  }
}

void ClusterState::Tick() {
  absl::MutexLock lock(&mu_);
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
      Changed();
    } else {
      ++it;
    }
  }
  std::vector<Job*> order;
  for (auto& [id, rt] : jobs_) order.push_back(&rt);
  std::sort(order.begin(), order.end(), [](const Job* a, const Job* b) {
    return a->job.created_unix_ms() < b->job.created_unix_ms();
  });
  for (Job* rt : order) {
    const v1::JobState state = rt->job.state();
    if (state == v1::RUNNING && rt->adopt_deadline != Clock::time_point{}) {
      AdoptOrRecover(*rt, now);
    } else if (state == v1::PENDING || state == v1::RECOVERING) {
      TrySchedule(*rt, now);
    }
  }
}

}  // namespace copyforge
