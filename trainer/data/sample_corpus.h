// A deterministic synthetic review corpus in the public datasets' own record formats, so the
// demo and tests run without downloading anything. Text is generated from structured product and
// business attributes: ratings drive the sentiment words, descriptions and reviews mention their
// product's real attributes. It also plants what `prepare` must handle: PII, exact and near
// duplicates, malformed lines and HTML.
#ifndef COPYFORGE_TRAINER_DATA_SAMPLE_CORPUS_H_
#define COPYFORGE_TRAINER_DATA_SAMPLE_CORPUS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace copyforge {

struct SampleCorpusOptions {
  int64_t records = 3000;  // reviews over all sources (45% Amazon 2018, 30% Amazon 2023, 25% Yelp)
  uint64_t seed = 2018;
  // Shares of reviews planted as exact duplicates, near duplicates and malformed lines.
  double exact_duplicates = 0.02;
  double near_duplicates = 0.02;
  double malformed = 0.005;
};

struct SampleCorpusSummary {
  int64_t reviews = 0, products = 0, businesses = 0, csv_rows = 0;
  int64_t exact_duplicates = 0, near_duplicates = 0, malformed = 0, with_pii = 0;
  int64_t text_bytes = 0;
};

// Writes into `dir` (atomically, as one directory):
//   amazon2018/Sample.json.gz, amazon2018/meta_Sample.json.gz      Amazon Review Data 2018
//   amazon2023/Sample.jsonl, amazon2023/meta_Sample.jsonl          Amazon Reviews 2023
//   yelp/yelp_academic_dataset_review.json, ..._business.json      Yelp Open Dataset
//   csv/reviews.csv                                                 a pandas-style CSV
//   reviews.txt                      clean review documents joined by <|endoftext|>
absl::Status WriteSampleCorpus(const std::string& dir, const SampleCorpusOptions& options,
                               bool overwrite, SampleCorpusSummary* summary);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_SAMPLE_CORPUS_H_
