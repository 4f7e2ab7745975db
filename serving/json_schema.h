// Structured output, part one: a JSON Schema compiled into a byte-level pushdown automaton that
// accepts exactly the JSON texts the schema allows (and every prefix of them that can still be
// completed: the automaton has no dead ends, so constrained decoding can always finish).
//
// Supported: type object (properties, required, additionalProperties), array (items, minItems,
// maxItems), string (minLength, maxLength counted in characters, enum), integer and number
// (minimum, maximum), boolean, null, enum and const of any JSON values, nesting up to 12 levels.
// Annotations (title, description, default, examples, $schema, $id) are ignored; every other
// keyword is refused with the path where it appears, never silently ignored. What is generated:
// properties in the order the schema lists them (optional ones may be left out), no other
// properties, numbers without exponents (at most 15 integer and 6 fraction digits), string
// escapes \" \\ \/ \b \f \n \r \t and \u0XXX (no surrogates), valid UTF-8, and wherever JSON
// allows whitespace inside the document (none before it) up to 16 bytes: at most one line break,
// first, then spaces or tabs, as pretty-printers write it.
#ifndef COPYFORGE_SERVING_JSON_SCHEMA_H_
#define COPYFORGE_SERVING_JSON_SCHEMA_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

struct SchemaNode {
  enum Kind : uint8_t { kObject, kArray, kString, kInteger, kNumber, kLiterals };
  Kind kind = kLiterals;
  // kObject: keys as JSON text with quotes ("\"title\""), their value nodes, required flags.
  std::vector<std::string> keys;
  std::vector<int32_t> children;
  std::vector<bool> required;
  // kArray: the item node; bounds (max -1: none).
  int32_t items = -1;
  int64_t min_items = 0, max_items = -1;
  // kString: bounds in characters (max -1: none).
  int64_t min_length = 0, max_length = -1;
  // kInteger / kNumber.
  bool has_min = false, has_max = false;
  double minimum = 0, maximum = 0;
  // kLiterals (enum, const, boolean, null and strings with enum): compact JSON texts.
  std::vector<std::string> literals;
};

// One level of the automaton's stack. Plain integers only, so a state is hashed by its bytes.
struct SchemaFrame {
  int64_t node = 0, phase = 0;
  int64_t count = 0;  // object: next property; array: items; string: characters
  int64_t pos = 0;    // literal / key: bytes matched; \u escape: hex digits
  int64_t set = 0;    // literal / key candidates (bit i: literal or property i)
  int64_t ws = 0;     // whitespace bytes in the current gap
  int64_t utf8_left = 0, utf8_lo = 0, utf8_hi = 0;  // string: the UTF-8 character being read
  int64_t negative = 0, int_digits = 0, frac_digits = 0;
  int64_t int_value = 0, frac_value = 0;  // number: digits so far
};

// The automaton's state: the stack of the values being read (empty once the document is done).
struct SchemaState {
  static constexpr int kMaxDepth = 13;  // a frame per nesting level: 12 levels + the root
  std::array<SchemaFrame, kMaxDepth> frames;
  int depth = 0;
  bool done = false;

  // The cache key of the state's mask: frames with counters that only matter relative to their
  // limits brought down to at most `horizon` (the longest token's length in bytes).
  std::string MaskKey(const class JsonSchema& schema, int64_t horizon) const;
  void CopyFrom(const SchemaState& other) {
    depth = other.depth;
    done = other.done;
    for (int i = 0; i < depth; ++i) frames[i] = other.frames[i];
  }
};

class JsonSchema {
 public:
  // `schema_json`: a JSON Schema as text. Errors (INVALID_ARGUMENT) say what and where
  // ("/properties/bullets/items: keyword 'pattern' is not supported").
  static absl::StatusOr<std::shared_ptr<const JsonSchema>> Compile(std::string_view schema_json);
  // The ready schema for a product listing: title, bullets[] and description.
  static const char* ProductListing();

  SchemaState Start() const;
  // Feeds one byte; false (state unspecified) when the schema cannot continue with it.
  bool Feed(SchemaState& state, uint8_t byte) const;
  bool Feed(SchemaState& state, std::string_view bytes) const;
  // Whether the document may end here (only the end of text may follow once `done`; a number or
  // literal at the top level may still be extended).
  bool Complete(const SchemaState& state) const;
  // When the state reads the inside of a string with no escape or UTF-8 character pending, how
  // many more characters the string may take (INT64_MAX: unbounded); -1 otherwise. Inside such a
  // string every "plain" byte run (no quote, backslash or control byte, whole UTF-8 characters)
  // of at most that many characters is accepted, which lets masks skip most of the vocabulary.
  int64_t PlainRoom(const SchemaState& state) const;
  // Whether `text` is accepted in full.
  bool Accepts(std::string_view text) const;

  const std::vector<SchemaNode>& nodes() const { return nodes_; }

 private:
  friend class SchemaCompiler;
  // kTaken: the byte is consumed; kAgain: a frame was pushed, feed the byte to it; kPassUp: the
  // top value is complete without the byte, which belongs to its parent.
  enum Result { kTaken, kRejected, kAgain, kPassUp };
  Result FeedFrame(SchemaState& s, uint8_t c) const;
  Result FeedNumber(SchemaState& s, uint8_t c) const;
  Result FeedString(SchemaState& s, uint8_t c) const;
  Result FeedLiteral(SchemaState& s, uint8_t c) const;
  Result FeedObject(SchemaState& s, uint8_t c) const;
  Result FeedArray(SchemaState& s, uint8_t c) const;
  bool Push(SchemaState& s, int32_t node) const;
  void PopDone(SchemaState& s) const;
  bool NumberFeasible(const SchemaFrame& f, bool exact) const;
  std::vector<SchemaNode> nodes_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_JSON_SCHEMA_H_
