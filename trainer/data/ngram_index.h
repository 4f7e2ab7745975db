// The copy index: hashes of every n-token window of the training split, written by `prepare` as
// ngrams.bin beside the shards. It answers "what is the longest run of this text's tokens that
// appears verbatim in a training text?" without keeping the corpus: a run of k tokens copied
// verbatim is k - n + 1 consecutive windows that are all in the index. (A hash collision can
// only lengthen a run; at 64 bits it does not happen at corpus sizes.)
//
// File: "CFNGRAM1" | u32 n | u32 0 | u64 count | count x u64 hashes, sorted and unique; little
// endian.
#ifndef COPYFORGE_TRAINER_DATA_NGRAM_INDEX_H_
#define COPYFORGE_TRAINER_DATA_NGRAM_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

// The hash of tokens[0, n).
uint64_t NgramHash(const int32_t* tokens, int n);

class NgramIndexBuilder {
 public:
  explicit NgramIndexBuilder(int n) : n_(n) {}
  // Adds every window of `tokens` (nothing when shorter than n).
  void Add(const std::vector<int32_t>& tokens, size_t begin = 0, size_t end = SIZE_MAX);
  // Sorts, deduplicates and writes `path` (synced); returns the number of distinct windows.
  absl::StatusOr<int64_t> Write(const std::string& path);
  int n() const { return n_; }

 private:
  int n_;
  std::vector<uint64_t> hashes_;
};

class NgramIndex {
 public:
  // Reads and checks ngrams.bin; errors name the file and what is wrong.
  static absl::StatusOr<NgramIndex> Load(const std::string& path);
  int n() const { return n_; }
  int64_t size() const { return static_cast<int64_t>(hashes_.size()); }
  bool Contains(uint64_t hash) const;
  // The longest run of `tokens` found verbatim in the index, in tokens: 0 when no window of n
  // matches, else at least n.
  int64_t LongestCopiedRun(const std::vector<int32_t>& tokens) const;

 private:
  int n_ = 0;
  std::vector<uint64_t> hashes_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_NGRAM_INDEX_H_
