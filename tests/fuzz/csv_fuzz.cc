// CSV input: any bytes, fed a line at a time, give rows or an error naming a line; a row never
// outgrows the limit.
#include <functional>

#include "trainer/data/csv_rows.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  copyforge::CsvRows csv({"text", "", "", ""}, 4096);
  const std::string path = "fuzz.csv";
  std::function<void(std::string)> row = [](std::string json) {
    if (json.empty() || json[0] != '{') std::abort();
  };
  int64_t line = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (!csv.Feed(text.substr(pos, end - pos), ++line, path, row).ok()) return 0;
    pos = end + 1;
  }
  (void)csv.Finish(path, row);
  return 0;
}
