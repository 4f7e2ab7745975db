// GPT-2 byte-level BPE tokenizer (vocab.json + merges.txt), encoding exactly as GPT-2 does.
//
// Any byte string round-trips: Decode(Encode(x)) == x. Well-formed UTF-8 is split by the GPT-2
// pattern; a byte that is not part of well-formed UTF-8 is treated as one punctuation-like
// character and encoded through its byte token, so invalid input is neither rejected nor altered.
#ifndef COPYFORGE_TRAINER_TOKENIZER_TOKENIZER_H_
#define COPYFORGE_TRAINER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace copyforge {

struct EncodeOptions {
  // Whether special tokens such as "<|endoftext|>" in the text become their single id.
  // When false they are encoded as the ordinary characters they are spelled with.
  bool allow_special = true;
};

// A piece -> ids cache owned by one thread; passing one to Encode avoids the shared, locked
// cache (use one per worker thread when many threads encode at once). Bounded in size.
class PieceCache {
 public:
  PieceCache();
  ~PieceCache();
  PieceCache(const PieceCache&) = delete;
  PieceCache& operator=(const PieceCache&) = delete;

 private:
  friend class Tokenizer;
  struct Map;
  std::unique_ptr<Map> map_;
};

// Immutable after loading; every method is safe to call from many threads at once
// (the shared piece cache inside is sharded and locked).
class Tokenizer {
 public:
  // Loads `dir`/vocab.json and `dir`/merges.txt.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dir);
  // Builds from the contents of the two files; `source` names them in error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromContents(std::string vocab_json,
                                                                 std::string merges_txt,
                                                                 const std::string& source);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}) const;
  // Appends the ids of `text` to `out`; with `cache`, that thread-owned cache is used instead
  // of the shared one.
  void EncodeAppend(std::string_view text, const EncodeOptions& options, std::vector<int32_t>* out,
                    PieceCache* cache = nullptr) const;
  // Concatenates the bytes of the tokens; an id outside the vocabulary is an error naming it.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const;

  // The raw bytes of token `id` (0 <= id < vocab_size()).
  std::string_view TokenBytes(int32_t id) const;
  int32_t vocab_size() const;
  // Id of "<|endoftext|>", or -1 when the vocabulary has none.
  int32_t eot_id() const;

  // Writes vocab.json and merges.txt into `dir` (fsynced), byte-identical to what was loaded.
  absl::Status SaveFiles(const std::string& dir) const;

  // BPE of one pre-tokenized piece without the cache (for tests and benchmarks).
  std::vector<int32_t> EncodePieceUncached(std::string_view piece) const;

 private:
  class Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TOKENIZER_TOKENIZER_H_
