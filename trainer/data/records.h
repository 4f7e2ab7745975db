// Record formats of the review corpora and their parsing into one common shape.
#ifndef COPYFORGE_TRAINER_DATA_RECORDS_H_
#define COPYFORGE_TRAINER_DATA_RECORDS_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

enum class Format {
  kAuto,
  kAmazon2018Review,
  kAmazon2018Meta,
  kAmazon2023Review,
  kAmazon2023Meta,
  kYelpReview,
  kYelpBusiness,
  kCsv,
};

// "amazon2018_review", ... and back; ParseFormat's error lists the valid names.
std::string FormatName(Format f);
absl::StatusOr<Format> ParseFormat(std::string_view name);
inline bool IsMetadata(Format f) {
  return f == Format::kAmazon2018Meta || f == Format::kAmazon2023Meta || f == Format::kYelpBusiness;
}

// A review (Amazon, Yelp or CSV row).
struct Review {
  std::string group_id;  // product (asin / parent_asin) or business id: joins and splits by it
  std::string title;     // summary / title, may be empty
  std::string text;
  double rating = 0;  // stars, 0 when absent
  // Strings that identify the reviewer; scrubbed from the text wherever they appear.
  std::vector<std::string> personal;
};

// An Amazon product's metadata.
struct Product {
  std::string id;
  std::string title, brand, category, price, description;
  std::vector<std::string> features;
};

// A Yelp business.
struct Business {
  std::string id;
  std::string name, city, state, categories;
  double stars = 0;
};

// What one input line became.
struct ParsedRecord {
  enum class Kind { kReview, kProduct, kBusiness } kind = Kind::kReview;
  Review review;
  Product product;
  Business business;
};

// Columns of a CSV input, by header name (empty: not used).
struct CsvColumns {
  std::string text = "text";
  std::string title;
  std::string id;
  std::string rating;
};

// Parses JSON lines; one instance per thread (it reuses simdjson's buffers).
class RecordParser {
 public:
  RecordParser();
  ~RecordParser();
  RecordParser(const RecordParser&) = delete;
  RecordParser& operator=(const RecordParser&) = delete;

  // Parses one line of the given (non-auto) format. An error says what is wrong with the line
  // (malformed JSON, a missing or mistyped field); the caller adds file and line.
  absl::StatusOr<ParsedRecord> Parse(std::string_view line, Format format, const CsvColumns& csv);

  // Guesses the format of a JSON line from its keys; kAuto when it cannot tell.
  Format Detect(std::string_view line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_RECORDS_H_
