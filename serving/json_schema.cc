#include "serving/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace copyforge {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kMaxNesting = 12;
constexpr int kMaxWhitespace = 16;
constexpr int kMaxChoices = 64;  // properties of an object, values of an enum
constexpr int kMaxIntDigits = 15;
constexpr int kMaxFracDigits = 6;
constexpr double kIntLimit = 1e15;  // 10^kMaxIntDigits

// Phases of each kind of frame.
enum ObjectPhase { kObjStart, kObjOpen, kObjKey, kObjColon, kObjValue, kObjAfter, kObjNextKey };
enum ArrayPhase { kArrStart, kArrOpen, kArrAfter, kArrItem };
enum StringPhase { kStrStart, kStrContent, kStrEscape, kStrHex };
enum LiteralPhase { kLitStart, kLitMatch };
enum NumberPhase { kNumStart, kNumSign, kNumZero, kNumInt, kNumDot, kNumFrac };

bool IsWhitespace(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool IsDigit(uint8_t c) { return c >= '0' && c <= '9'; }
bool IsHex(uint8_t c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

const std::set<std::string>& Annotations() {
  static const auto* kAnnotations = new std::set<std::string>{
      "title", "description", "default", "examples", "$schema", "$id", "$comment"};
  return *kAnnotations;
}

}  // namespace

// Turns a parsed schema into nodes; every error names the path of the offending schema.
class SchemaCompiler {
 public:
  explicit SchemaCompiler(JsonSchema* out) : out_(out) {}

  absl::StatusOr<int32_t> Compile(const Json& j, const std::string& path, int depth) {
    const std::string where = path.empty() ? "/" : path;
    if (depth > kMaxNesting) {
      return Error(where, absl::StrCat("nesting deeper than ", kMaxNesting, " levels"));
    }
    if (!j.is_object()) return Error(where, "a schema must be a JSON object");
    static const std::set<std::string> kKnown = {
        "type",      "properties", "required", "additionalProperties",
        "items",     "minItems",   "maxItems", "minLength",
        "maxLength", "enum",       "const",    "minimum",
        "maximum"};
    for (const auto& [key, value] : j.items()) {
      if (kKnown.count(key) == 0 && Annotations().count(key) == 0) {
        return Error(where, absl::StrCat("keyword '", key, "' is not supported"));
      }
    }
    const std::string type =
        j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
    if (j.contains("type") && !j["type"].is_string()) {
      return Error(where, "'type' must be one type name (type lists are not supported)");
    }
    if (j.contains("enum") || j.contains("const")) return Literals(j, where, type);
    SchemaNode node;
    if (type == "object") return Object(j, path, depth);
    if (type == "array") return Array(j, path, depth);
    if (type == "string") {
      node.kind = SchemaNode::kString;
      if (!Count(j, "minLength", where, &node.min_length).ok() ||
          !Count(j, "maxLength", where, &node.max_length).ok()) {
        return error_;
      }
      if (node.max_length >= 0 && node.min_length > node.max_length) {
        return Error(where, "minLength is larger than maxLength");
      }
      return Add(std::move(node));
    }
    if (type == "integer" || type == "number") return Number(j, where, type == "integer");
    if (type == "boolean" || type == "null") {
      node.kind = SchemaNode::kLiterals;
      node.literals = type == "null" ? std::vector<std::string>{"null"}
                                     : std::vector<std::string>{"true", "false"};
      return Add(std::move(node));
    }
    if (type.empty()) return Error(where, "'type' (or 'enum' / 'const') is required");
    return Error(where, absl::StrCat("unknown type '", type, "'"));
  }

 private:
  absl::Status Error(const std::string& where, const std::string& what) {
    error_ = absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
    return error_;
  }

  int32_t Add(SchemaNode node) {
    out_->nodes_.push_back(std::move(node));
    return static_cast<int32_t>(out_->nodes_.size() - 1);
  }

  // A non-negative integer keyword (-1 when absent).
  absl::Status Count(const Json& j, const char* key, const std::string& where, int64_t* out) {
    if (!j.contains(key)) return absl::OkStatus();
    const Json& v = j[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000000) {
      return Error(where, absl::StrCat("'", key, "' must be an integer from 0 to 1000000"));
    }
    *out = v.get<int64_t>();
    return absl::OkStatus();
  }

  absl::StatusOr<int32_t> Literals(const Json& j, const std::string& where,
                                   const std::string& type) {
    SchemaNode node;
    node.kind = SchemaNode::kLiterals;
    std::vector<Json> values;
    if (j.contains("const")) values.push_back(j["const"]);
    if (j.contains("enum")) {
      if (!j["enum"].is_array() || j["enum"].empty() || j["enum"].size() > kMaxChoices) {
        return Error(where,
                     absl::StrCat("'enum' must be an array of 1 to ", kMaxChoices, " values"));
      }
      if (j.contains("const")) return Error(where, "'enum' and 'const' together");
      for (const Json& v : j["enum"]) values.push_back(v);
    }
    for (const Json& v : values) {
      const bool fits = type.empty() || (type == "string" && v.is_string()) ||
                        (type == "integer" && v.is_number_integer()) ||
                        (type == "number" && v.is_number()) ||
                        (type == "boolean" && v.is_boolean()) || (type == "null" && v.is_null()) ||
                        (type == "object" && v.is_object()) || (type == "array" && v.is_array());
      if (!fits) return Error(where, absl::StrCat("enum value ", v.dump(), " is not a ", type));
      const std::string text = v.dump();
      if (std::find(node.literals.begin(), node.literals.end(), text) == node.literals.end()) {
        node.literals.push_back(text);
      }
    }
    return Add(std::move(node));
  }

  absl::StatusOr<int32_t> Object(const Json& j, const std::string& path, int depth) {
    const std::string where = path.empty() ? "/" : path;
    SchemaNode node;
    node.kind = SchemaNode::kObject;
    std::vector<const Json*> schemas;
    if (j.contains("properties")) {
      const Json& props = j["properties"];
      if (!props.is_object()) return Error(where, "'properties' must be an object");
      if (props.size() > kMaxChoices) {
        return Error(where, absl::StrCat("more than ", kMaxChoices, " properties"));
      }
      for (const auto& [key, value] : props.items()) {
        node.keys.push_back(Json(key).dump());
        schemas.push_back(&value);
      }
    }
    node.required.assign(node.keys.size(), false);
    if (j.contains("required")) {
      if (!j["required"].is_array()) return Error(where, "'required' must be an array of names");
      for (const Json& name : j["required"]) {
        if (!name.is_string()) return Error(where, "'required' must be an array of names");
        const std::string key = Json(name.get<std::string>()).dump();
        auto it = std::find(node.keys.begin(), node.keys.end(), key);
        if (it == node.keys.end()) {
          return Error(where,
                       absl::StrCat("'required' names ", key, ", which is not in properties"));
        }
        node.required[it - node.keys.begin()] = true;
      }
    }
    if (j.contains("additionalProperties") && !j["additionalProperties"].is_boolean()) {
      return Error(where,
                   "'additionalProperties' must be true or false (only the listed "
                   "properties are generated)");
    }
    const int32_t id = Add(std::move(node));
    std::vector<int32_t> children;
    size_t i = 0;
    const Json properties = j.value("properties", Json::object());
    for (const auto& [key, value] : properties.items()) {
      absl::StatusOr<int32_t> child =
          Compile(*schemas[i++], absl::StrCat(path, "/properties/", key), depth + 1);
      if (!child.ok()) return child.status();
      children.push_back(*child);
    }
    out_->nodes_[id].children = std::move(children);
    return id;
  }

  absl::StatusOr<int32_t> Array(const Json& j, const std::string& path, int depth) {
    const std::string where = path.empty() ? "/" : path;
    SchemaNode node;
    node.kind = SchemaNode::kArray;
    if (!j.contains("items")) return Error(where, "an array needs 'items'");
    if (!Count(j, "minItems", where, &node.min_items).ok() ||
        !Count(j, "maxItems", where, &node.max_items).ok()) {
      return error_;
    }
    if (node.max_items >= 0 && node.min_items > node.max_items) {
      return Error(where, "minItems is larger than maxItems");
    }
    const int32_t id = Add(std::move(node));
    absl::StatusOr<int32_t> items = Compile(j["items"], absl::StrCat(path, "/items"), depth + 1);
    if (!items.ok()) return items.status();
    out_->nodes_[id].items = *items;
    return id;
  }

  absl::StatusOr<int32_t> Number(const Json& j, const std::string& where, bool integer) {
    SchemaNode node;
    node.kind = integer ? SchemaNode::kInteger : SchemaNode::kNumber;
    for (const char* key : {"minimum", "maximum"}) {
      if (!j.contains(key)) continue;
      if (!j[key].is_number() || !std::isfinite(j[key].get<double>())) {
        return Error(where, absl::StrCat("'", key, "' must be a number"));
      }
      const double v = j[key].get<double>();
      if (std::fabs(v) >= kIntLimit) {
        return Error(where, absl::StrCat("'", key, "' is beyond the ", kMaxIntDigits,
                                         " integer digits generated"));
      }
      (key[1] == 'i' ? node.has_min : node.has_max) = true;
      (key[1] == 'i' ? node.minimum : node.maximum) = v;
    }
    const double lo = node.has_min ? node.minimum : -kIntLimit;
    const double hi = node.has_max ? node.maximum : kIntLimit;
    if (integer ? std::ceil(lo) > std::floor(hi) : lo > hi) {
      return Error(where, "no value lies between minimum and maximum");
    }
    return Add(std::move(node));
  }

  JsonSchema* out_;
  absl::Status error_;
};

absl::StatusOr<std::shared_ptr<const JsonSchema>> JsonSchema::Compile(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("the JSON schema is not valid JSON");
  auto schema = std::shared_ptr<JsonSchema>(new JsonSchema());
  SchemaCompiler compiler(schema.get());
  absl::StatusOr<int32_t> root = compiler.Compile(j, "", 0);
  if (!root.ok()) return root.status();
  return std::shared_ptr<const JsonSchema>(std::move(schema));
}

const char* JsonSchema::ProductListing() {
  return R"({"type":"object","properties":{)"
         R"("title":{"type":"string","minLength":1,"maxLength":120},)"
         R"("bullets":{"type":"array","items":{"type":"string","minLength":1,"maxLength":160},)"
         R"("minItems":1,"maxItems":5},)"
         R"("description":{"type":"string","minLength":1,"maxLength":1200}},)"
         R"("required":["title","bullets","description"],"additionalProperties":false})";
}

SchemaState JsonSchema::Start() const {
  SchemaState s;
  Push(s, 0);
  return s;
}

bool JsonSchema::Push(SchemaState& s, int32_t node) const {
  if (s.depth == SchemaState::kMaxDepth) return false;
  s.frames[s.depth] = SchemaFrame{};
  s.frames[s.depth].node = node;
  ++s.depth;
  return true;
}

void JsonSchema::PopDone(SchemaState& s) const {
  --s.depth;
  if (s.depth == 0) {
    s.done = true;
    return;
  }
  SchemaFrame& parent = s.frames[s.depth - 1];
  parent.count += 1;  // object: the next property; array: one more item
  parent.phase =
      nodes_[parent.node].kind == SchemaNode::kObject ? int64_t{kObjAfter} : int64_t{kArrAfter};
  parent.ws = 0;
}

bool JsonSchema::Feed(SchemaState& s, uint8_t c) const {
  for (;;) {
    if (s.done) return false;
    switch (FeedFrame(s, c)) {
      case kTaken:
        return true;
      case kRejected:
        return false;
      case kAgain:
        break;
      case kPassUp:
        PopDone(s);
        break;
    }
  }
}

bool JsonSchema::Feed(SchemaState& s, std::string_view bytes) const {
  for (char c : bytes) {
    if (!Feed(s, static_cast<uint8_t>(c))) return false;
  }
  return true;
}

bool JsonSchema::Accepts(std::string_view text) const {
  SchemaState s = Start();
  return Feed(s, text) && Complete(s);
}

bool JsonSchema::Complete(const SchemaState& s) const {
  if (s.done) return true;
  if (s.depth != 1) return false;
  const SchemaFrame& f = s.frames[0];
  const SchemaNode& n = nodes_[f.node];
  if (n.kind == SchemaNode::kInteger || n.kind == SchemaNode::kNumber) {
    return (f.phase == kNumZero || f.phase == kNumInt || f.phase == kNumFrac) &&
           NumberFeasible(f, /*exact=*/true);
  }
  if (n.kind == SchemaNode::kLiterals && f.phase == kLitMatch) {
    for (size_t i = 0; i < n.literals.size(); ++i) {
      if ((f.set >> i & 1) && static_cast<int64_t>(n.literals[i].size()) == f.pos) return true;
    }
  }
  return false;
}

JsonSchema::Result JsonSchema::FeedFrame(SchemaState& s, uint8_t c) const {
  SchemaFrame& f = s.frames[s.depth - 1];
  // Whitespace before a value or inside a container's gaps.
  const bool gap =
      f.phase == 0 ||
      (nodes_[f.node].kind == SchemaNode::kObject &&
       (f.phase == kObjOpen || f.phase == kObjColon || f.phase == kObjAfter ||
        f.phase == kObjNextKey)) ||
      (nodes_[f.node].kind == SchemaNode::kArray && (f.phase == kArrOpen || f.phase == kArrAfter));
  if (gap && IsWhitespace(c)) {
    // None before the document itself: a completion starts with its first value byte.
    if (s.depth == 1 && f.phase == 0) return kRejected;
    // One line break a gap, first (as pretty-printers write it), then spaces or tabs.
    if (c == '\r' || (c == '\n' && f.ws > 0)) return kRejected;
    if (f.ws >= kMaxWhitespace) return kRejected;
    ++f.ws;
    return kTaken;
  }
  switch (nodes_[f.node].kind) {
    case SchemaNode::kObject:
      return FeedObject(s, c);
    case SchemaNode::kArray:
      return FeedArray(s, c);
    case SchemaNode::kString:
      return FeedString(s, c);
    case SchemaNode::kInteger:
    case SchemaNode::kNumber:
      return FeedNumber(s, c);
    case SchemaNode::kLiterals:
      return FeedLiteral(s, c);
  }
  return kRejected;
}

namespace {

// Candidate properties from `from`: each up to and including the first required one.
int64_t KeyCandidates(const SchemaNode& n, int64_t from) {
  int64_t set = 0;
  for (int64_t i = from; i < static_cast<int64_t>(n.keys.size()); ++i) {
    set |= int64_t{1} << i;
    if (n.required[i]) break;
  }
  return set;
}

bool NoRequiredFrom(const SchemaNode& n, int64_t from) {
  for (int64_t i = from; i < static_cast<int64_t>(n.keys.size()); ++i) {
    if (n.required[i]) return false;
  }
  return true;
}

}  // namespace

JsonSchema::Result JsonSchema::FeedObject(SchemaState& s, uint8_t c) const {
  SchemaFrame& f = s.frames[s.depth - 1];
  const SchemaNode& n = nodes_[f.node];
  switch (f.phase) {
    case kObjStart:
      if (c != '{') return kRejected;
      f.phase = kObjOpen;
      f.ws = 0;
      return kTaken;
    case kObjOpen:
    case kObjNextKey:
      if (c == '"') {
        f.set = KeyCandidates(n, f.count);
        if (f.set == 0) return kRejected;
        f.phase = kObjKey;
        f.pos = 1;
        return kTaken;
      }
      if (c == '}' && f.phase == kObjOpen && NoRequiredFrom(n, 0)) {
        PopDone(s);
        return kTaken;
      }
      return kRejected;
    case kObjKey: {
      int64_t next = 0;
      for (size_t i = 0; i < n.keys.size(); ++i) {
        if ((f.set >> i & 1) && static_cast<int64_t>(n.keys[i].size()) > f.pos &&
            static_cast<uint8_t>(n.keys[i][f.pos]) == c) {
          next |= int64_t{1} << i;
        }
      }
      if (next == 0) return kRejected;
      f.set = next;
      ++f.pos;
      for (size_t i = 0; i < n.keys.size(); ++i) {
        if ((next >> i & 1) && static_cast<int64_t>(n.keys[i].size()) == f.pos) {
          f.count = static_cast<int64_t>(i);  // the property whose value follows
          f.phase = kObjColon;
          f.ws = 0;
          f.set = 0;
          f.pos = 0;
        }
      }
      return kTaken;
    }
    case kObjColon:
      if (c != ':') return kRejected;
      f.phase = kObjValue;
      return kTaken;
    case kObjValue:
      return Push(s, n.children[f.count]) ? kAgain : kRejected;
    case kObjAfter:
      if (c == ',' && f.count < static_cast<int64_t>(n.keys.size())) {
        f.phase = kObjNextKey;
        f.ws = 0;
        return kTaken;
      }
      if (c == '}' && NoRequiredFrom(n, f.count)) {
        PopDone(s);
        return kTaken;
      }
      return kRejected;
  }
  return kRejected;
}

JsonSchema::Result JsonSchema::FeedArray(SchemaState& s, uint8_t c) const {
  SchemaFrame& f = s.frames[s.depth - 1];
  const SchemaNode& n = nodes_[f.node];
  switch (f.phase) {
    case kArrStart:
      if (c != '[') return kRejected;
      f.phase = kArrOpen;
      f.ws = 0;
      return kTaken;
    case kArrOpen:
      if (c == ']') {
        if (n.min_items > 0) return kRejected;
        PopDone(s);
        return kTaken;
      }
      if (n.max_items == 0) return kRejected;
      f.phase = kArrItem;
      return Push(s, n.items) ? kAgain : kRejected;
    case kArrAfter:
      if (c == ',' && (n.max_items < 0 || f.count < n.max_items)) {
        f.phase = kArrItem;
        f.ws = 0;
        return kTaken;
      }
      if (c == ']' && f.count >= n.min_items) {
        PopDone(s);
        return kTaken;
      }
      return kRejected;
    case kArrItem:
      return Push(s, n.items) ? kAgain : kRejected;
  }
  return kRejected;
}

JsonSchema::Result JsonSchema::FeedString(SchemaState& s, uint8_t c) const {
  SchemaFrame& f = s.frames[s.depth - 1];
  const SchemaNode& n = nodes_[f.node];
  const bool room = n.max_length < 0 || f.count < n.max_length;
  switch (f.phase) {
    case kStrStart:
      if (c != '"') return kRejected;
      f.phase = kStrContent;
      return kTaken;
    case kStrContent:
      if (f.utf8_left > 0) {
        if (c < f.utf8_lo || c > f.utf8_hi) return kRejected;
        --f.utf8_left;
        f.utf8_lo = 0x80;
        f.utf8_hi = 0xBF;
        return kTaken;
      }
      if (c == '"') {
        if (f.count < n.min_length) return kRejected;
        PopDone(s);
        return kTaken;
      }
      if (c < 0x20 || !room) return kRejected;
      if (c == '\\') {
        f.phase = kStrEscape;
      } else if (c >= 0x80) {
        // The lead byte fixes how many continuation bytes follow and the range of the first
        // (no overlong forms, no surrogates, nothing beyond U+10FFFF).
        f.utf8_lo = 0x80;
        f.utf8_hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
          f.utf8_left = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
          f.utf8_left = 2;
          if (c == 0xE0) f.utf8_lo = 0xA0;
          if (c == 0xED) f.utf8_hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
          f.utf8_left = 3;
          if (c == 0xF0) f.utf8_lo = 0x90;
          if (c == 0xF4) f.utf8_hi = 0x8F;
        } else {
          return kRejected;
        }
      }
      ++f.count;
      return kTaken;
    case kStrEscape:
      if (c == 'u') {
        f.phase = kStrHex;
        f.pos = 0;
        return kTaken;
      }
      if (std::strchr("\"\\/bfnrt", c) == nullptr || c == 0) return kRejected;
      f.phase = kStrContent;
      return kTaken;
    case kStrHex:
      // \u0XXX only: never a surrogate half, which strict parsers refuse on its own.
      if (f.pos == 0 ? c != '0' : !IsHex(c)) return kRejected;
      if (++f.pos == 4) f.phase = kStrContent;
      return kTaken;
  }
  return kRejected;
}

JsonSchema::Result JsonSchema::FeedLiteral(SchemaState& s, uint8_t c) const {
  SchemaFrame& f = s.frames[s.depth - 1];
  const SchemaNode& n = nodes_[f.node];
  if (f.phase == kLitStart) {
    f.phase = kLitMatch;
    f.pos = 0;
    f.set = n.literals.size() == 64 ? -1 : (int64_t{1} << n.literals.size()) - 1;
  }
  int64_t next = 0;
  bool complete = false, longer = false;
  for (size_t i = 0; i < n.literals.size(); ++i) {
    if (!(f.set >> i & 1)) continue;
    const std::string& lit = n.literals[i];
    if (static_cast<int64_t>(lit.size()) == f.pos) complete = true;
    if (static_cast<int64_t>(lit.size()) > f.pos && static_cast<uint8_t>(lit[f.pos]) == c) {
      next |= int64_t{1} << i;
      if (static_cast<int64_t>(lit.size()) > f.pos + 1) longer = true;
    }
  }
  if (next == 0) return complete ? kPassUp : kRejected;
  f.set = next;
  ++f.pos;
  if (!longer) PopDone(s);  // every remaining candidate ends here
  return kTaken;
}

bool JsonSchema::NumberFeasible(const SchemaFrame& f, bool exact) const {
  const SchemaNode& n = nodes_[f.node];
  const bool integer = n.kind == SchemaNode::kInteger;
  const double lo_bound = n.has_min ? n.minimum : -kIntLimit;
  const double hi_bound = n.has_max ? n.maximum : kIntLimit;
  const double ulp = integer ? 1 : std::pow(10.0, -kMaxFracDigits);
  // Magnitude intervals [a, b] that completions of the digits so far can reach.
  auto fits = [&](double a, double b) {
    const double lo = f.negative ? -b : a, hi = f.negative ? -a : b;
    if (integer) return std::ceil(std::max(lo, lo_bound)) <= std::floor(std::min(hi, hi_bound));
    return std::max(lo, lo_bound) <= std::min(hi, hi_bound) + 1e-12;
  };
  const double frac = f.frac_digits == 0 ? 0 : f.frac_value / std::pow(10.0, f.frac_digits);
  const double value = static_cast<double>(f.int_value) + frac;
  if (exact) return fits(value, value);
  switch (f.phase) {
    case kNumSign:
      return fits(0, kIntLimit - ulp);
    case kNumZero:
    case kNumDot:
      return fits(value, value + 1 - ulp);
    case kNumFrac:
      return fits(value, value + std::pow(10.0, -f.frac_digits) - ulp);
    case kNumInt:
      for (int64_t extra = 0; f.int_digits + extra <= kMaxIntDigits; ++extra) {
        const double scale = std::pow(10.0, extra);
        if (fits(f.int_value * scale, (f.int_value + 1) * scale - ulp)) return true;
      }
      return false;
  }
  return true;
}

JsonSchema::Result JsonSchema::FeedNumber(SchemaState& s, uint8_t c) const {
  SchemaFrame& f = s.frames[s.depth - 1];
  const bool decimals = nodes_[f.node].kind == SchemaNode::kNumber;
  const SchemaFrame before = f;
  auto end_here = [&]() {
    return (f.phase == kNumZero || f.phase == kNumInt || f.phase == kNumFrac) &&
                   NumberFeasible(f, /*exact=*/true)
               ? kPassUp
               : kRejected;
  };
  switch (f.phase) {
    case kNumStart:
      if (c == '-') {
        f.negative = 1;
        f.phase = kNumSign;
        break;
      }
      [[fallthrough]];
    case kNumSign:
      if (!IsDigit(c)) return kRejected;
      f.phase = c == '0' ? kNumZero : kNumInt;
      f.int_value = c - '0';
      f.int_digits = 1;
      break;
    case kNumZero:
    case kNumInt:
      if (c == '.' && decimals) {
        f.phase = kNumDot;
        break;
      }
      if (f.phase == kNumInt && IsDigit(c) && f.int_digits < kMaxIntDigits) {
        f.int_value = f.int_value * 10 + (c - '0');
        ++f.int_digits;
        break;
      }
      return end_here();
    case kNumDot:
    case kNumFrac:
      if (IsDigit(c) && f.frac_digits < kMaxFracDigits) {
        f.frac_value = f.frac_value * 10 + (c - '0');
        ++f.frac_digits;
        f.phase = kNumFrac;
        break;
      }
      return f.phase == kNumDot ? kRejected : end_here();
  }
  if (!NumberFeasible(f, /*exact=*/false)) {
    f = before;
    return kRejected;
  }
  return kTaken;
}

int64_t JsonSchema::PlainRoom(const SchemaState& s) const {
  if (s.done || s.depth == 0) return -1;
  const SchemaFrame& f = s.frames[s.depth - 1];
  const SchemaNode& n = nodes_[f.node];
  if (n.kind != SchemaNode::kString || f.phase != kStrContent || f.utf8_left > 0) return -1;
  return n.max_length < 0 ? std::numeric_limits<int64_t>::max() : n.max_length - f.count;
}

std::string SchemaState::MaskKey(const JsonSchema& schema, int64_t horizon) const {
  std::string key;
  key.reserve(depth * sizeof(SchemaFrame) + 1);
  key.push_back(done ? 'd' : 'r');
  for (int i = 0; i < depth; ++i) {
    SchemaFrame g = frames[i];
    const SchemaNode& n = schema.nodes()[g.node];
    // A token moves a string's length or an array's item count by at most its byte length, so
    // only the distance to each bound up to `horizon` decides which tokens fit.
    if (n.kind == SchemaNode::kString || n.kind == SchemaNode::kArray) {
      const int64_t lo = n.kind == SchemaNode::kString ? n.min_length : n.min_items;
      const int64_t hi = n.kind == SchemaNode::kString ? n.max_length : n.max_items;
      g.int_value = hi < 0 ? -1 : std::min(hi - g.count, horizon);
      g.count = std::min(std::max<int64_t>(lo - g.count, 0), horizon);
    }
    key.append(reinterpret_cast<const char*>(&g), sizeof(g));
  }
  return key;
}

}  // namespace copyforge
