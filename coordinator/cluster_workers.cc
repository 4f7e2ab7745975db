// ClusterState: workers (registration, sessions, heartbeats, generation membership) and the
// checkpoint registry.
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "coordinator/cluster_state.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

using cluster_internal::NoJob;
using cluster_internal::UnixMs;
using v1::HeartbeatResponse;

// A fresh session credential: 32 random bytes, hex.
absl::StatusOr<std::string> NewSession() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("no randomness for a worker session");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

bool SameDigest(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::Status Denied() {
  return absl::PermissionDeniedError("the session does not match this worker's registration");
}

}  // namespace

absl::StatusOr<ClusterState::Worker*> ClusterState::Authenticate(const std::string& worker_id,
                                                                 const std::string& session) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::NotFoundError("unknown worker");
  if (session.empty() || !SameDigest(Sha256Hex(session), it->second.session_digest)) {
    return Denied();
  }
  return &it->second;
}

absl::StatusOr<v1::RegisterWorkerResponse> ClusterState::RegisterWorker(
    const v1::RegisterWorkerRequest& r) {
  if (r.worker_id().empty() || r.worker_id().size() > 253) {
    return absl::InvalidArgumentError("worker_id must be 1 to 253 bytes");
  }
  auto session = NewSession();
  if (!session.ok()) return session.status();
  absl::MutexLock lock(&mu_);
  auto existing = workers_.find(r.worker_id());
  if (existing != workers_.end()) {
    // A live registration belongs to whoever holds its session; anyone else waits until it
    // expires (missed heartbeats) or leaves.
    if (r.session().empty() ||
        !SameDigest(Sha256Hex(r.session()), existing->second.session_digest)) {
      return absl::PermissionDeniedError(
          absl::StrCat("worker id ", r.worker_id(), " is registered to a live session"));
    }
    if (!existing->second.job_id.empty()) {
      LoseWorker(r.worker_id(), existing->second, "re-registered (restarted)");
    }
  }
  Worker& w = workers_[r.worker_id()];
  w = Worker();
  w.incarnation = ++incarnations_;
  w.session_digest = Sha256Hex(*session);
  w.host = r.host();
  w.device = r.device();
  w.cores = r.cores();
  w.rendezvous_port = r.rendezvous_port();
  w.last_seen = Clock::now();
  w.phase = r.job_id().empty() ? v1::IDLE : v1::TRAINING;
  // A member of a RUNNING job's current generation coming back after a coordinator restart:
  // only under the id that generation recorded for that rank.
  if (!r.job_id().empty()) {
    const Job* job = FindJob(r.job_id());
    if (job != nullptr && job->job.state() == v1::RUNNING &&
        job->job.generation() == r.generation() && r.rank() >= 0 &&
        r.rank() < job->job.workers_size() && job->job.workers(r.rank()) == r.worker_id()) {
      w.job_id = r.job_id();
      w.generation = r.generation();
      w.rank = r.rank();
    }
  }
  v1::RegisterWorkerResponse response;
  response.set_incarnation(w.incarnation);
  response.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  response.set_session(*session);
  Changed();
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> ClusterState::Heartbeat(const v1::HeartbeatRequest& r) {
  absl::MutexLock lock(&mu_);
  HeartbeatResponse response;
  auto known = workers_.find(r.worker_id());
  if (known == workers_.end()) {
    response.set_action(HeartbeatResponse::REREGISTER);  // e.g. the coordinator restarted
    return response;
  }
  auto authenticated = Authenticate(r.worker_id(), r.session());
  if (!authenticated.ok()) return authenticated.status();
  Worker& w = **authenticated;
  if (w.incarnation != r.incarnation()) {
    response.set_action(HeartbeatResponse::REREGISTER);
    return response;
  }
  w.last_seen = Clock::now();
  w.phase = r.phase();
  if (r.rendezvous_port() > 0 && r.rendezvous_port() < 65536)
    w.rendezvous_port = r.rendezvous_port();
  if (r.phase() == v1::LEAVING) {
    LoseWorker(r.worker_id(), w, "left (SIGTERM)");
    workers_.erase(r.worker_id());
    Changed();
    return response;
  }
  const bool reports_run =
      r.phase() == v1::TRAINING || r.phase() == v1::DONE || r.phase() == v1::FAILED_RUN;
  const bool current =
      !w.job_id.empty() && r.job_id() == w.job_id && r.generation() == w.generation;
  if (reports_run && !current) {
    // A run of an old generation, a cancelled job, or one never assigned: stop it.
    if (r.phase() == v1::TRAINING) response.set_action(HeartbeatResponse::ABORT);
    return response;
  }
  if (current) ApplyRunReport(w, r.worker_id(), r);
  if (w.pending_start) {
    w.pending_start = false;
    response.set_action(HeartbeatResponse::START);
    *response.mutable_assignment() = w.assignment;
  }
  return response;
}

void ClusterState::ApplyRunReport(Worker& w, const std::string& worker_id,
                                  const v1::HeartbeatRequest& r) {
  Job* job = FindJob(w.job_id);
  if (job == nullptr) return;
  if (r.phase() == v1::TRAINING && w.rank == 0 && r.step() > 0) {
    job->job.set_step(std::min(r.step(), job->job.total_steps()));
    job->job.set_loss(std::isfinite(r.loss()) ? r.loss() : 0);
    job->job.set_tokens_per_s(std::isfinite(r.tokens_per_s()) ? r.tokens_per_s() : 0);
    job->job.set_eta_s(std::isfinite(r.eta_s()) ? r.eta_s() : 0);
    Save(*job);
  } else if (r.phase() == v1::FAILED_RUN) {
    const std::string error = r.error().substr(0, 2048);
    if (r.permanent()) {
      ReleaseWorkers(*job);
      job->job.set_generation(job->job.generation() + 1);
      SetState(*job, v1::FAILED,
               absl::StrCat("worker ", worker_id, " (rank ", w.rank, ") failed: ", error));
      return;
    }
    LoseWorker(worker_id, w, absl::StrCat("failed: ", error));
  } else if (r.phase() == v1::DONE) {
    w.done = true;
    MaybeSucceed(*job);
  }
}

void ClusterState::ReleaseWorkers(Job& job) {
  for (auto& [id, w] : workers_) {
    if (w.job_id == job.job.id()) {
      w.job_id.clear();
      w.rank = -1;
      w.done = false;
      w.pending_start = false;
    }
  }
  job.job.clear_workers();
}

void ClusterState::LoseWorker(const std::string& id, Worker& w, const std::string& why) {
  if (w.job_id.empty()) return;
  Job* job = FindJob(w.job_id);
  if (job == nullptr) return;
  Job& rt = *job;
  if (rt.job.state() != v1::RUNNING || rt.job.generation() != w.generation) return;
  const std::string reason = w.rank >= 0 ? absl::StrCat("worker ", id, " (rank ", w.rank, ") ", why)
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

// SUCCEEDED needs more than DONE reports: the current generation's rank 0 must have registered
// the final step's checkpoint and it must have verified.
void ClusterState::MaybeSucceed(Job& rt) {
  if (rt.job.state() != v1::RUNNING || stopping_) return;
  int members = 0, done = 0;
  for (const auto& [id, w] : workers_) {
    if (w.job_id == rt.job.id() && w.generation == rt.job.generation()) {
      ++members;
      done += w.done ? 1 : 0;
    }
  }
  if (members == 0 || members != done) return;
  const int64_t final_step = rt.job.total_steps();
  bool verified_final = false;
  for (const v1::Checkpoint& c : checkpoints_[rt.job.id()]) {
    verified_final |= c.step() == final_step && c.generation() == rt.job.generation();
  }
  if (!verified_final && rt.pending_verifications > 0) return;  // decided when it completes
  ReleaseWorkers(rt);
  if (!verified_final) {
    SetState(rt, v1::FAILED,
             absl::StrCat("every rank reported DONE, but rank 0 registered no verified "
                          "checkpoint of the final step ",
                          final_step));
    return;
  }
  rt.job.set_step(final_step);
  SetState(rt, v1::SUCCEEDED, absl::StrCat("trained ", final_step, " steps"));
}

absl::StatusOr<CheckpointClaim> ClusterState::ClaimCheckpoint(
    const v1::RegisterCheckpointRequest& r) {
  absl::MutexLock lock(&mu_);
  auto authenticated = Authenticate(r.worker_id(), r.session());
  if (!authenticated.ok()) {
    return absl::IsNotFound(authenticated.status()) ? Denied() : authenticated.status();
  }
  const Worker& w = **authenticated;
  const v1::Checkpoint& c = r.checkpoint();
  Job* job = FindJob(c.job_id());
  if (job == nullptr || w.incarnation != r.incarnation() || w.job_id != c.job_id() || w.rank != 0 ||
      w.generation != job->job.generation() || job->job.state() != v1::RUNNING) {
    return absl::PermissionDeniedError(
        "only the current rank 0 of a running job's current generation registers checkpoints");
  }
  if (c.step() < 0 || c.step() > job->job.total_steps()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint.step ", c.step(), " is outside 0..", job->job.total_steps()));
  }
  std::error_code ec;
  const std::string resolved = std::filesystem::canonical(c.path(), ec).string();
  if (ec || !IsInside(resolved, job->run_dir) || !std::filesystem::is_directory(resolved, ec)) {
    return absl::InvalidArgumentError(
        "checkpoint.path is not a directory inside the job's run directory");
  }
  CheckpointClaim claim;
  claim.checkpoint = c;
  claim.checkpoint.set_path(resolved);
  claim.checkpoint.set_generation(w.generation);
  if (!std::isfinite(c.val_loss())) claim.checkpoint.set_val_loss(std::nan(""));
  ++job->pending_verifications;
  return claim;
}

absl::StatusOr<v1::Checkpoint> ClusterState::CompleteCheckpoint(
    const CheckpointClaim& claim, const absl::StatusOr<std::string>& manifest_sha256) {
  absl::MutexLock lock(&mu_);
  const v1::Checkpoint& c = claim.checkpoint;
  Job* job = FindJob(c.job_id());
  if (job == nullptr) return NoJob(c.job_id());
  --job->pending_verifications;
  if (!manifest_sha256.ok() && !absl::IsDataLoss(manifest_sha256.status())) {
    return manifest_sha256.status();  // not a verdict (the verifier stopped): the worker retries
  }
  if (!manifest_sha256.ok()) {
    std::fprintf(stderr, "coordinator: job %s: checkpoint %s refused: %s\n", c.job_id().c_str(),
                 c.path().c_str(), std::string(manifest_sha256.status().message()).c_str());
    MaybeSucceed(*job);
    return absl::DataLossError(
        absl::StrCat("checkpoint ", c.path(), " refused: ", manifest_sha256.status().message()));
  }
  if (job->job.state() != v1::RUNNING || job->job.generation() != c.generation()) {
    return absl::FailedPreconditionError("the generation ended while the checkpoint verified");
  }
  v1::Checkpoint stored = c;
  stored.set_created_unix_ms(UnixMs());
  stored.set_manifest_sha256(*manifest_sha256);
  job->job.set_latest_checkpoint(stored.path());
  job->job.set_updated_unix_ms(UnixMs());
  auto& list = checkpoints_[c.job_id()];
  const int64_t newest = list.empty() ? -1 : list.back().step();
  if (stored.step() < newest) job->job.set_latest_checkpoint(list.back().path());
  // The checkpoint and the job that points at it commit together.
  const absl::Status st = store_->Transaction([&] {
    if (absl::Status s = store_->PutCheckpoint(stored); !s.ok()) return s;
    return store_->PutJob(job->job, job->idempotency_key);
  });
  if (!st.ok()) return st;
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const v1::Checkpoint& x) { return x.step() == c.step(); }),
             list.end());
  list.push_back(stored);
  std::sort(list.begin(), list.end(),
            [](const v1::Checkpoint& a, const v1::Checkpoint& b) { return a.step() < b.step(); });
  Changed();
  MaybeSucceed(*job);
  return stored;
}

void ClusterState::ReleaseClaim(const CheckpointClaim& claim) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJob(claim.checkpoint.job_id());
  if (job != nullptr) --job->pending_verifications;  // the worker retries; no verdict yet
}

absl::StatusOr<std::vector<v1::Checkpoint>> ClusterState::ListCheckpoints(const std::string& ref) {
  absl::MutexLock lock(&mu_);
  const Job* resolved = ref.empty() ? nullptr : ResolveJob(ref);
  if (!ref.empty() && resolved == nullptr) {
    return NoJob(ref);
  }
  std::vector<v1::Checkpoint> out;
  for (const auto& [job, list] : checkpoints_) {
    if (resolved != nullptr && job != resolved->job.id()) continue;
    out.insert(out.end(), list.begin(), list.end());
  }
  return out;
}

absl::StatusOr<v1::Checkpoint> ClusterState::LatestCheckpoint(const std::string& ref) {
  absl::MutexLock lock(&mu_);
  const Job* job = ResolveJob(ref);
  if (job == nullptr) return NoJob(ref);
  auto it = checkpoints_.find(job->job.id());
  if (it == checkpoints_.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("job ", ref, " has no checkpoint yet"));
  }
  return it->second.back();
}

absl::StatusOr<std::vector<v1::Checkpoint>> ClusterState::AwaitCheckpoints(
    const std::string& ref, std::map<std::string, int64_t>* sent, bool first,
    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!first) changed_.WaitWithTimeout(&mu_, timeout);
  if (stopping_) return absl::UnavailableError("coordinator stopping");
  // Resolved at every pass: following a name moves on to a newer job of that name.
  const Job* resolved = ref.empty() ? nullptr : ResolveJob(ref);
  std::vector<v1::Checkpoint> out;
  if (!ref.empty() && resolved == nullptr) return out;
  for (const auto& [job, list] : checkpoints_) {
    if ((resolved != nullptr && job != resolved->job.id()) || list.empty()) continue;
    auto s = sent->find(job);
    if (s == sent->end()) {
      out.push_back(list.back());  // the latest first
    } else {
      for (const v1::Checkpoint& c : list) {
        if (c.step() > s->second) out.push_back(c);
      }
    }
    (*sent)[job] = list.back().step();
  }
  return out;
}

}  // namespace copyforge
