#include "trainer/tokenizer/byte_unicode.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/tokenizer/unicode.h"

namespace copyforge {
namespace {

struct Tables {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<unsigned char, 256> order{};
  Tables() {
    // Printable Latin-1 bytes map to themselves; the rest take code points from U+0100 upward.
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 0;
    int idx = 0;
    for (int b = 0; b < 256; ++b) {
      if (printable(b)) {
        byte_to_cp[b] = static_cast<char32_t>(b);
        order[idx++] = static_cast<unsigned char>(b);
      }
    }
    for (int b = 0; b < 256; ++b) {
      if (!printable(b)) {
        byte_to_cp[b] = static_cast<char32_t>(256 + next++);
        order[idx++] = static_cast<unsigned char>(b);
      }
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

char32_t ByteToUnicode(unsigned char b) { return GetTables().byte_to_cp[b]; }

const std::array<unsigned char, 256>& BytesInVocabOrder() { return GetTables().order; }

std::string BytesToVocabString(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) AppendUtf8(ByteToUnicode(b), &out);
  return out;
}

absl::StatusOr<std::string> VocabStringToBytes(std::string_view spelled) {
  std::string out;
  const char* p = spelled.data();
  const char* end = p + spelled.size();
  while (p < end) {
    char32_t cp;
    p += DecodeUtf8(p, end, &cp);
    if (cp < 256 && GetTables().byte_to_cp[cp] == cp) {
      out.push_back(static_cast<char>(cp));
    } else if (cp >= 256 && cp < 256 + 68) {
      // The 68 non-printable bytes, in increasing byte order.
      int k = static_cast<int>(cp - 256);
      int b = GetTables().order[256 - 68 + k];
      out.push_back(static_cast<char>(b));
    } else {
      return absl::InvalidArgumentError(
          absl::StrFormat("character U+%04X in \"%s\" is not a GPT-2 byte spelling",
                          static_cast<unsigned>(cp), spelled));
    }
  }
  return out;
}

}  // namespace copyforge
