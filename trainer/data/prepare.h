// `copyforge prepare`: raw review corpora -> cleaned, scrubbed, deduplicated, templated token
// shards with a manifest. Reading, parsing, cleaning and tokenizing run on all threads; the
// decisions that depend on order (deduplication, shard contents) are made in input order, so the
// output is byte-identical for the same input whatever the thread count.
#ifndef COPYFORGE_TRAINER_DATA_PREPARE_H_
#define COPYFORGE_TRAINER_DATA_PREPARE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/data/prepare_options.h"

namespace copyforge {

struct PrepareStats {
  int64_t records = 0;   // lines (or CSV rows) read
  int64_t kept = 0;      // records that produced training text
  int64_t metadata = 0;  // product / business records loaded for joins
  // Dropped, by reason.
  int64_t malformed = 0, empty = 0, too_short = 0, filtered = 0, duplicate = 0, near_duplicate = 0;
  int64_t pii_error = 0;      // PII scrubbing failed: dropped, never written unscrubbed
  int64_t line_too_long = 0;  // lines (or CSV rows) over max_line_bytes: dropped
  int64_t pii_replacements = 0;
  int64_t pairs_without_metadata = 0;  // reviews whose product/business is unknown: no pair
  int64_t documents = 0, pairs = 0;
  int64_t tokens = 0, shards = 0;
  int64_t eval_tasks = 0;          // held-out task inputs written to eval/tasks.jsonl
  int64_t copy_index_entries = 0;  // distinct token windows in ngrams.bin
  int64_t input_bytes = 0;
  double seconds = 0;
  double tokenize_seconds = 0;  // summed over threads
  int threads = 0;
  std::vector<std::string> malformed_examples;  // the first few, as "file:line: problem: text"
};

// Writes `options.out` as one directory (staged, then renamed):
//   manifest.json, tokenizer/{vocab.json,merges.txt}, templates.yaml,
//   eval/tasks.jsonl (held-out task inputs), ngrams.bin (the copy index of the training split),
//   pretrain/{train,val}_NNNNN.bin, finetune/{train,val}_NNNNN.{bin,mask}
absl::StatusOr<PrepareStats> RunPrepare(const PrepareOptions& options);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_PREPARE_H_
