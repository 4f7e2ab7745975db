// Bearer tokens from files, so that Kubernetes Secrets can mount them and an operator can rotate
// them without a restart. A token file holds one or more tokens, one per line (blank lines and
// lines starting with '#' are skipped): a server accepts any of them, a client sends the first.
// Files are re-read when they change (rotation: add the new token, roll the clients, remove the
// old one). A file that becomes unreadable or empty accepts nothing (fail closed).
#ifndef COPYFORGE_PROTOS_BEARER_TOKEN_H_
#define COPYFORGE_PROTOS_BEARER_TOKEN_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace copyforge {

// Thread-safe.
class TokenFile {
 public:
  // Reads `path` now: a missing, unreadable or empty file is an error naming it.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(const std::string& path);
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  // Whether `presented` is one of the file's tokens. Compares SHA-256 digests in constant time
  // against every token, so neither timing nor an early exit tells how close a guess was.
  bool Accepts(absl::string_view presented) const;
  // The first token (what a client sends).
  std::string Current() const;
  const std::string& path() const { return path_; }

 private:
  explicit TokenFile(std::string path) : path_(std::move(path)) {}
  // Re-reads the file when its inode, size or modification time changed.
  void Refresh() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Load() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  mutable std::vector<std::string> tokens_ ABSL_GUARDED_BY(mu_);
  mutable std::vector<std::string> digests_ ABSL_GUARDED_BY(mu_);  // SHA-256 of each token
  mutable ino_t inode_ ABSL_GUARDED_BY(mu_) = 0;
  mutable off_t size_ ABSL_GUARDED_BY(mu_) = -1;
  mutable timespec mtime_ ABSL_GUARDED_BY(mu_) = {};
};

// The token of an "authorization: Bearer <token>" header, or "" when there is none.
std::string PresentedBearer(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

// Client side: adds "authorization: Bearer <token>" from `token` (may be null: no header).
void AttachBearer(const TokenFile* token, grpc::ClientContext* context);

// Opens `path`, or returns null for an empty path.
absl::StatusOr<std::unique_ptr<TokenFile>> OpenOptionalTokenFile(const std::string& path);

// The status a caller without valid credentials gets: no hint of which part was wrong.
grpc::Status Unauthenticated();

}  // namespace copyforge

#endif  // COPYFORGE_PROTOS_BEARER_TOKEN_H_
