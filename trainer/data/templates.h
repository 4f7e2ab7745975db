// Named text templates (configs/templates/*.yaml) shared by data preparation and serving.
#ifndef COPYFORGE_TRAINER_DATA_TEMPLATES_H_
#define COPYFORGE_TRAINER_DATA_TEMPLATES_H_

#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace copyforge {

using TemplateFields = absl::flat_hash_map<std::string, std::string>;

// One piece of template text: literal lines with {field} placeholders.
class TextTemplate {
 public:
  // Errors name `where` (file and template) and the unknown field.
  static absl::StatusOr<TextTemplate> Parse(const std::string& text, const std::string& where);
  // Renders with `fields`; a line whose placeholders are all empty (or missing) is dropped.
  std::string Render(const TemplateFields& fields) const;
  const std::string& source() const { return source_; }

 private:
  struct Part {
    bool field;
    std::string value;  // literal text or field name
  };
  std::string source_;
  std::vector<std::vector<Part>> lines_;
};

struct NamedTemplate {
  enum class Kind { kDocument, kPair } kind = Kind::kDocument;
  TextTemplate text;    // kDocument
  TextTemplate prompt;  // kPair
  TextTemplate target;  // kPair
};

class TemplateSet {
 public:
  // The names `prepare` needs; a file must define all of them with the right kind.
  static const std::vector<std::pair<std::string, NamedTemplate::Kind>>& Required();
  static absl::StatusOr<TemplateSet> LoadFile(const std::string& path);
  // Parses YAML text; `source` names it in errors.
  static absl::StatusOr<TemplateSet> Parse(const std::string& yaml, const std::string& source);
  // The built-in copy of configs/templates/ecommerce.yaml.
  static absl::StatusOr<TemplateSet> Default();
  const std::string& yaml() const { return yaml_; }
  const NamedTemplate& Get(const std::string& name) const { return templates_.at(name); }
  std::vector<std::string> Names() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string yaml_;
  std::map<std::string, NamedTemplate> templates_;
};

// The text of configs/templates/ecommerce.yaml as built into the binary.
const char* DefaultTemplatesYaml();

// The fields every template may use.
const std::vector<std::string>& KnownTemplateFields();

// How field values are spelled in templates, the same in data preparation and serving:
// a rating as "4" or "4.5" ("" when unknown), a list as "- a\n- b".
std::string FormatRating(double rating);
std::string FormatList(const std::vector<std::string>& items);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_TEMPLATES_H_
