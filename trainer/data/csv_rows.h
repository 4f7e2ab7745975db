// CSV input for `prepare`: rows whose quoted fields may span lines, fed a line at a time, handed
// on as JSON object lines keyed by the header. A row still open at the end of the file (an
// unterminated quote) or longer than `max_row_bytes` is an error naming the line it starts on,
// instead of swallowing the rest of the file. Not thread-safe; one per input file.
#ifndef COPYFORGE_TRAINER_DATA_CSV_ROWS_H_
#define COPYFORGE_TRAINER_DATA_CSV_ROWS_H_

#include <csv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "trainer/data/records.h"

namespace copyforge {

class CsvRows {
 public:
  CsvRows(const CsvColumns& columns, int64_t max_row_bytes);
  ~CsvRows();
  CsvRows(const CsvRows&) = delete;
  CsvRows& operator=(const CsvRows&) = delete;

  // One input line (without its newline) and its number; `row` receives each complete row.
  absl::Status Feed(std::string_view line, int64_t line_number, const std::string& path,
                    const std::function<void(std::string)>& row);
  // The end of the file.
  absl::Status Finish(const std::string& path, const std::function<void(std::string)>& row);

 private:
  static void OnField(void* s, size_t len, void* self);
  static void OnRow(int, void* self);
  void EndRow();

  CsvColumns columns_;
  const int64_t max_row_bytes_;
  csv_parser parser_{};
  std::vector<std::string> header_, fields_;
  int64_t row_bytes_ = 0;  // bytes fed since the last complete row
  int64_t row_line_ = 0;   // the line the open row started on
  const std::function<void(std::string)>* row_ = nullptr;
  const std::string* path_ = nullptr;
  absl::Status status_;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_CSV_ROWS_H_
