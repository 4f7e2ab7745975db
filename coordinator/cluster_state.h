// The coordinator's cluster state: jobs, workers, generations and registered checkpoints, and
// every state transition. The gRPC services are thin adapters over it; a scheduler thread calls
// Tick. Thread-safe: one mutex guards everything, and each private helper says it needs it.
// Durable parts go to the JobStore inside the transition that changes them (related writes in
// one transaction).
#ifndef COPYFORGE_COORDINATOR_CLUSTER_STATE_H_
#define COPYFORGE_COORDINATOR_CLUSTER_STATE_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control.pb.h"
#include "coordinator/job_spec.h"
#include "coordinator/job_store.h"
#include "coordinator/storage_roots.h"

namespace copyforge {

struct ClusterOptions {
  double heartbeat_timeout_s = 10;    // a worker silent this long is dead
  int heartbeat_interval_ms = 500;    // what workers are told to use
  StorageRoots roots;                 // resolved (StorageRoots::Resolve)
  int max_jobs = 1000;                // jobs held (any state), --max-jobs
  int64_t max_spec_bytes = 64 << 10;  // spec_yaml size, --max-spec-bytes
};

// A checkpoint registration that passed the identity and path checks; the manifest is verified
// off the lock (and off the RPC thread) before CompleteCheckpoint records it.
struct CheckpointClaim {
  v1::Checkpoint checkpoint;  // path resolved inside the job's run directory
};

// Shared by the two files that implement ClusterState.
namespace cluster_internal {
int64_t UnixMs();
// NOT_FOUND naming the job reference a caller gave.
absl::Status NoJob(const std::string& ref);
}  // namespace cluster_internal

class ClusterState {
 public:
  using Clock = std::chrono::steady_clock;

  // Loads the stored jobs and checkpoints from `store`.
  static absl::StatusOr<std::unique_ptr<ClusterState>> Open(ClusterOptions options,
                                                            std::unique_ptr<JobStore> store);
  ClusterState(const ClusterState&) = delete;
  ClusterState& operator=(const ClusterState&) = delete;

  // ---- jobs (JobService) ----
  // Every `id` a JobService or CheckpointService method takes may also be a job's name: names are
  // unique among live jobs (a second live job of one name is ALREADY_EXISTS).
  struct Submitted {
    std::string job_id;
    bool existing = false;  // the idempotency key matched an earlier submission
  };
  absl::StatusOr<Submitted> SubmitJob(const std::string& spec_yaml,
                                      const std::string& idempotency_key) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> GetJob(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<v1::Job> ListJobs() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> CancelJob(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // The job once it differs from `last` (its serialized form; empty: at once), or after
  // `timeout` as it is; UNAVAILABLE once stopping.
  absl::StatusOr<v1::Job> AwaitJob(const std::string& id, const std::string& last,
                                   absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // ---- workers (WorkerService) ----
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& r)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Only the current rank 0 of a RUNNING job's current generation, with its session, for a
  // directory inside the job's run directory.
  absl::StatusOr<CheckpointClaim> ClaimCheckpoint(const v1::RegisterCheckpointRequest& r)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records a verified claim (`manifest_sha256`), or counts a refused one (DATA_LOSS); either
  // may complete the job. Any other error is no verdict: the claim is given up, the worker
  // retries.
  absl::StatusOr<v1::Checkpoint> CompleteCheckpoint(
      const CheckpointClaim& claim, const absl::StatusOr<std::string>& manifest_sha256)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Gives up a claim that was never verified (the verifier was full or stopping).
  void ReleaseClaim(const CheckpointClaim& claim) ABSL_LOCKS_EXCLUDED(mu_);

  // ---- checkpoints (CheckpointService) ----
  absl::StatusOr<std::vector<v1::Checkpoint>> ListCheckpoints(const std::string& job_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Checkpoint> LatestCheckpoint(const std::string& job_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Checkpoints of `job_id` (empty: every job) newer than `sent` (job -> newest step already
  // sent; a job not in it gets only its latest), waiting up to `timeout` for one unless `first`.
  absl::StatusOr<std::vector<v1::Checkpoint>> AwaitCheckpoints(const std::string& job_id,
                                                               std::map<std::string, int64_t>* sent,
                                                               bool first, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  // One scheduler pass: expires silent workers, adopts or recovers generations after a restart,
  // starts waiting jobs on idle workers.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);
  // Wakes every waiter; Await* return UNAVAILABLE from now on.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Worker {
    int64_t incarnation = 0;
    std::string session_digest;  // SHA-256 of the registration's session credential
    std::string host, device;
    int cores = 0;
    int rendezvous_port = 0;
    Clock::time_point last_seen;
    v1::WorkerPhase phase = v1::IDLE;
    std::string job_id;  // the generation this worker belongs to (empty: none)
    int64_t generation = 0;
    int rank = -1;
    bool done = false;
    bool pending_start = false;
    v1::Assignment assignment;
  };
  struct Job {
    v1::Job job;
    JobSpec spec;
    std::string idempotency_key;
    // Resolved, confined paths (StorageRoots).
    std::string data_dir, run_dir, model_path, init_from;
    int pending_verifications = 0;
    Clock::time_point waiting_since = Clock::now();
    Clock::time_point adopt_deadline{};  // after a restart: how long RUNNING waits for workers
    Clock::time_point min_reached_at{};  // when min_workers first were idle (rendezvous window)
  };

  ClusterState(ClusterOptions options, std::unique_ptr<JobStore> store);
  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  // Resolves and confines the spec's paths into `job`; errors name the field.
  absl::Status ConfineJobPaths(Job* job) const;
  // By id only (workers and claims name jobs by id).
  Job* FindJob(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What a user or a serving replica names: an id, or a name (its live job, else the newest job
  // of that name), so a deployment can follow a job by the name in its YAML.
  Job* ResolveJob(const std::string& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckRunDirFree(const Job& job) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker whose registration `session` proves, or PERMISSION_DENIED / NOT_FOUND.
  absl::StatusOr<Worker*> Authenticate(const std::string& worker_id, const std::string& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void Save(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetState(Job& job, v1::JobState state, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseWorkers(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoseWorker(const std::string& id, Worker& w, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeSucceed(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartGeneration(Job& job, const std::vector<std::string>& ranked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AdoptOrRecover(Job& job, Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TrySchedule(Job& job, Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyRunReport(Worker& w, const std::string& worker_id, const v1::HeartbeatRequest& r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Changed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { changed_.SignalAll(); }

  // Constant after construction.
  const ClusterOptions options_;
  const std::unique_ptr<JobStore> store_;  // used under mu_ only

  absl::Mutex mu_;
  absl::CondVar changed_;  // signalled on every change of jobs_, workers_ or checkpoints_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  // Per job, ordered by step.
  std::map<std::string, std::vector<v1::Checkpoint>> checkpoints_ ABSL_GUARDED_BY(mu_);
  int64_t incarnations_ ABSL_GUARDED_BY(mu_);  // unique across restarts (starts at a clock)
};

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_CLUSTER_STATE_H_
