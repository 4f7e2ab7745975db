// Structured output without a model: the schema automaton accepts what the schema allows and
// nothing else, has no dead ends, and the token masks over the real GPT-2 vocabulary make every
// sampled document validate, while never changing the choice of a model that already follows
// the schema.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "nlohmann/json.hpp"
#include "serving/json_schema.h"
#include "serving/token_mask.h"
#include "tests/test_util.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {
namespace {

using Json = nlohmann::json;

std::shared_ptr<const JsonSchema> MustCompile(const std::string& text) {
  auto s = JsonSchema::Compile(text);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : nullptr;
}

// An independent validator for the supported subset (no automaton involved).
bool Validates(const Json& v, const Json& schema) {
  if (schema.contains("enum")) {
    for (const Json& e : schema["enum"]) {
      if (e == v) return true;
    }
    return false;
  }
  const std::string type = schema.value("type", "");
  if (type == "object") {
    if (!v.is_object()) return false;
    const Json props = schema.value("properties", Json::object());
    for (const auto& [k, x] : v.items()) {
      if (!props.contains(k) || !Validates(x, props[k])) return false;
    }
    for (const Json& r : schema.value("required", Json::array())) {
      if (!v.contains(r.get<std::string>())) return false;
    }
    return true;
  }
  if (type == "array") {
    if (!v.is_array()) return false;
    if (v.size() < schema.value("minItems", size_t{0})) return false;
    if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>()) return false;
    for (const Json& x : v) {
      if (!Validates(x, schema["items"])) return false;
    }
    return true;
  }
  if (type == "string") {
    if (!v.is_string()) return false;
    // Characters = code points of the UTF-8 text.
    size_t chars = 0;
    for (unsigned char c : v.get<std::string>()) chars += (c & 0xC0) != 0x80;
    return chars >= schema.value("minLength", size_t{0}) &&
           (!schema.contains("maxLength") || chars <= schema["maxLength"].get<size_t>());
  }
  if (type == "integer" || type == "number") {
    if (type == "integer" ? !v.is_number_integer() : !v.is_number()) return false;
    const double x = v.get<double>();
    return (!schema.contains("minimum") || x >= schema["minimum"].get<double>()) &&
           (!schema.contains("maximum") || x <= schema["maximum"].get<double>());
  }
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  return false;
}

const char* kMixed = R"({"type":"object","properties":{
  "sku":{"type":"string","minLength":3,"maxLength":8},
  "price":{"type":"number","minimum":0.5,"maximum":250},
  "stock":{"type":"integer","minimum":-3,"maximum":40},
  "colour":{"enum":["red","navy blue",7,null]},
  "in_stock":{"type":"boolean"},
  "tags":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":3},
  "dims":{"type":"object","properties":{"w":{"type":"integer"},"h":{"type":"integer"}},
          "required":["h"]},
  "note":{"type":"null"}},
  "required":["sku","price","tags"]})";

TEST(JsonSchema, RefusesWhatItDoesNotSupportNamingWhere) {
  auto bad = JsonSchema::Compile(
      R"({"type":"object","properties":{"t":{"type":"string","pattern":"a+"}}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/properties/t: keyword 'pattern' is not supported"),
            std::string::npos)
      << bad.status();
  auto missing = JsonSchema::Compile(R"({"type":"object","required":["x"]})");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("\"x\", which is not in properties"),
            std::string::npos);
  EXPECT_FALSE(JsonSchema::Compile(R"({"type":["string","null"]})").ok());
  EXPECT_FALSE(JsonSchema::Compile(R"({"type":"integer","minimum":3,"maximum":2})").ok());
  EXPECT_FALSE(JsonSchema::Compile(R"({"type":"array"})").ok());
  EXPECT_FALSE(JsonSchema::Compile("{not json").ok());
  std::string deep = R"({"type":"string"})";
  for (int i = 0; i < 13; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  EXPECT_FALSE(JsonSchema::Compile(deep).ok());
}

TEST(JsonSchema, AcceptsWhatTheSchemaAllowsAndNothingElse) {
  auto listing = MustCompile(JsonSchema::ProductListing());
  EXPECT_TRUE(listing->Accepts(R"({"title":"Lamp","bullets":["Bright"],"description":"A lamp."})"));
  EXPECT_TRUE(listing->Accepts(
      "{\n  \"title\": \"Lamp \\\"XL\\\" \xC3\xA9t\xC3\xA9\",\n  \"bullets\": [\"a\", \"b\"],\n"
      "  \"description\": \"Line\\nbreak \\u00e9\"\n}"));
  for (const char* bad : {
           R"({"title":"Lamp","description":"x"})",              // bullets missing
           R"({"title":"","bullets":["a"],"description":"x"})",  // minLength
           R"({"title":"a","bullets":[],"description":"x"})",    // minItems
           R"({"title":"a","bullets":["1","2","3","4","5","6"],"description":"x"})",  // maxItems
           R"({"title":"a","bullets":["a"],"description":"x","extra":1})",            // not listed
           R"({"bullets":["a"],"title":"a","description":"x"})",               // schema order
           R"({"title":"a\q","bullets":["a"],"description":"x"})",             // bad escape
           R"({"title":"a\ud800","bullets":["a"],"description":"x"})",         // surrogate
           "{\"title\":\"a\xC3\",\"bullets\":[\"a\"],\"description\":\"x\"}",  // bad UTF-8
           "{\"title\":\"a\x01\",\"bullets\":[\"a\"],\"description\":\"x\"}",  // control byte
           R"({"title":"a","bullets":["a"],"description":"x"} )",              // trailing
           "{\n\n\"title\":\"a\",\"bullets\":[\"a\"],\"description\":\"x\"}",  // 2 breaks
           "{ \n\"title\":\"a\",\"bullets\":[\"a\"],\"description\":\"x\"}",   // break late
           "\n{\"title\":\"a\",\"bullets\":[\"a\"],\"description\":\"x\"}",    // before
       }) {
    EXPECT_FALSE(listing->Accepts(bad)) << bad;
  }
  auto mixed = MustCompile(kMixed);
  EXPECT_TRUE(mixed->Accepts(R"({"sku":"abc","price":12.75,"stock":-3,"colour":"navy blue",)"
                             R"("in_stock":true,"tags":["x","y"],"dims":{"h":3},"note":null})"));
  EXPECT_TRUE(mixed->Accepts(R"({"sku":"abcd","price":250,"colour":7,"tags":[]})"));
  for (const char* bad : {
           R"({"sku":"abc","price":250.5,"tags":[]})",  // above maximum
           R"({"sku":"abc","price":0.4,"tags":[]})",    // below minimum
           R"({"sku":"abc","price":1,"stock":41,"tags":[]})",
           R"({"sku":"abc","price":1,"stock":2.5,"tags":[]})",  // integer
           R"({"sku":"abc","price":01,"tags":[]})",             // leading zero
           R"({"sku":"abc","price":1,"colour":"blue","tags":[]})",
           R"({"sku":"abc","price":1,"tags":["toolong7"]})",
           R"({"sku":"abc","price":1,"tags":[],"dims":{"w":1}})",  // h required
       }) {
    EXPECT_FALSE(mixed->Accepts(bad)) << bad;
  }
  auto number = MustCompile(R"({"type":"integer","minimum":10,"maximum":19})");
  EXPECT_TRUE(number->Accepts("15"));
  SchemaState s = number->Start();
  EXPECT_FALSE(number->Feed(s, '2'));  // no completion of "2" lies in [10, 19]
}

// Random walks over bytes: wherever a walk stands, some byte continues it or the document is
// complete (no dead ends), and complete documents validate independently.
TEST(JsonSchema, NoDeadEndsAndEveryCompleteWalkValidates) {
  const Json schema = Json::parse(kMixed);
  auto compiled = MustCompile(kMixed);
  std::mt19937 rng(11);
  int complete = 0;
  for (int walk = 0; walk < 300; ++walk) {
    SchemaState s = compiled->Start();
    std::string text;
    for (int step = 0; step < 400 && !s.done; ++step) {
      std::vector<uint8_t> options;
      for (int b = 0; b < 256; ++b) {
        SchemaState t = s;
        if (compiled->Feed(t, static_cast<uint8_t>(b))) options.push_back(static_cast<uint8_t>(b));
      }
      ASSERT_TRUE(!options.empty() || compiled->Complete(s)) << "dead end after: " << text;
      if (options.empty()) break;
      // Prefer structure over long strings so walks finish.
      std::vector<uint8_t> closing;
      for (uint8_t b : options) {
        if (std::string("\"]},:0123456789tfn-").find(static_cast<char>(b)) != std::string::npos) {
          closing.push_back(b);
        }
      }
      const auto& pick = !closing.empty() && rng() % 4 != 0 ? closing : options;
      const uint8_t b = pick[rng() % pick.size()];
      ASSERT_TRUE(compiled->Feed(s, b));
      text.push_back(static_cast<char>(b));
    }
    if (!compiled->Complete(s)) continue;
    ++complete;
    const Json parsed = Json::parse(text, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << text;
    EXPECT_TRUE(Validates(parsed, schema)) << text;
  }
  EXPECT_GT(complete, 200);
}

class TokenMasks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Tokenizer::Load(testing::Env("COPYFORGE_GPT2_TOKENIZER"));
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = t->release();
    std::vector<std::string> bytes(tokenizer_->vocab_size());
    for (int32_t id = 0; id < tokenizer_->vocab_size(); ++id) {
      bytes[id] = std::string(tokenizer_->TokenBytes(id));
    }
    vocabulary_ = new std::shared_ptr<const VocabularyTrie>(
        std::make_shared<const VocabularyTrie>(bytes, tokenizer_->eot_id()));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete vocabulary_;
  }

  // Decodes with `logits_of` (the next token's logits given the ids so far), greedy when
  // `rng` is null, constrained by `masks` when set; stops at end of text or `limit` tokens.
  template <typename LogitsOf>
  std::vector<int32_t> Decode(LogitsOf logits_of, std::shared_ptr<SchemaMasks> masks,
                              std::mt19937* rng, int limit = 400) {
    std::unique_ptr<SchemaConstraint> constraint;
    if (masks) constraint = std::make_unique<SchemaConstraint>(masks);
    std::vector<int32_t> ids;
    const int64_t vocab = tokenizer_->vocab_size();
    for (int step = 0; step < limit; ++step) {
      std::vector<float> logits = logits_of(ids);
      if (constraint) {
        EXPECT_TRUE(constraint->Process(logits.data(), vocab).ok());
      }
      int32_t pick = 0;
      if (rng == nullptr) {
        pick =
            static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      } else {  // Gumbel-max
        std::uniform_real_distribution<double> u(1e-12, 1.0);
        double best = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < vocab; ++i) {
          if (std::isinf(logits[i])) continue;
          const double g = logits[i] - std::log(-std::log(u(*rng)));
          if (g > best) best = g, pick = static_cast<int32_t>(i);
        }
      }
      if (constraint) {
        EXPECT_TRUE(constraint->Accept(pick).ok());
      }
      if (pick == tokenizer_->eot_id()) break;
      ids.push_back(pick);
    }
    return ids;
  }

  std::string Text(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += tokenizer_->TokenBytes(id);
    return s;
  }

  static Tokenizer* tokenizer_;
  static std::shared_ptr<const VocabularyTrie>* vocabulary_;
};
Tokenizer* TokenMasks::tokenizer_ = nullptr;
std::shared_ptr<const VocabularyTrie>* TokenMasks::vocabulary_ = nullptr;

// The masks (a table for plain tokens inside strings, trie walks elsewhere) equal feeding every
// token's bytes to the automaton, at every byte of documents that reach the strings' limits.
TEST_F(TokenMasks, MasksEqualFeedingEveryTokenToTheAutomaton) {
  auto schema = MustCompile(R"({"type":"object","properties":{
    "t":{"type":"string","minLength":2,"maxLength":5},
    "b":{"type":"array","items":{"type":"string","maxLength":3},"maxItems":2},
    "n":{"type":"number","minimum":-2,"maximum":30.5}},"required":["t","n"]})");
  SchemaMasks masks(schema, *vocabulary_);
  const VocabularyTrie& v = **vocabulary_;
  const std::vector<std::string> docs = {
      R"({"t":"ab\u00e9d\u0041","b":["x\"y","\u00e9\u00e9"],"n":-1.25})",
      "{\"t\": \"\xC3\xA9t\xC3\xA9s\", \"n\": 30.5}"};
  for (const std::string& doc : docs) {
    SchemaState state = schema->Start();
    for (size_t at = 0; at <= doc.size(); ++at) {
      const auto mask = masks.Allowed(state);
      for (int32_t id = 0; id < v.vocab(); ++id) {
        bool fits;
        if (id == v.eos()) {
          fits = schema->Complete(state);
        } else {
          SchemaState t = state;
          fits = schema->Feed(t, v.TokenBytes(id));
        }
        ASSERT_EQ(((*mask)[id / 64] >> (id % 64) & 1) != 0, fits)
            << "token " << id << " '" << v.TokenBytes(id) << "' after " << doc.substr(0, at);
      }
      if (at < doc.size()) {
        ASSERT_TRUE(schema->Feed(state, static_cast<uint8_t>(doc[at]))) << doc.substr(0, at + 1);
      }
    }
  }
}

TEST_F(TokenMasks, EverySampledDocumentOfManySeedsValidates) {
  const char* small = R"({"type":"object","properties":{
    "title":{"type":"string","minLength":1,"maxLength":24},
    "bullets":{"type":"array","items":{"type":"string","minLength":1,"maxLength":16},
               "minItems":1,"maxItems":3},
    "rating":{"type":"integer","minimum":1,"maximum":5},
    "price":{"type":"number","minimum":0,"maximum":99.5},
    "gift":{"type":"boolean"}},
    "required":["title","bullets","rating"]})";
  auto masks = std::make_shared<SchemaMasks>(MustCompile(small), *vocabulary_);
  const Json schema = Json::parse(small);
  const int64_t vocab = tokenizer_->vocab_size();
  for (int seed = 0; seed < 40; ++seed) {
    std::mt19937 rng(seed);
    // A "model" with random logits that slightly favour closing quotes and brackets.
    std::normal_distribution<float> noise(0, 2);
    auto logits_of = [&](const std::vector<int32_t>&) {
      std::vector<float> l(vocab);
      for (auto& x : l) x = noise(rng);
      for (const char* t : {"\"", "\",", "\"]", "]", "}", "\"}"}) {
        auto ids = tokenizer_->Encode(t);
        if (ids.size() == 1) l[ids[0]] += 4;
      }
      l[tokenizer_->eot_id()] += 4;
      return l;
    };
    const std::vector<int32_t> ids = Decode(logits_of, masks, &rng, 600);
    const std::string text = Text(ids);
    const Json parsed = Json::parse(text, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << "seed " << seed << ": " << text;
    EXPECT_TRUE(Validates(parsed, schema)) << "seed " << seed << ": " << text;
  }
  EXPECT_GT(masks->stats().hits, masks->stats().misses);  // string states come from the cache
}

TEST_F(TokenMasks, GreedyConstrainedEqualsGreedyWhenTheModelFollowsTheSchema) {
  auto masks =
      std::make_shared<SchemaMasks>(MustCompile(JsonSchema::ProductListing()), *vocabulary_);
  const int64_t vocab = tokenizer_->vocab_size();
  for (const char* doc : {
           R"({"title": "Oak desk lamp", "bullets": ["Warm light", "Solid oak base"], )"
           R"("description": "A lamp for long evenings of reading."})",
           "{\n  \"title\": \"Trail shoe \\\"Grip\\\"\",\n  \"bullets\": [\"Light\"],\n"
           "  \"description\": \"Caf\xC3\xA9-ready, 4.5 stars.\"\n}",
       }) {
    // A model that puts the document's next token first, everything else well below it.
    const std::vector<int32_t> target = tokenizer_->Encode(doc);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> low(-4, 4);
    auto logits_of = [&](const std::vector<int32_t>& ids) {
      std::vector<float> l(vocab);
      for (auto& x : l) x = low(rng);
      l[ids.size() < target.size() ? target[ids.size()] : tokenizer_->eot_id()] = 10;
      return l;
    };
    const std::vector<int32_t> free_run = Decode(logits_of, nullptr, nullptr, 200);
    const std::vector<int32_t> constrained = Decode(logits_of, masks, nullptr, 200);
    EXPECT_EQ(free_run, target);
    EXPECT_EQ(constrained, free_run) << Text(constrained);
  }
  // A model that strays (an extra property) is steered back to a valid document.
  const std::vector<int32_t> stray =
      tokenizer_->Encode(R"({"title": "Lamp", "colour": "red", "bullets": ["a"]})");
  auto stray_logits = [&](const std::vector<int32_t>& ids) {
    std::vector<float> l(vocab, 0);
    for (const char* t : {"\"", ",", "]", "}"}) l[tokenizer_->Encode(t)[0]] = 1;
    l[ids.size() < stray.size() ? stray[ids.size()] : tokenizer_->eot_id()] = 10;
    return l;
  };
  const std::string fixed = Text(Decode(stray_logits, masks, nullptr, 300));
  EXPECT_TRUE(masks->schema().Accepts(fixed)) << fixed;
}

}  // namespace
}  // namespace copyforge
