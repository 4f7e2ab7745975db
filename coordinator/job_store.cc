#include "coordinator/job_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace copyforge {
namespace {

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int i, const std::string& s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p == nullptr
               ? std::string()
               : std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open job store ", path, ": ", why));
  }
  std::unique_ptr<JobStore> store(new JobStore(db));
  sqlite3_busy_timeout(db, 5000);
  for (const char* sql : {
           "PRAGMA journal_mode=WAL",
           "PRAGMA synchronous=FULL",
           "CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, idempotency_key TEXT, job BLOB)",
           "CREATE TABLE IF NOT EXISTS generations(job_id TEXT, generation INTEGER, "
           "workers TEXT, rank0 BLOB, PRIMARY KEY(job_id, generation))",
           "CREATE TABLE IF NOT EXISTS checkpoints(job_id TEXT, step INTEGER, checkpoint BLOB, "
           "PRIMARY KEY(job_id, step))",
       }) {
    if (absl::Status st = store->Exec(sql); !st.ok()) {
      return absl::UnavailableError(absl::StrCat("job store ", path, ": ", st.message()));
    }
  }
  return store;
}

JobStore::~JobStore() { sqlite3_close(db_); }

absl::Status JobStore::Exec(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error ? error : "unknown error";
    sqlite3_free(error);
    return absl::InternalError(absl::StrCat("sqlite: ", why, " in: ", sql));
  }
  return absl::OkStatus();
}

namespace {
absl::Status Step(sqlite3* db, Statement& s, const char* what) {
  if (!s.ok() || sqlite3_step(s.get()) != SQLITE_DONE) {
    return absl::InternalError(absl::StrCat("job store: ", what, ": ", sqlite3_errmsg(db)));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status JobStore::PutJob(const v1::Job& job, const std::string& idempotency_key) {
  Statement s(db_,
              "INSERT INTO jobs(id, idempotency_key, job) VALUES(?1, ?2, ?3) "
              "ON CONFLICT(id) DO UPDATE SET job = excluded.job");
  s.Bind(1, job.id());
  s.Bind(2, idempotency_key);
  s.Bind(3, job.SerializeAsString());
  return Step(db_, s, "saving job");
}

absl::StatusOr<std::vector<StoredJob>> JobStore::LoadJobs() {
  Statement s(db_, "SELECT job, idempotency_key FROM jobs ORDER BY rowid");
  std::vector<StoredJob> jobs;
  while (s.ok() && sqlite3_step(s.get()) == SQLITE_ROW) {
    StoredJob stored;
    if (!stored.job.ParseFromString(s.Blob(0))) {
      return absl::DataLossError("job store: a corrupt job row");
    }
    stored.idempotency_key = s.Blob(1);
    jobs.push_back(std::move(stored));
  }
  return jobs;
}

absl::Status JobStore::PutGeneration(const std::string& job_id, int64_t generation,
                                     const v1::Assignment& rank0,
                                     const std::vector<std::string>& workers) {
  Statement s(db_, "INSERT OR REPLACE INTO generations VALUES(?1, ?2, ?3, ?4)");
  s.Bind(1, job_id);
  s.Bind(2, generation);
  s.Bind(3, absl::StrJoin(workers, ","));
  s.Bind(4, rank0.SerializeAsString());
  return Step(db_, s, "saving generation");
}

absl::Status JobStore::PutCheckpoint(const v1::Checkpoint& checkpoint) {
  Statement s(db_, "INSERT OR REPLACE INTO checkpoints VALUES(?1, ?2, ?3)");
  s.Bind(1, checkpoint.job_id());
  s.Bind(2, checkpoint.step());
  s.Bind(3, checkpoint.SerializeAsString());
  return Step(db_, s, "saving checkpoint");
}

absl::Status JobStore::Transaction(const std::function<absl::Status()>& body) {
  if (absl::Status st = Exec("BEGIN IMMEDIATE"); !st.ok()) return st;
  absl::Status st = body();
  if (st.ok()) st = Exec("COMMIT");
  if (!st.ok()) Exec("ROLLBACK").IgnoreError();
  return st;
}

absl::StatusOr<std::vector<v1::Checkpoint>> JobStore::LoadCheckpoints() {
  Statement s(db_, "SELECT checkpoint FROM checkpoints ORDER BY job_id, step");
  std::vector<v1::Checkpoint> out;
  while (s.ok() && sqlite3_step(s.get()) == SQLITE_ROW) {
    v1::Checkpoint c;
    if (!c.ParseFromString(s.Blob(0))) {
      return absl::DataLossError("job store: a corrupt checkpoint row");
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace copyforge
