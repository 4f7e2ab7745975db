// Learns a GPT-2-style byte-level BPE vocabulary from text.
#ifndef COPYFORGE_TRAINER_TOKENIZER_BPE_TRAINER_H_
#define COPYFORGE_TRAINER_TOKENIZER_BPE_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace copyforge {

struct BpeTrainerOptions {
  // Final vocabulary size, counting the 256 byte tokens and the special tokens.
  int32_t vocab_size = 8192;
  // A pair seen fewer times than this is never merged (training may stop below vocab_size).
  int64_t min_frequency = 2;
  // Appended after the merges, in order; their text is removed from the training data.
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  bool show_progress = true;

  BpeTrainerOptions& set_vocab_size(int32_t v) {
    vocab_size = v;
    return *this;
  }
  BpeTrainerOptions& set_min_frequency(int64_t v) {
    min_frequency = v;
    return *this;
  }
  BpeTrainerOptions& set_show_progress(bool v) {
    show_progress = v;
    return *this;
  }
};

struct BpeTrainerResult {
  std::string vocab_json;  // {"token": id, ...} in id order, tokens in GPT-2's byte spelling
  std::string merges_txt;  // "#version: 0.2" then one "left right" line per merge, by rank
  int32_t vocab_size = 0;
  int64_t num_merges = 0;
  int64_t words = 0;  // distinct pre-tokenized pieces
  int64_t input_bytes = 0;
};

// Not thread-safe; feed text with Add, then call Train once. Deterministic: the same text in
// the same order gives byte-identical files (ties between equally frequent pairs are broken by
// token ids, which are themselves assigned deterministically).
class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainerOptions options);
  absl::Status Add(std::string_view text);
  absl::StatusOr<BpeTrainerResult> Train();

 private:
  BpeTrainerOptions options_;
  struct PieceCounts;
  std::shared_ptr<PieceCounts> pieces_;
  int64_t input_bytes_ = 0;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TOKENIZER_BPE_TRAINER_H_
