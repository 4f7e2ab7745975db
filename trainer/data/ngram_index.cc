#include "trainer/data/ngram_index.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

constexpr char kMagic[8] = {'C', 'F', 'N', 'G', 'R', 'A', 'M', '1'};
constexpr size_t kHeader = 24;

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t NgramHash(const int32_t* tokens, int n) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ static_cast<uint64_t>(n);
  for (int i = 0; i < n; ++i) h = Mix(h + static_cast<uint32_t>(tokens[i]));
  return h;
}

void NgramIndexBuilder::Add(const std::vector<int32_t>& tokens, size_t begin, size_t end) {
  end = std::min(end, tokens.size());
  if (end < begin + static_cast<size_t>(n_)) return;
  for (size_t i = begin; i + n_ <= end; ++i) hashes_.push_back(NgramHash(tokens.data() + i, n_));
}

absl::StatusOr<int64_t> NgramIndexBuilder::Write(const std::string& path) {
  std::sort(hashes_.begin(), hashes_.end());
  hashes_.erase(std::unique(hashes_.begin(), hashes_.end()), hashes_.end());
  std::string bytes(kHeader + hashes_.size() * sizeof(uint64_t), '\0');
  std::memcpy(bytes.data(), kMagic, sizeof(kMagic));
  const uint32_t n = static_cast<uint32_t>(n_);
  const uint64_t count = hashes_.size();
  std::memcpy(bytes.data() + 8, &n, sizeof(n));
  std::memcpy(bytes.data() + 16, &count, sizeof(count));
  if (!hashes_.empty()) {
    std::memcpy(bytes.data() + kHeader, hashes_.data(), hashes_.size() * sizeof(uint64_t));
  }
  if (absl::Status st = WriteFileSynced(path, bytes); !st.ok()) return st;
  return static_cast<int64_t>(count);
}

absl::StatusOr<NgramIndex> NgramIndex::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the copy index"));
  char header[kHeader];
  if (!in.read(header, kHeader) || std::memcmp(header, kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a copy index (bad header)"));
  }
  uint32_t n = 0;
  uint64_t count = 0;
  std::memcpy(&n, header + 8, sizeof(n));
  std::memcpy(&count, header + 16, sizeof(count));
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  if (n < 1 || n > 64 || size != kHeader + count * sizeof(uint64_t)) {
    return absl::DataLossError(absl::StrCat(path, ": window ", n, " or count ", count,
                                            " does not match the file size ", size));
  }
  NgramIndex index;
  index.n_ = static_cast<int>(n);
  index.hashes_.resize(count);
  in.seekg(kHeader);
  if (count > 0 && !in.read(reinterpret_cast<char*>(index.hashes_.data()),
                            static_cast<std::streamsize>(count * sizeof(uint64_t)))) {
    return absl::DataLossError(absl::StrCat(path, ": truncated"));
  }
  if (!std::is_sorted(index.hashes_.begin(), index.hashes_.end())) {
    return absl::DataLossError(absl::StrCat(path, ": hashes are not sorted"));
  }
  return index;
}

bool NgramIndex::Contains(uint64_t hash) const {
  return std::binary_search(hashes_.begin(), hashes_.end(), hash);
}

int64_t NgramIndex::LongestCopiedRun(const std::vector<int32_t>& tokens) const {
  int64_t best = 0, run = 0;  // run: consecutive matching windows ending here
  for (size_t i = 0; i + n_ <= tokens.size(); ++i) {
    run = Contains(NgramHash(tokens.data() + i, n_)) ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best == 0 ? 0 : best + n_ - 1;
}

}  // namespace copyforge
