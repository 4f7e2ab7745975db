// A deterministic synthetic review corpus in the public datasets' own record formats, so the
// demo and tests run without downloading anything. The text is template-generated: it has the
// shape of real reviews (titles, ratings, product facts, occasional PII to scrub), not their
// variety.
#ifndef COPYFORGE_TRAINER_DATA_SAMPLE_CORPUS_H_
#define COPYFORGE_TRAINER_DATA_SAMPLE_CORPUS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace copyforge {

struct SampleCorpusOptions {
  int64_t products = 60;
  int64_t reviews = 1500;
  int64_t businesses = 30;
  int64_t yelp_reviews = 600;
  uint64_t seed = 2018;
};

struct SampleCorpusSummary {
  int64_t amazon_reviews = 0, amazon_products = 0, yelp_reviews = 0, yelp_businesses = 0;
  int64_t text_bytes = 0;
};

// Writes into `dir` (atomically, as one directory):
//   amazon2018/reviews.jsonl, amazon2018/meta.jsonl   Amazon Review Data 2018 fields
//   yelp/review.json, yelp/business.json              Yelp Open Dataset fields
//   reviews.txt                                       review documents joined by <|endoftext|>
absl::Status WriteSampleCorpus(const std::string& dir, const SampleCorpusOptions& options,
                               bool overwrite, SampleCorpusSummary* summary);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_SAMPLE_CORPUS_H_
