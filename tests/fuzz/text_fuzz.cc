// Text cleaning and PII scrubbing: no crash, hang or sanitizer report on any bytes; a scrub either
// succeeds or fails with a status (and then the caller drops the text).
#include "trainer/data/pii.h"
#include "trainer/data/text_clean.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const copyforge::PiiScrubber* scrubber = new copyforge::PiiScrubber(100000);
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  std::string text = copyforge::CleanText(raw);
  (void)copyforge::NormalizeForDedup(text);
  (void)copyforge::CountWords(text);
  (void)copyforge::EnglishStopwordRatio(text);
  const std::vector<std::string> personal = {"Jane Doe", "A1B2C3"};
  (void)scrubber->Scrub(&text, personal);
  return 0;
}
