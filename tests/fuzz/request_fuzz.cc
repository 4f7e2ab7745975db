// The serving request conversion: any GenerateRequest is checked against the limits and its
// prompt rendered, or refused with a status; nothing it asks for exceeds the limits once checked.
#include <cstdlib>

#include "serving/request_limits.h"
#include "serving/request_prompt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const copyforge::TemplateSet* templates =
      new copyforge::TemplateSet(*copyforge::TemplateSet::Default());
  copyforge::v1::GenerateRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  const copyforge::RequestLimits limits;
  if (!copyforge::CheckGenerateRequest(req, limits, 16).ok()) return 0;
  if (req.stopping().stop_size() > limits.max_stop_sequences) std::abort();
  auto prompt = copyforge::RenderRequestPrompt(req, *templates);
  (void)prompt;
  return 0;
}
