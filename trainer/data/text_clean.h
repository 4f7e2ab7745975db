// Normalises review text: HTML line breaks and tags, entities, control characters, whitespace.
#ifndef COPYFORGE_TRAINER_DATA_TEXT_CLEAN_H_
#define COPYFORGE_TRAINER_DATA_TEXT_CLEAN_H_

#include <string>
#include <string_view>

namespace copyforge {

// Returns `text` with <br> / <p> turned into newlines, other HTML tags removed, HTML entities
// decoded (named ones in common use and numeric ones), control characters dropped (tabs become
// spaces), runs of spaces collapsed, at most one blank line in a row, and the ends trimmed.
// Invalid UTF-8 bytes are dropped.
std::string CleanText(std::string_view text);

// Lowercased letters and digits with single spaces between words: the form compared when
// looking for duplicates.
std::string NormalizeForDedup(std::string_view text);

// Words in `text` (maximal runs of letters/digits/apostrophes).
int CountWords(std::string_view text);

// Share of words that are common English function words ("the", "and", "is", ...): a cheap
// signal for an English-only filter. 0 for text without words.
double EnglishStopwordRatio(std::string_view text);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_TEXT_CLEAN_H_
