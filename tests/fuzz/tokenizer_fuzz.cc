// Byte-level BPE: every byte string encodes to valid ids and decodes back to itself.
#include <cstdio>
#include <cstdlib>

#include "trainer/tokenizer/tokenizer.h"

namespace {
const copyforge::Tokenizer& Gpt2() {
  static const auto* tok = [] {
    const char* dir = std::getenv("COPYFORGE_GPT2_TOKENIZER");
    auto t = copyforge::Tokenizer::Load(dir != nullptr ? dir : COPYFORGE_GPT2_TOKENIZER);
    if (!t.ok()) {
      std::fprintf(stderr, "fuzz_tokenizer: %s\n", std::string(t.status().message()).c_str());
      std::abort();
    }
    return t->release();
  }();
  return *tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> ids = Gpt2().Encode(text);
  for (int32_t id : ids) {
    if (id < 0 || id >= Gpt2().vocab_size()) std::abort();
  }
  auto back = Gpt2().Decode(ids);
  if (!back.ok() || *back != text) std::abort();
  return 0;
}
