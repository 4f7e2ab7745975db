// Duplicate detection: exact (hash of the normalised text) and near-duplicate (MinHash
// signatures over word shingles, banded LSH, then an estimated-Jaccard check).
#ifndef COPYFORGE_TRAINER_DATA_DEDUP_H_
#define COPYFORGE_TRAINER_DATA_DEDUP_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"

namespace copyforge {

// Stable across runs and machines (XXH3 with a fixed seed).
uint64_t StableHash(std::string_view bytes, uint64_t seed = 0);

struct MinHashOptions {
  int num_perm = 64;  // signature length; a multiple of bands (rows = num_perm / bands)
  int bands = 16;
  int shingle_words = 3;   // words per shingle
  double threshold = 0.7;  // estimated Jaccard at or above which a text is a near duplicate

  absl::Status Validate() const;
};

// Computes signatures; stateless and thread-safe.
class MinHasher {
 public:
  explicit MinHasher(const MinHashOptions& options);
  // Signature of normalised text (see NormalizeForDedup); empty text gives an empty signature.
  std::vector<uint32_t> Signature(std::string_view normalized) const;
  // The LSH bucket key of each band of a signature (thread-safe, so workers can compute them).
  std::vector<uint64_t> BandKeys(const std::vector<uint32_t>& signature) const;
  const MinHashOptions& options() const { return options_; }

 private:
  MinHashOptions options_;
  std::vector<uint64_t> seeds_;
};

// Remembers what was kept and answers whether a new text duplicates it. Not thread-safe: feed it
// in a fixed order so that decisions are deterministic.
class DedupIndex {
 public:
  explicit DedupIndex(const MinHashOptions& options) : options_(options) {}
  enum class Verdict { kUnique, kExactDuplicate, kNearDuplicate };
  // Checks and, when unique, records the text. `near` enables the MinHash check; `signature` may
  // be empty when it is off. `band_keys` (from BandKeys) may be passed precomputed.
  Verdict Check(uint64_t exact_hash, const std::vector<uint32_t>& signature, bool near,
                const std::vector<uint64_t>* band_keys = nullptr);

 private:
  MinHashOptions options_;
  absl::flat_hash_set<uint64_t> exact_;
  std::vector<std::vector<uint32_t>> kept_;  // signatures by kept index
  std::vector<uint32_t> compared_;           // per kept index: the check that last compared it
  uint32_t stamp_ = 0;
  // Per band: bucket key -> the first few kept texts in it (held inline, no allocation).
  std::vector<absl::flat_hash_map<uint64_t, absl::InlinedVector<int32_t, 4>>> bands_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_DEDUP_H_
