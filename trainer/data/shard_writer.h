// Writes token shards: raw little-endian token arrays (uint16 when the vocabulary fits, else
// uint32), documents separated by <|endoftext|>, plus for fine-tuning data a parallel uint8 loss
// mask (1 where the token is a target the loss counts, 0 for prompt tokens).
#ifndef COPYFORGE_TRAINER_DATA_SHARD_WRITER_H_
#define COPYFORGE_TRAINER_DATA_SHARD_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace copyforge {

struct ShardInfo {
  std::string file;       // relative to the output directory
  std::string mask_file;  // empty for pretraining shards
  int64_t tokens = 0;
  int64_t documents = 0;
  std::string sha256;
  std::string mask_sha256;
};

// Not thread-safe; one writer per (dataset, split).
class ShardWriter {
 public:
  // Files are named `<dir>/<dataset>/<split>_<NNNNN>.bin` (and `.mask`). A shard is closed once it
  // holds at least `shard_tokens` tokens; documents are never split across shards.
  ShardWriter(std::string dir, std::string dataset, std::string split, bool wide, bool with_mask,
              int64_t shard_tokens);
  // Appends one document (its tokens must already end with <|endoftext|>). `mask` must be empty
  // for pretraining writers and the same length as `tokens` otherwise.
  absl::Status Append(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& mask);
  // Writes the last, partial shard.
  absl::Status Finish();
  const std::vector<ShardInfo>& shards() const { return shards_; }
  int64_t total_tokens() const { return total_tokens_; }
  int64_t total_documents() const { return total_documents_; }

 private:
  absl::Status Flush();
  std::string dir_, dataset_, split_;
  bool wide_, with_mask_;
  int64_t shard_tokens_;
  std::vector<int32_t> tokens_;
  std::vector<uint8_t> mask_;
  int64_t documents_ = 0;
  int64_t total_tokens_ = 0, total_documents_ = 0;
  std::vector<ShardInfo> shards_;
};

nlohmann::ordered_json ShardInfoJson(const ShardInfo& info);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_SHARD_WRITER_H_
