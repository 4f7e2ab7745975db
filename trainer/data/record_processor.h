// Turns one input line into training text: parse, clean, scrub PII, filter, split, render the
// templates and tokenize. Everything here is independent per record, so it runs on all threads.
#ifndef COPYFORGE_TRAINER_DATA_RECORD_PROCESSOR_H_
#define COPYFORGE_TRAINER_DATA_RECORD_PROCESSOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "trainer/data/dedup.h"
#include "trainer/data/pii.h"
#include "trainer/data/prepare_options.h"
#include "trainer/data/records.h"
#include "trainer/data/templates.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {

// Metadata joined into review prompts. Filled while metadata files are read, then read-only.
struct JoinTables {
  absl::flat_hash_map<std::string, Product> products;
  absl::flat_hash_map<std::string, Business> businesses;
};

// kPiiError: scrubbing failed, so the record may still hold personal data; it is dropped whole.
enum class DropReason : uint8_t { kNone, kMalformed, kEmpty, kTooShort, kFiltered, kPiiError };

struct ProcessedRecord {
  DropReason drop = DropReason::kNone;
  std::string problem;               // what was wrong, for kMalformed
  std::optional<Product> product;    // metadata to remember
  std::optional<Business> business;  // metadata to remember
  bool has_text = false;             // takes part in dedup and may produce text
  uint64_t exact_hash = 0;
  std::vector<uint32_t> signature;
  std::vector<uint64_t> band_keys;
  bool validation = false;
  std::vector<int32_t> document;   // pretraining document, ends with <|endoftext|>; may be empty
  std::vector<int32_t> pair;       // prompt + target + <|endoftext|>; may be empty
  std::vector<uint8_t> pair_mask;  // 0 for prompt tokens, 1 for target tokens
  bool pair_without_metadata = false;
  std::string eval_task;  // validation records with a pair: the task input (EvalTask JSON line)
  int pii_replacements = 0;
};

// One per worker thread; the referenced objects are shared and must outlive it.
class RecordProcessor {
 public:
  RecordProcessor(const PrepareOptions& options, const Tokenizer& tokenizer,
                  const TemplateSet& templates, const PiiScrubber& pii, const MinHasher& minhash,
                  const JoinTables& tables);
  ProcessedRecord Process(std::string_view line, Format format);
  double tokenize_seconds() const { return tokenize_seconds_; }

 private:
  void ProcessReview(Review review, ProcessedRecord* out);
  void ProcessProduct(Product product, ProcessedRecord* out);
  // Applies the filters to cleaned text; sets out->drop when one fails.
  bool PassesFilters(const std::string& text, ProcessedRecord* out) const;
  // Scrubs every field; on a scrubbing error marks the record kPiiError and returns false.
  bool ScrubAll(const std::vector<std::string*>& fields, const std::vector<std::string>& personal,
                ProcessedRecord* out);
  void Fingerprint(const std::string& text, const std::string& group, ProcessedRecord* out) const;
  void Tokenize(const std::string& text, std::vector<int32_t>* out);
  void RenderDocument(const std::string& name, const TemplateFields& fields, ProcessedRecord* out);
  void RenderPair(const std::string& name, const TemplateFields& fields, ProcessedRecord* out);

  const PrepareOptions& options_;
  const Tokenizer& tokenizer_;
  const TemplateSet& templates_;
  const PiiScrubber& pii_;
  const MinHasher& minhash_;
  const JoinTables& tables_;
  RecordParser parser_;
  PieceCache cache_;
  double tokenize_seconds_ = 0;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_RECORD_PROCESSOR_H_
