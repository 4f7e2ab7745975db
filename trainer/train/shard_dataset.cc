#include "trainer/train/shard_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"

namespace copyforge {

struct ShardDataset::Shard {
  const char* tokens = nullptr;
  size_t token_bytes = 0;
  const uint8_t* mask = nullptr;
  size_t mask_bytes = 0;
  int64_t count = 0;
  ~Shard() {
    if (tokens != nullptr) ::munmap(const_cast<char*>(tokens), token_bytes);
    if (mask != nullptr) ::munmap(const_cast<uint8_t*>(mask), mask_bytes);
  }
};

namespace {

absl::StatusOr<std::pair<const char*, size_t>> MapFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(absl::StrCat("shard ", path, " is missing: ", std::strerror(errno)));
  struct stat st {};
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  void* p = size == 0 ? nullptr : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return absl::InternalError(absl::StrCat("cannot mmap ", path));
  return std::make_pair(static_cast<const char*>(p), size);
}

}  // namespace

ShardDataset::~ShardDataset() = default;

absl::StatusOr<std::unique_ptr<ShardDataset>> ShardDataset::Open(const std::string& dir,
                                                                 const std::string& dataset,
                                                                 const std::string& split,
                                                                 bool verify) {
  const std::string manifest_path = dir + "/manifest.json";
  CF_ASSIGN_OR_RETURN(std::string text, ReadFile(manifest_path));
  nlohmann::json m = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || m.value("format", "") != "copyforge-shards/1") {
    return absl::InvalidArgumentError(
        absl::StrCat(manifest_path, ": not a copyforge shard manifest"));
  }
  std::unique_ptr<ShardDataset> d(new ShardDataset());
  d->wide_ = m.value("dtype", "") == "uint32";
  d->eot_id_ = m.value("eot_id", 0);
  d->vocab_size_ = m.value("vocab_size", 0);
  if (!m.contains("datasets") || !m["datasets"].contains(dataset) ||
      !m["datasets"][dataset].contains(split)) {
    return absl::NotFoundError(absl::StrCat(manifest_path, ": has no ", dataset, "/", split,
                                            " data (was it prepared with that objective?)"));
  }
  for (const auto& s : m["datasets"][dataset][split]["shards"]) {
    auto shard = std::make_unique<Shard>();
    const std::string file = dir + "/" + s.value("file", "");
    CF_ASSIGN_OR_RETURN(auto mapped, MapFile(file));
    shard->tokens = mapped.first;
    shard->token_bytes = mapped.second;
    shard->count = static_cast<int64_t>(mapped.second / (d->wide_ ? 4 : 2));
    if (shard->count != s.value("tokens", int64_t{-1})) {
      return absl::DataLossError(absl::StrCat(file, ": holds ", shard->count,
                                              " tokens, the manifest says ",
                                              s.value("tokens", int64_t{-1})));
    }
    if (verify &&
        Sha256Hex(std::string_view(shard->tokens, shard->token_bytes)) != s.value("sha256", "")) {
      return absl::DataLossError(absl::StrCat(file, ": SHA-256 differs from ", manifest_path));
    }
    if (s.contains("mask_file")) {
      const std::string mask_file = dir + "/" + s["mask_file"].get<std::string>();
      CF_ASSIGN_OR_RETURN(auto mask, MapFile(mask_file));
      shard->mask = reinterpret_cast<const uint8_t*>(mask.first);
      shard->mask_bytes = mask.second;
      if (static_cast<int64_t>(mask.second) != shard->count) {
        return absl::DataLossError(absl::StrCat(mask_file, ": length differs from its shard"));
      }
      d->has_mask_ = true;
    }
    d->starts_.push_back(d->total_tokens_);
    d->total_tokens_ += shard->count;
    d->shards_.push_back(std::move(shard));
  }
  if (d->total_tokens_ < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(manifest_path, ": ", dataset, "/", split, " holds no training data"));
  }
  if (d->has_mask_) {
    d->doc_starts_.push_back(0);
    for (int64_t i = 0; i < d->total_tokens_; ++i) {
      if (d->TokenAt(i) == d->eot_id_ && i + 1 < d->total_tokens_) d->doc_starts_.push_back(i + 1);
    }
    d->doc_starts_.push_back(d->total_tokens_);
  }
  return d;
}

int64_t ShardDataset::TokenAt(int64_t i) const {
  const size_t s = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), i) -
                                       starts_.begin() - 1);
  const int64_t local = i - starts_[s];
  const auto* p = reinterpret_cast<const unsigned char*>(shards_[s]->tokens);
  if (wide_) {
    uint32_t v;
    std::memcpy(&v, p + 4 * local, 4);
    return v;
  }
  return static_cast<int64_t>(p[2 * local]) | (static_cast<int64_t>(p[2 * local + 1]) << 8);
}

uint8_t ShardDataset::MaskAt(int64_t i) const {
  const size_t s = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), i) -
                                       starts_.begin() - 1);
  return shards_[s]->mask[i - starts_[s]];
}

int64_t ShardDataset::NumSamples(int64_t seq_len) const {
  if (has_mask_) return static_cast<int64_t>(doc_starts_.size()) - 1;
  return (total_tokens_ - 1) / seq_len;
}

void ShardDataset::GetSample(int64_t index, int64_t seq_len, int64_t* inputs,
                             int64_t* targets) const {
  if (!has_mask_) {
    const int64_t start = index * seq_len;
    for (int64_t i = 0; i < seq_len; ++i) {
      inputs[i] = TokenAt(start + i);
      targets[i] = TokenAt(start + i + 1);
    }
    return;
  }
  int64_t begin = doc_starts_[index];
  const int64_t end = doc_starts_[index + 1];
  if (end - begin > seq_len + 1) {
    int64_t first_target = begin;
    while (first_target < end && MaskAt(first_target) == 0) ++first_target;
    begin = std::max(begin, std::min(first_target - seq_len / 2, end - (seq_len + 1)));
  }
  const int64_t n = std::min(end - begin, seq_len + 1);
  for (int64_t i = 0; i < seq_len; ++i) {
    if (i + 1 < n) {
      inputs[i] = TokenAt(begin + i);
      targets[i] = MaskAt(begin + i + 1) ? TokenAt(begin + i + 1) : kIgnoreTarget;
    } else {
      inputs[i] = eot_id_;
      targets[i] = kIgnoreTarget;
    }
  }
}

BatchSampler::BatchSampler(const ShardDataset& data, int64_t seq_len, int64_t batch_size,
                           uint64_t seed, int rank, int world, bool shuffle)
    : data_(data),
      seq_len_(seq_len),
      batch_size_(batch_size),
      seed_(seed),
      rank_(rank),
      world_(world),
      shuffle_(shuffle),
      per_rank_(std::max<int64_t>(1, data.NumSamples(seq_len) / world)) {}

void BatchSampler::set_cursor(const Cursor& c) { cursor_ = c; }

void BatchSampler::Shuffle() {
  const int64_t n = data_.NumSamples(seq_len_);
  order_.resize(static_cast<size_t>(n));
  std::iota(order_.begin(), order_.end(), 0);
  if (shuffle_) {
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(cursor_.epoch));
    // Fisher-Yates with our own index draws, so the order does not depend on the library.
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(order_[i], order_[rng() % static_cast<uint64_t>(i + 1)]);
  }
  order_epoch_ = cursor_.epoch;
}

int64_t BatchSampler::NextIndex() {
  if (cursor_.position >= per_rank_) {
    ++cursor_.epoch;
    cursor_.position = 0;
  }
  if (order_epoch_ != cursor_.epoch) Shuffle();
  const int64_t global = cursor_.position * world_ + rank_;
  ++cursor_.position;
  return order_[static_cast<size_t>(global % static_cast<int64_t>(order_.size()))];
}

void BatchSampler::Next(std::vector<int64_t>* inputs, std::vector<int64_t>* targets) {
  inputs->resize(static_cast<size_t>(batch_size_ * seq_len_));
  targets->resize(inputs->size());
  for (int64_t b = 0; b < batch_size_; ++b) {
    data_.GetSample(NextIndex(), seq_len_, inputs->data() + b * seq_len_,
                    targets->data() + b * seq_len_);
  }
}

}  // namespace copyforge
