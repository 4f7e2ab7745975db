#include "trainer/data/dedup.h"

#include <xxhash.h>

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace copyforge {
namespace {
constexpr size_t kMaxBucket = 4;
}  // namespace

uint64_t StableHash(std::string_view bytes, uint64_t seed) {
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

absl::Status MinHashOptions::Validate() const {
  if (num_perm <= 0 || bands <= 0 || num_perm % bands != 0) {
    return absl::InvalidArgumentError(absl::StrCat("dedup.num_perm (", num_perm,
                                                   ") must be a positive multiple of dedup.bands (",
                                                   bands, ")"));
  }
  if (shingle_words <= 0) return absl::InvalidArgumentError("dedup.shingle_words must be positive");
  if (!(threshold > 0 && threshold <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dedup.threshold must be in (0, 1], got ", threshold));
  }
  return absl::OkStatus();
}

MinHasher::MinHasher(const MinHashOptions& options) : options_(options) {
  for (int i = 0; i < options.num_perm; ++i) seeds_.push_back(0x9E3779B97F4A7C15ull * (i + 1));
}

std::vector<uint32_t> MinHasher::Signature(std::string_view normalized) const {
  std::vector<size_t> starts;
  for (size_t i = 0; i < normalized.size(); ++i) {
    if (i == 0 || normalized[i - 1] == ' ') starts.push_back(i);
  }
  if (starts.empty()) return {};
  std::vector<uint32_t> sig(options_.num_perm, std::numeric_limits<uint32_t>::max());
  const size_t k = static_cast<size_t>(options_.shingle_words);
  const size_t shingles = starts.size() >= k ? starts.size() - k + 1 : 1;
  for (size_t s = 0; s < shingles; ++s) {
    const size_t begin = starts[s];
    const size_t end = s + k < starts.size() ? starts[s + k] - 1 : normalized.size();
    // One base hash per shingle; the permutations are cheap re-mixes of it.
    const uint64_t base = StableHash(normalized.substr(begin, end - begin));
    // Each 64-bit re-mix of the shingle hash yields two 32-bit permutation values.
    for (int p = 0; p < options_.num_perm; p += 2) {
      uint64_t h = (base ^ seeds_[p]) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
      h *= 0x94D049BB133111EBull;
      h ^= h >> 29;
      sig[p] = std::min(sig[p], static_cast<uint32_t>(h >> 32));
      if (p + 1 < options_.num_perm) sig[p + 1] = std::min(sig[p + 1], static_cast<uint32_t>(h));
    }
  }
  return sig;
}

std::vector<uint64_t> MinHasher::BandKeys(const std::vector<uint32_t>& signature) const {
  std::vector<uint64_t> keys;
  if (signature.empty()) return keys;
  const int rows = options_.num_perm / options_.bands;
  for (int b = 0; b < options_.bands; ++b) {
    keys.push_back(
        StableHash(std::string_view(reinterpret_cast<const char*>(signature.data() + b * rows),
                                    rows * sizeof(uint32_t)),
                   static_cast<uint64_t>(b)));
  }
  return keys;
}

DedupIndex::Verdict DedupIndex::Check(uint64_t exact_hash, const std::vector<uint32_t>& signature,
                                      bool near, const std::vector<uint64_t>* band_keys) {
  if (!exact_.insert(exact_hash).second) return Verdict::kExactDuplicate;
  if (!near || signature.empty()) return Verdict::kUnique;
  if (bands_.empty()) bands_.resize(options_.bands);
  std::vector<uint64_t> computed;
  if (band_keys == nullptr) {
    computed = MinHasher(options_).BandKeys(signature);
    band_keys = &computed;
  }
  const std::vector<uint64_t>& keys = *band_keys;
  const int needed = static_cast<int>(std::ceil(options_.threshold * options_.num_perm - 1e-9));
  ++stamp_;
  for (int b = 0; b < options_.bands; ++b) {
    auto it = bands_[b].find(keys[b]);
    if (it == bands_[b].end()) continue;
    for (int32_t other : it->second) {
      if (compared_[other] == stamp_) continue;  // already compared through another band
      compared_[other] = stamp_;
      const std::vector<uint32_t>& o = kept_[other];
      // Stop as soon as the remaining positions cannot reach the threshold.
      int same = 0;
      for (int p = 0, left = options_.num_perm; p < options_.num_perm && same + left >= needed;
           ++p, --left) {
        same += o[p] == signature[p];
      }
      if (same >= needed) {
        exact_.erase(exact_hash);  // only kept texts are remembered
        return Verdict::kNearDuplicate;
      }
    }
  }
  const int32_t id = static_cast<int32_t>(kept_.size());
  kept_.push_back(signature);
  compared_.push_back(0);
  for (int b = 0; b < options_.bands; ++b) {
    // A bucket that already holds kMaxBucket texts is a cluster of similar ones; comparing new
    // texts with its first members is enough, and keeps the check O(1) on repetitive corpora.
    auto& bucket = bands_[b][keys[b]];
    if (bucket.size() < kMaxBucket) bucket.push_back(id);
  }
  return Verdict::kUnique;
}

}  // namespace copyforge
