// The corpus record parsers: any line, in any format, parses or is refused with a status.
#include "trainer/data/records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static copyforge::RecordParser* parser = new copyforge::RecordParser();
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const copyforge::CsvColumns csv{"text", "title", "id", "rating"};
  (void)parser->Detect(line);
  for (copyforge::Format f :
       {copyforge::Format::kAmazon2018Review, copyforge::Format::kAmazon2018Meta,
        copyforge::Format::kAmazon2023Review, copyforge::Format::kAmazon2023Meta,
        copyforge::Format::kYelpReview, copyforge::Format::kYelpBusiness,
        copyforge::Format::kCsv}) {
    (void)parser->Parse(line, f, csv);
  }
  return 0;
}
