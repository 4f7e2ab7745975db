#include "trainer/data/records.h"

#include <simdjson.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "trainer/common/absl_compat.h"

namespace copyforge {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

const std::pair<Format, const char*> kNames[] = {
    {Format::kAuto, "auto"},
    {Format::kAmazon2018Review, "amazon2018_review"},
    {Format::kAmazon2018Meta, "amazon2018_meta"},
    {Format::kAmazon2023Review, "amazon2023_review"},
    {Format::kAmazon2023Meta, "amazon2023_meta"},
    {Format::kYelpReview, "yelp_review"},
    {Format::kYelpBusiness, "yelp_business"},
    {Format::kCsv, "csv"},
};

bool Has(const object& o, std::string_view key) { return !o.at_key(key).error(); }

// A field as text: strings as they are, numbers printed, arrays of strings joined by `sep`,
// missing or null as "".
std::string Text(const object& o, std::string_view key, std::string_view sep = "\n") {
  element e;
  if (o.at_key(key).get(e)) return "";
  switch (e.type()) {
    case element_type::STRING: {
      std::string_view v;
      return e.get_string().get(v) ? std::string() : std::string(v);
    }
    case element_type::INT64: {
      int64_t v = 0;
      if (e.get_int64().get(v)) return "";
      return absl::StrCat(v);
    }
    case element_type::UINT64: {
      uint64_t v = 0;
      if (e.get_uint64().get(v)) return "";
      return absl::StrCat(v);
    }
    case element_type::DOUBLE: {
      double v = 0;
      if (e.get_double().get(v)) return "";
      return absl::StrCat(v);
    }
    case element_type::BOOL: {
      bool v = false;
      if (e.get_bool().get(v)) return "";
      return v ? "true" : "false";
    }
    case element_type::ARRAY: {
      std::vector<std::string> parts;
      simdjson::dom::array array;
      if (e.get_array().get(array)) return "";
      for (element item : array) {
        std::string_view s;
        if (!item.get_string().get(s) && !s.empty()) parts.emplace_back(s);
      }
      return absl::StrJoin(parts, AsAbsl(sep));
    }
    default:
      return "";
  }
}

std::vector<std::string> List(const object& o, std::string_view key) {
  element e;
  std::vector<std::string> out;
  if (o.at_key(key).get(e)) return out;
  if (std::string_view v; !e.get_string().get(v)) {
    out.emplace_back(v);
  } else if (simdjson::dom::array array; !e.get_array().get(array)) {
    for (element item : array) {
      std::string_view s;
      if (!item.get_string().get(s) && !s.empty()) out.emplace_back(s);
    }
  }
  return out;
}

// Numbers, or strings holding one ("4.0", "1,234"); 0 when absent or unparseable.
double Number(const object& o, std::string_view key) {
  element e;
  if (o.at_key(key).get(e)) return 0;
  double d;
  if (!e.get_double().get(d)) return d;
  int64_t i;
  if (!e.get_int64().get(i)) return static_cast<double>(i);
  std::string_view s;
  if (!e.get_string().get(s)) {
    std::string digits;
    for (char c : s) {
      if (c != ',' && c != '$') digits.push_back(c);
    }
    return std::strtod(digits.c_str(), nullptr);
  }
  return 0;
}

void AddPersonal(Review* r, std::string s) {
  if (s.size() >= 3) r->personal.push_back(std::move(s));
}

// Amazon 2018 meta: `category` (a list) in the documented files, `categories` (a list of lists)
// in the 2014 ones; `main_cat` as the fallback.
std::string AmazonCategory(const object& o) {
  std::vector<std::string> cat = List(o, "category");
  if (cat.empty()) {
    simdjson::dom::array outer;
    if (!o.at_key("categories").get(outer)) {
      for (element item : outer) {
        if (simdjson::dom::array inner; !item.get_array().get(inner)) {
          for (element s : inner) {
            std::string_view v;
            if (!s.get_string().get(v)) cat.emplace_back(v);
          }
          break;
        }
        std::string_view v;
        if (!item.get_string().get(v)) cat.emplace_back(v);
      }
    }
  }
  if (cat.empty()) {
    std::string main = Text(o, "main_cat");
    if (main.empty()) main = Text(o, "main_category");
    if (!main.empty()) cat.push_back(main);
  }
  return absl::StrJoin(cat, " > ");
}

}  // namespace

std::string FormatName(Format f) {
  for (const auto& [format, name] : kNames) {
    if (format == f) return name;
  }
  return "unknown";
}

absl::StatusOr<Format> ParseFormat(std::string_view name) {
  std::vector<std::string> names;
  for (const auto& [format, n] : kNames) {
    if (name == n) return format;
    names.push_back(n);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown format \"", AsAbsl(name), "\" (one of ",
                                                 absl::StrJoin(names, ", "), ")"));
}

struct RecordParser::Impl {
  simdjson::dom::parser parser;
};

RecordParser::RecordParser() : impl_(std::make_unique<Impl>()) {}
RecordParser::~RecordParser() = default;

Format RecordParser::Detect(std::string_view line) {
  object o;
  if (impl_->parser.parse(line.data(), line.size()).get(o)) return Format::kAuto;
  if (Has(o, "reviewText") || Has(o, "reviewerID") || (Has(o, "overall") && Has(o, "asin"))) {
    return Format::kAmazon2018Review;
  }
  if (Has(o, "review_id") && Has(o, "business_id")) return Format::kYelpReview;
  if (Has(o, "business_id") && Has(o, "name")) return Format::kYelpBusiness;
  if (Has(o, "rating") && Has(o, "text") && (Has(o, "parent_asin") || Has(o, "user_id"))) {
    return Format::kAmazon2023Review;
  }
  if (Has(o, "parent_asin") && (Has(o, "main_category") || Has(o, "features") || Has(o, "store"))) {
    return Format::kAmazon2023Meta;
  }
  if (Has(o, "asin") && (Has(o, "title") || Has(o, "feature") || Has(o, "description") ||
                         Has(o, "categories") || Has(o, "main_cat"))) {
    return Format::kAmazon2018Meta;
  }
  return Format::kAuto;
}

absl::StatusOr<ParsedRecord> RecordParser::Parse(std::string_view line, Format format,
                                                 const CsvColumns& csv) {
  object o;
  auto error = impl_->parser.parse(line.data(), line.size()).get(o);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed JSON (", simdjson::error_message(error), ")"));
  }
  ParsedRecord out;
  auto require = [&](std::string_view key) -> absl::Status {
    if (Text(o, key).empty())
      return absl::InvalidArgumentError(absl::StrCat("missing field \"", AsAbsl(key), "\""));
    return absl::OkStatus();
  };
  Review& r = out.review;
  switch (format) {
    case Format::kAmazon2018Review:
      if (absl::Status st = require("asin"); !st.ok()) return st;
      r.group_id = Text(o, "asin");
      r.title = Text(o, "summary");
      r.text = Text(o, "reviewText");
      r.rating = Number(o, "overall");
      AddPersonal(&r, Text(o, "reviewerName"));
      AddPersonal(&r, Text(o, "reviewerID"));
      return out;
    case Format::kAmazon2023Review:
      r.group_id = Text(o, "parent_asin");
      if (r.group_id.empty()) r.group_id = Text(o, "asin");
      if (r.group_id.empty()) return absl::InvalidArgumentError("missing field \"parent_asin\"");
      r.title = Text(o, "title");
      r.text = Text(o, "text");
      r.rating = Number(o, "rating");
      AddPersonal(&r, Text(o, "user_id"));
      return out;
    case Format::kYelpReview:
      if (absl::Status st = require("business_id"); !st.ok()) return st;
      r.group_id = Text(o, "business_id");
      r.text = Text(o, "text");
      r.rating = Number(o, "stars");
      AddPersonal(&r, Text(o, "user_id"));
      AddPersonal(&r, Text(o, "review_id"));
      return out;
    case Format::kCsv:
      r.text = Text(o, csv.text);
      if (!csv.title.empty()) r.title = Text(o, csv.title);
      if (!csv.id.empty()) r.group_id = Text(o, csv.id);
      if (!csv.rating.empty()) r.rating = Number(o, csv.rating);
      return out;
    case Format::kAmazon2018Meta:
    case Format::kAmazon2023Meta: {
      out.kind = ParsedRecord::Kind::kProduct;
      Product& p = out.product;
      const bool v2023 = format == Format::kAmazon2023Meta;
      p.id = Text(o, v2023 ? "parent_asin" : "asin");
      if (p.id.empty())
        return absl::InvalidArgumentError(v2023 ? "missing field \"parent_asin\""
                                                : "missing field \"asin\"");
      p.title = Text(o, "title");
      p.brand = Text(o, v2023 ? "store" : "brand");
      p.category = AmazonCategory(o);
      p.features = List(o, v2023 ? "features" : "feature");
      if (p.features.empty()) p.features = List(o, v2023 ? "feature" : "features");
      p.description = Text(o, "description", "\n");
      element price;
      if (!o.at_key("price").get(price) && !price.is_null()) {
        double d;
        std::string_view s;
        if (!price.get_double().get(d)) {
          p.price = absl::StrFormat("$%.2f", d);
        } else if (!price.get_string().get(s)) {
          p.price = std::string(s);
        }
      }
      return out;
    }
    case Format::kYelpBusiness: {
      out.kind = ParsedRecord::Kind::kBusiness;
      Business& b = out.business;
      b.id = Text(o, "business_id");
      if (b.id.empty()) return absl::InvalidArgumentError("missing field \"business_id\"");
      b.name = Text(o, "name");
      b.city = Text(o, "city");
      b.state = Text(o, "state");
      b.categories = Text(o, "categories");
      b.stars = Number(o, "stars");
      return out;
    }
    case Format::kAuto:
      break;
  }
  return absl::InternalError("Parse called without a format");
}

}  // namespace copyforge
