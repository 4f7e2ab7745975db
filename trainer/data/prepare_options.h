// Options of `copyforge prepare`, from configs/data/*.yaml and flags.
#ifndef COPYFORGE_TRAINER_DATA_PREPARE_OPTIONS_H_
#define COPYFORGE_TRAINER_DATA_PREPARE_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "trainer/data/dedup.h"
#include "trainer/data/pii.h"
#include "trainer/data/records.h"

namespace copyforge {

struct PrepareInput {
  std::string path;  // a file or a glob
  Format format = Format::kAuto;
};

struct PrepareOptions {
  std::vector<PrepareInput> inputs;
  std::string tokenizer;  // directory with vocab.json + merges.txt
  std::string templates;  // templates YAML; empty = the built-in configs/templates/ecommerce.yaml
  std::string out;
  bool pretrain = true;  // write pretraining documents
  bool finetune = true;  // write fine-tuning pairs
  double validation_ratio = 0.05;
  uint64_t split_seed = 0;
  int64_t shard_tokens = 8 << 20;
  // Filters (on cleaned text).
  int64_t min_chars = 20;
  int64_t max_chars = 20000;
  int64_t min_words = 3;
  std::string language = "any";  // "any" or "en" (share of English function words)
  double min_english_ratio = 0.08;
  // PII scrubbing: the most work one pattern match may take (PCRE2 match limit); a text that
  // needs more is dropped (counted as pii_error), never written unscrubbed.
  int64_t pii_match_limit = kDefaultPiiMatchLimit;
  // A longer input line (or CSV row) is dropped and counted (dropped: line_too_long) without
  // being held in memory whole.
  int64_t max_line_bytes = 8 << 20;
  // The hashed n-gram index of the training split (ngrams.bin) that eval-tasks and serving use to
  // measure how much of an output is copied verbatim from training text: n tokens a window, 0 off.
  int copy_index_n = 8;
  bool exact_dedup = true;
  bool near_dedup = true;
  MinHashOptions minhash;
  CsvColumns csv;
  int threads = 0;  // 0 = one per core
  bool overwrite = false;
  bool show_progress = true;

  // Reads a YAML config; unknown keys and wrong types are errors naming the file, line and key.
  static absl::StatusOr<PrepareOptions> FromYamlFile(const std::string& path);
  // Checks values and that required keys are set; messages name the key.
  absl::Status Validate() const;
  nlohmann::ordered_json ToJson() const;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_PREPARE_OPTIONS_H_
