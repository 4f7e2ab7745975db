#include "trainer/data/csv_rows.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace copyforge {

CsvRows::CsvRows(const CsvColumns& columns, int64_t max_row_bytes)
    : columns_(columns), max_row_bytes_(max_row_bytes) {
  csv_init(&parser_, CSV_APPEND_NULL);
}

CsvRows::~CsvRows() { csv_free(&parser_); }

absl::Status CsvRows::Feed(std::string_view line, int64_t line_number, const std::string& path,
                           const std::function<void(std::string)>& row) {
  // An empty line outside a quoted field is no row (inside one, it is part of the field).
  if (line.empty() && row_bytes_ == 0) return absl::OkStatus();
  row_ = &row;
  path_ = &path;
  if (row_bytes_ == 0) row_line_ = line_number;
  row_bytes_ += static_cast<int64_t>(line.size()) + 1;
  if (row_bytes_ > max_row_bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", row_line_, ": a CSV row longer than max_line_bytes (",
                     max_row_bytes_, ") starts here; is a quoted field left unterminated?"));
  }
  const std::string with_newline = std::string(line) + "\n";
  if (csv_parse(&parser_, with_newline.data(), with_newline.size(), &CsvRows::OnField,
                &CsvRows::OnRow, this) != with_newline.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", line_number, ": CSV error: ", csv_strerror(csv_error(&parser_))));
  }
  return status_;
}

absl::Status CsvRows::Finish(const std::string& path, const std::function<void(std::string)>& row) {
  if (row_bytes_ > 0) {
    // Every line is fed with its newline, which ends any row outside quotes.
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", row_line_,
                     ": unterminated quoted CSV field (the row starting here never ends)"));
  }
  row_ = &row;
  path_ = &path;
  csv_fini(&parser_, &CsvRows::OnField, &CsvRows::OnRow, this);
  return status_;
}

void CsvRows::OnField(void* s, size_t len, void* self) {
  static_cast<CsvRows*>(self)->fields_.emplace_back(static_cast<const char*>(s), len);
}

void CsvRows::OnRow(int, void* self) { static_cast<CsvRows*>(self)->EndRow(); }

void CsvRows::EndRow() {
  row_bytes_ = 0;
  if (header_.empty()) {
    header_ = std::move(fields_);
    for (const std::string* col :
         {&columns_.text, &columns_.title, &columns_.id, &columns_.rating}) {
      if (!col->empty() && std::find(header_.begin(), header_.end(), *col) == header_.end()) {
        status_.Update(absl::InvalidArgumentError(absl::StrCat(
            *path_, ": column \"", *col, "\" named in csv config is not in the header (",
            absl::StrJoin(header_, ", "), ")")));
      }
    }
  } else {
    nlohmann::json j = nlohmann::json::object();
    for (size_t i = 0; i < fields_.size() && i < header_.size(); ++i) j[header_[i]] = fields_[i];
    (*row_)(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  fields_.clear();
}

}  // namespace copyforge
