#include "trainer/data/templates.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "trainer/common/yaml_util.h"

namespace copyforge {

const std::vector<std::string>& KnownTemplateFields() {
  static const std::vector<std::string> f = {"title",       "text",     "rating", "product_title",
                                             "brand",       "category", "price",  "features",
                                             "description", "name",     "city",   "state",
                                             "categories",  "stars",    "topic",  "products"};
  return f;
}

std::string FormatRating(double r) {
  if (r <= 0) return "";
  return r == static_cast<int>(r) ? absl::StrCat(static_cast<int>(r)) : absl::StrFormat("%.1f", r);
}

std::string FormatList(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& x : items) absl::StrAppend(&out, out.empty() ? "" : "\n", "- ", x);
  return out;
}

absl::StatusOr<TextTemplate> TextTemplate::Parse(const std::string& text,
                                                 const std::string& where) {
  TextTemplate t;
  t.source_ = text;
  t.lines_.emplace_back();
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '\n') {
      t.lines_.emplace_back();
      ++i;
      continue;
    }
    if (text[i] == '{') {
      const size_t close = text.find('}', i);
      if (close == std::string::npos)
        return absl::InvalidArgumentError(absl::StrCat(where, ": unclosed {"));
      std::string name = text.substr(i + 1, close - i - 1);
      const auto& known = KnownTemplateFields();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": unknown field {", name, "} (known: ", absl::StrJoin(known, ", "), ")"));
      }
      t.lines_.back().push_back({true, name});
      i = close + 1;
      continue;
    }
    const size_t next = text.find_first_of("{\n", i);
    const size_t end = next == std::string::npos ? text.size() : next;
    t.lines_.back().push_back({false, text.substr(i, end - i)});
    i = end;
  }
  return t;
}

std::string TextTemplate::Render(const TemplateFields& fields) const {
  std::string out;
  bool first = true;
  for (const auto& line : lines_) {
    bool has_field = false, any_value = false;
    std::string rendered;
    for (const Part& p : line) {
      if (!p.field) {
        rendered += p.value;
        continue;
      }
      has_field = true;
      auto it = fields.find(p.value);
      if (it != fields.end() && !it->second.empty()) {
        any_value = true;
        rendered += it->second;
      }
    }
    if (has_field && !any_value) continue;
    if (!first) out.push_back('\n');
    out += rendered;
    first = false;
  }
  return out;
}

const std::vector<std::pair<std::string, NamedTemplate::Kind>>& TemplateSet::Required() {
  static const std::vector<std::pair<std::string, NamedTemplate::Kind>> r = {
      {"review_document", NamedTemplate::Kind::kDocument},
      {"product_document", NamedTemplate::Kind::kDocument},
      {"product_description", NamedTemplate::Kind::kPair},
      {"product_review", NamedTemplate::Kind::kPair},
      {"business_review", NamedTemplate::Kind::kPair}};
  return r;
}

absl::StatusOr<TemplateSet> TemplateSet::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open templates file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<TemplateSet> TemplateSet::Default() {
  return Parse(DefaultTemplatesYaml(), "built-in configs/templates/ecommerce.yaml");
}

absl::StatusOr<TemplateSet> TemplateSet::Parse(const std::string& yaml, const std::string& path) {
  auto parsed = ParseYaml(yaml, path);
  if (!parsed.ok()) return parsed.status();
  YAML::Node root = *parsed;
  TemplateSet set;
  set.path_ = path;
  set.yaml_ = yaml;
  YAML::Node list = root["templates"];
  if (!list || !list.IsMap())
    return absl::InvalidArgumentError(absl::StrCat(path, ": needs a 'templates' mapping"));
  try {
    for (const auto& kv : list) {
      const std::string name = kv.first.as<std::string>();
      const YAML::Node& node = kv.second;
      const std::string where = absl::StrCat(path, ":", node.Mark().line + 1, ": template ", name);
      NamedTemplate t;
      const std::string kind = node["kind"] ? node["kind"].as<std::string>() : "";
      auto field = [&](const char* key) -> absl::StatusOr<TextTemplate> {
        if (!node[key])
          return absl::InvalidArgumentError(absl::StrCat(where, ": missing '", key, "'"));
        return TextTemplate::Parse(node[key].as<std::string>(), absl::StrCat(where, ".", key));
      };
      if (kind == "document") {
        t.kind = NamedTemplate::Kind::kDocument;
        auto text = field("text");
        if (!text.ok()) return text.status();
        t.text = *text;
      } else if (kind == "pair") {
        t.kind = NamedTemplate::Kind::kPair;
        auto prompt = field("prompt");
        if (!prompt.ok()) return prompt.status();
        auto target = field("target");
        if (!target.ok()) return target.status();
        t.prompt = *prompt;
        t.target = *target;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": kind must be 'document' or 'pair'"));
      }
      set.templates_[name] = std::move(t);
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", e.mark.line + 1, ": ", e.msg));
  }
  for (const auto& [name, kind] : Required()) {
    auto it = set.templates_.find(name);
    if (it == set.templates_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": template '", name, "' is missing"));
    }
    if (it->second.kind != kind) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": template '", name, "' must be of kind ",
                       kind == NamedTemplate::Kind::kPair ? "pair" : "document"));
    }
  }
  return set;
}

std::vector<std::string> TemplateSet::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, t] : templates_) names.push_back(name);
  return names;
}

}  // namespace copyforge
