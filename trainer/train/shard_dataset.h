// Reads `prepare`'s token shards for training: memory-mapped, verified against the manifest,
// served as fixed-length samples in a deterministic shuffled order that is disjoint across ranks.
#ifndef COPYFORGE_TRAINER_TRAIN_SHARD_DATASET_H_
#define COPYFORGE_TRAINER_TRAIN_SHARD_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

// Target value the loss ignores (prompt tokens of fine-tuning pairs, padding).
inline constexpr int64_t kIgnoreTarget = -100;

// One dataset/split of a prepared directory. Thread-compatible; immutable after Open.
class ShardDataset {
 public:
  // `dataset` is "pretrain" or "finetune", `split` "train" or "val". With `verify`, every shard's
  // SHA-256 is checked against the manifest. Errors name the directory, manifest field or file.
  static absl::StatusOr<std::unique_ptr<ShardDataset>> Open(const std::string& dir,
                                                            const std::string& dataset,
                                                            const std::string& split, bool verify);
  ~ShardDataset();
  ShardDataset(const ShardDataset&) = delete;
  ShardDataset& operator=(const ShardDataset&) = delete;

  int64_t num_tokens() const { return total_tokens_; }
  int64_t vocab_size() const { return vocab_size_; }
  int32_t eot_id() const { return eot_id_; }
  bool has_mask() const { return has_mask_; }

  // Samples of `seq_len` inputs and `seq_len` targets. Pretraining: consecutive blocks of the
  // token stream (block i starts at i * seq_len and reads seq_len + 1 tokens). Fine-tuning: one
  // pair per sample; targets of prompt tokens and padding are kIgnoreTarget, inputs are padded
  // with <|endoftext|>. A pair longer than the window loses the start of its prompt (at most down
  // to half a window of prompt) so that its target is trained on; the end of a long target is cut.
  int64_t NumSamples(int64_t seq_len) const;
  void GetSample(int64_t index, int64_t seq_len, int64_t* inputs, int64_t* targets) const;

 private:
  struct Shard;
  ShardDataset() = default;
  int64_t TokenAt(int64_t i) const;
  uint8_t MaskAt(int64_t i) const;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<int64_t> starts_;      // first global token index of each shard
  std::vector<int64_t> doc_starts_;  // fine-tuning: first token of each pair, plus the end
  int64_t total_tokens_ = 0;
  int64_t vocab_size_ = 0;
  int32_t eot_id_ = 0;
  bool wide_ = false;
  bool has_mask_ = false;
};

// Walks a dataset in batches: a deterministic permutation per (seed, epoch), of which rank r of
// `world` takes positions r, r + world, ... (every rank gets the same count; the remainder of an
// epoch is dropped). Not thread-safe.
class BatchSampler {
 public:
  struct Cursor {
    int64_t epoch = 0;
    int64_t position = 0;  // samples of this rank consumed in the epoch
  };
  BatchSampler(const ShardDataset& data, int64_t seq_len, int64_t batch_size, uint64_t seed,
               int rank, int world, bool shuffle);
  // Fills `batch_size * seq_len` inputs and targets and advances the cursor (wrapping epochs).
  void Next(std::vector<int64_t>* inputs, std::vector<int64_t>* targets);
  // The dataset index of the next sample of this rank; advances the cursor by one.
  int64_t NextIndex();
  Cursor cursor() const { return cursor_; }
  void set_cursor(const Cursor& c);
  int64_t samples_per_epoch() const { return per_rank_; }

 private:
  void Shuffle();
  const ShardDataset& data_;
  int64_t seq_len_, batch_size_;
  uint64_t seed_;
  int rank_, world_;
  bool shuffle_;
  int64_t per_rank_;
  std::vector<int64_t> order_;  // this epoch's permutation
  int64_t order_epoch_ = -1;
  Cursor cursor_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_SHARD_DATASET_H_
