// The coordinator's durable state in SQLite (WAL mode, one file under --state-dir): jobs with
// their state and progress, the generations they ran (which workers, from which checkpoint) and
// registered checkpoints. Records are the control.proto messages, serialized; every write (or
// Transaction) is one transaction, so a SIGKILL at any point leaves the last committed state.
#ifndef COPYFORGE_COORDINATOR_JOB_STORE_H_
#define COPYFORGE_COORDINATOR_JOB_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control.pb.h"

struct sqlite3;

namespace copyforge {

struct StoredJob {
  v1::Job job;
  std::string idempotency_key;
};

class JobStore {
 public:
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts or replaces the job (and its idempotency key).
  absl::Status PutJob(const v1::Job& job, const std::string& idempotency_key);
  // Every job with the idempotency key it was submitted with, in submission order.
  absl::StatusOr<std::vector<StoredJob>> LoadJobs();
  absl::Status PutGeneration(const std::string& job_id, int64_t generation,
                             const v1::Assignment& rank0, const std::vector<std::string>& workers);
  absl::Status PutCheckpoint(const v1::Checkpoint& checkpoint);
  absl::StatusOr<std::vector<v1::Checkpoint>> LoadCheckpoints();
  // Runs `body` (a sequence of Put calls) as one transaction: all of its writes commit or none.
  absl::Status Transaction(const std::function<absl::Status()>& body);

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const std::string& sql);
  sqlite3* db_;
};

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_JOB_STORE_H_
