// GPT-2's reversible map between bytes and printable Unicode characters, used in vocab.json
// and merges.txt so that every byte sequence has a whitespace-free textual spelling.
#ifndef COPYFORGE_TRAINER_TOKENIZER_BYTE_UNICODE_H_
#define COPYFORGE_TRAINER_TOKENIZER_BYTE_UNICODE_H_

#include <array>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace copyforge {

// The code point GPT-2 uses to spell byte b.
char32_t ByteToUnicode(unsigned char b);

// The 256 bytes in the order GPT-2 assigns them ids 0..255 (printable ones first).
const std::array<unsigned char, 256>& BytesInVocabOrder();

// Spells raw bytes in GPT-2's printable form ("hello world" -> "helloĠworld").
std::string BytesToVocabString(std::string_view bytes);

// Inverse of BytesToVocabString; an error names the offending character.
absl::StatusOr<std::string> VocabStringToBytes(std::string_view spelled);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TOKENIZER_BYTE_UNICODE_H_
