// Structured output, part two: which tokens of a byte-level BPE vocabulary keep a JSON Schema
// automaton (serving/json_schema.h) alive. The vocabulary is a byte trie; a mask is one walk of
// the trie from the automaton's state, pruned at the first byte the schema refuses, and cached
// per schema under the state's key (counters relative to their bounds), so the walk is paid once
// per distinct state and a steady stream of tokens inside a string hits the cache.
#ifndef COPYFORGE_SERVING_TOKEN_MASK_H_
#define COPYFORGE_SERVING_TOKEN_MASK_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "serving/json_schema.h"
#include "serving/logits_processor.h"

namespace copyforge {

class VocabularyTrie {
 public:
  // token_bytes[i]: the bytes of token i (empty: never generated, e.g. padding ids); `eos`: the
  // end-of-text id, allowed exactly where the document is complete (-1: none).
  VocabularyTrie(const std::vector<std::string>& token_bytes, int32_t eos);

  int64_t vocab() const { return vocab_; }
  int32_t eos() const { return eos_; }
  int64_t max_token_bytes() const { return max_token_bytes_; }
  const std::string& TokenBytes(int32_t id) const { return token_bytes_[id]; }
  // Token ids allowed from `state` as a bitset of vocab() bits.
  std::vector<uint64_t> Allowed(const JsonSchema& schema, const SchemaState& state) const;

 private:
  struct Node {
    int32_t first_child = -1, next_sibling = -1;
    int32_t token = -1;  // the token spelled by the path to here
    uint8_t byte = 0;
  };
  // Walks `nodes` from `state`, setting the bit of every token whose bytes the schema accepts.
  static void Walk(const std::vector<Node>& nodes, const JsonSchema& schema,
                   const SchemaState& state, int64_t max_bytes, std::vector<uint64_t>* bits);
  std::vector<Node> nodes_;  // nodes_[0]: the root
  // Plain tokens (JsonSchema::PlainRoom): plain_upto_[c] has the bit of every plain token of at
  // most c characters; the other tokens have their own, much smaller, trie.
  std::vector<std::vector<uint64_t>> plain_upto_;
  std::vector<Node> other_nodes_;
  std::vector<std::string> token_bytes_;
  int64_t vocab_ = 0;
  int32_t eos_ = -1;
  int64_t max_token_bytes_ = 0;
};

// The masks of one schema over one vocabulary, shared by every sequence decoding with it.
class SchemaMasks {
 public:
  using Mask = std::vector<uint64_t>;
  SchemaMasks(std::shared_ptr<const JsonSchema> schema,
              std::shared_ptr<const VocabularyTrie> vocabulary, size_t capacity = 4096);

  std::shared_ptr<const Mask> Allowed(const SchemaState& state);
  const JsonSchema& schema() const { return *schema_; }
  const VocabularyTrie& vocabulary() const { return *vocabulary_; }
  struct Stats {
    int64_t hits = 0, misses = 0;
  };
  Stats stats() const;

 private:
  const std::shared_ptr<const JsonSchema> schema_;
  const std::shared_ptr<const VocabularyTrie> vocabulary_;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  // Least recently used first.
  std::list<std::string> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string,
                      std::pair<std::shared_ptr<const Mask>, std::list<std::string>::iterator>>
      cache_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// The processor of one constrained sequence: masks what the schema forbids and follows the
// tokens taken. A token the automaton refuses (only possible if the vocabulary changed under
// it) fails the sequence instead of returning text that does not validate.
class SchemaConstraint : public LogitsProcessor {
 public:
  explicit SchemaConstraint(std::shared_ptr<SchemaMasks> masks);
  absl::Status Process(float* logits, int64_t vocab) override;
  absl::Status Accept(int32_t token) override;
  bool complete() const { return masks_->schema().Complete(state_); }

 private:
  std::shared_ptr<SchemaMasks> masks_;
  SchemaState state_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_TOKEN_MASK_H_
