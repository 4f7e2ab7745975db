#include "trainer/common/file_util.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace fs = std::filesystem;

namespace {

absl::Status ErrnoError(const char* what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return ErrnoError("cannot open", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("cannot fsync", path);
  return absl::OkStatus();
}

constexpr char kStagingMark[] = ".tmp-";

// ".tmp-<pid>-<random>": StagingOwnerPid reads the pid back.
std::string UniqueSuffix() {
  std::random_device rd;
  return absl::StrCat(kStagingMark, ::getpid(), "-", rd());
}

std::string Hex(const unsigned char* data, unsigned len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

using DigestCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

DigestCtx NewSha256() {
  DigestCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  return ctx;
}

std::string FinishHex(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  return Hex(digest, len);
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return ErrnoError("cannot read", path);
  return data;
}

absl::Status WriteFileSynced(const std::string& path, std::string_view contents) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", path);
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status st = ErrnoError("cannot write", path);
      ::close(fd);
      return st;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status st = ErrnoError("cannot fsync", path);
    ::close(fd);
    return st;
  }
  if (::close(fd) != 0) return ErrnoError("cannot close", path);
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view contents) {
  const std::string tmp = path + UniqueSuffix();
  absl::Status st = WriteFileSynced(tmp, contents);
  if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    st = ErrnoError("cannot rename onto", path);
  if (!st.ok()) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return st;
  }
  fs::path parent = fs::path(path).parent_path();
  return SyncDirectory(parent.empty() ? "." : parent.string());
}

absl::Status SyncDirectory(const std::string& dir) {
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

absl::Status WriteDirectoryAtomic(const std::string& final_dir, bool overwrite,
                                  const std::function<absl::Status(const std::string&)>& fill) {
  fs::path target = fs::absolute(fs::path(final_dir)).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  if (fs::exists(target, ec) && !overwrite && !fs::is_empty(target, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat(target.string(), " already exists and is not empty (pass --overwrite)"));
  }
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", target.parent_path().string(), ": ", ec.message()));
  }
  const std::string staging = target.string() + UniqueSuffix();
  fs::create_directory(staging, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message()));

  absl::Status st = fill(staging);
  if (st.ok()) st = SyncDirectory(staging);
  std::string old;
  if (st.ok() && fs::exists(target, ec)) {
    // Swap the two atomically where the file system can, so readers always find a complete
    // directory at `target`; the old one is then at `staging`.
    if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      fs::remove_all(staging, ec);
      return SyncDirectory(target.parent_path().string());
    }
    old = target.string() + ".old" + UniqueSuffix();
    if (std::rename(target.c_str(), old.c_str()) != 0) st = ErrnoError("cannot move aside", target);
  }
  if (st.ok() && std::rename(staging.c_str(), target.c_str()) != 0) {
    st = ErrnoError("cannot rename staging directory onto", target.string());
    if (!old.empty()) std::rename(old.c_str(), target.c_str());
    old.clear();
  }
  if (!st.ok()) {
    fs::remove_all(staging, ec);
    return st;
  }
  if (!old.empty()) fs::remove_all(old, ec);
  return SyncDirectory(target.parent_path().string());
}

int StagingOwnerPid(const std::string& name) {
  const size_t at = name.find(kStagingMark);
  if (at == std::string::npos) return -1;
  const std::string rest = name.substr(at + sizeof(kStagingMark) - 1);
  int pid = 0;
  if (!absl::SimpleAtoi(rest.substr(0, rest.find('-')), &pid) || pid <= 0) return -1;
  return pid;
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  DigestCtx ctx = NewSha256();
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return ErrnoError("cannot read", path);
  return FinishHex(ctx.get());
}

std::string Sha256Hex(std::string_view bytes) {
  DigestCtx ctx = NewSha256();
  EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size());
  return FinishHex(ctx.get());
}

}  // namespace copyforge
