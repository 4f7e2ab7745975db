#include "protos/bearer_token.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace copyforge {
namespace {

std::string Digest(absl::string_view text) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof(out));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(const std::string& path) {
  std::unique_ptr<TokenFile> file(new TokenFile(path));
  absl::MutexLock lock(&file->mu_);
  if (absl::Status st = file->Load(); !st.ok()) return st;
  return file;
}

absl::Status TokenFile::Load() const {
  struct stat st {};
  tokens_.clear();
  digests_.clear();
  if (::stat(path_.c_str(), &st) != 0) {
    inode_ = 0;
    size_ = -1;
    return absl::InvalidArgumentError(absl::StrCat(path_, ": cannot read the token file"));
  }
  inode_ = st.st_ino;
  size_ = st.st_size;
  mtime_ = st.st_mtim;
  std::ifstream in(path_, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    tokens_.emplace_back(line);
    digests_.push_back(Digest(line));
  }
  if (tokens_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": the token file holds no token"));
  }
  return absl::OkStatus();
}

void TokenFile::Refresh() const {
  struct stat st {};
  const bool exists = ::stat(path_.c_str(), &st) == 0;
  if (exists && st.st_ino == inode_ && st.st_size == size_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec) {
    return;
  }
  if (absl::Status s = Load(); !s.ok()) {
    std::fprintf(stderr, "auth: %s; accepting no token until it is fixed\n",
                 std::string(s.message()).c_str());
  }
}

bool TokenFile::Accepts(absl::string_view presented) const {
  const std::string digest = Digest(presented);
  absl::MutexLock lock(&mu_);
  Refresh();
  int match = 0;
  for (const std::string& d : digests_) {
    match |= CRYPTO_memcmp(d.data(), digest.data(), d.size()) == 0 ? 1 : 0;
  }
  return match != 0 && !presented.empty();
}

std::string TokenFile::Current() const {
  absl::MutexLock lock(&mu_);
  Refresh();
  return tokens_.empty() ? std::string() : tokens_.front();
}

std::string PresentedBearer(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return "";
  return std::string(value);
}

void AttachBearer(const TokenFile* token, grpc::ClientContext* context) {
  if (token == nullptr) return;
  const std::string current = token->Current();
  if (!current.empty()) context->AddMetadata("authorization", "Bearer " + current);
}

absl::StatusOr<std::unique_ptr<TokenFile>> OpenOptionalTokenFile(const std::string& path) {
  if (path.empty()) return std::unique_ptr<TokenFile>();
  return TokenFile::Open(path);
}

grpc::Status Unauthenticated() {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or invalid credentials");
}

}  // namespace copyforge
