#include "trainer/data/prepare_options.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "trainer/common/yaml_util.h"

namespace copyforge {
namespace {

// Expands ${VAR} from the environment, so configs can point into the set-up cache.
std::string ExpandEnv(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      const size_t close = s.find('}', i);
      if (close != std::string::npos) {
        const char* v = std::getenv(s.substr(i + 2, close - i - 2).c_str());
        out += v ? v : "";
        i = close;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

absl::StatusOr<PrepareOptions> PrepareOptions::FromYamlFile(const std::string& path) {
  auto loaded = LoadYamlFile(path, "data config");
  if (!loaded.ok()) return loaded.status();
  YAML::Node root = *loaded;
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a mapping"));
  PrepareOptions o;
  std::string key;
  YAML::Node node;
  auto where = [&](const YAML::Node& n, const std::string& k) {
    return absl::StrCat(path, ":", n.Mark().line + 1, ": ", k);
  };
  try {
    for (const auto& kv : root) {
      key = kv.first.as<std::string>();
      node = kv.second;
      if (key == "inputs") {
        for (const auto& item : node) {
          PrepareInput in;
          if (item.IsScalar()) {
            in.path = ExpandEnv(item.as<std::string>());
          } else {
            for (const auto& f : item) {
              const std::string k = f.first.as<std::string>();
              if (k == "path") {
                in.path = ExpandEnv(f.second.as<std::string>());
              } else if (k == "format") {
                auto fmt = ParseFormat(f.second.as<std::string>());
                if (!fmt.ok())
                  return absl::InvalidArgumentError(
                      absl::StrCat(where(f.second, "inputs.format"), ": ", fmt.status().message()));
                in.format = *fmt;
              } else {
                return absl::InvalidArgumentError(
                    absl::StrCat(where(f.first, "inputs"), ": unknown key \"", k, "\""));
              }
            }
          }
          o.inputs.push_back(in);
        }
      } else if (key == "tokenizer") {
        o.tokenizer = ExpandEnv(node.as<std::string>());
      } else if (key == "templates") {
        o.templates = ExpandEnv(node.as<std::string>());
      } else if (key == "out") {
        o.out = ExpandEnv(node.as<std::string>());
      } else if (key == "objectives") {
        o.pretrain = o.finetune = false;
        for (const auto& v : node) {
          const std::string obj = v.as<std::string>();
          if (obj == "pretrain") {
            o.pretrain = true;
          } else if (obj == "finetune") {
            o.finetune = true;
          } else {
            return absl::InvalidArgumentError(absl::StrCat(where(v, "objectives"), ": \"", obj,
                                                           "\" is not pretrain or finetune"));
          }
        }
      } else if (key == "split") {
        for (const auto& f : node) {
          const std::string k = f.first.as<std::string>();
          if (k == "validation_ratio") {
            o.validation_ratio = f.second.as<double>();
          } else if (k == "seed") {
            o.split_seed = f.second.as<uint64_t>();
          } else {
            return absl::InvalidArgumentError(
                absl::StrCat(where(f.first, "split"), ": unknown key \"", k, "\""));
          }
        }
      } else if (key == "shard_tokens") {
        o.shard_tokens = node.as<int64_t>();
      } else if (key == "copy_index_n") {
        o.copy_index_n = node.as<int>();
      } else if (key == "max_line_bytes") {
        o.max_line_bytes = node.as<int64_t>();
      } else if (key == "pii") {
        for (const auto& f : node) {
          const std::string k = f.first.as<std::string>();
          if (k != "match_limit") {
            return absl::InvalidArgumentError(
                absl::StrCat(where(f.first, "pii"), ": unknown key \"", k, "\""));
          }
          o.pii_match_limit = f.second.as<int64_t>();
        }
      } else if (key == "filters") {
        for (const auto& f : node) {
          const std::string k = f.first.as<std::string>();
          if (k == "min_chars")
            o.min_chars = f.second.as<int64_t>();
          else if (k == "max_chars")
            o.max_chars = f.second.as<int64_t>();
          else if (k == "min_words")
            o.min_words = f.second.as<int64_t>();
          else if (k == "language")
            o.language = f.second.as<std::string>();
          else if (k == "min_english_ratio")
            o.min_english_ratio = f.second.as<double>();
          else
            return absl::InvalidArgumentError(
                absl::StrCat(where(f.first, "filters"), ": unknown key \"", k, "\""));
        }
      } else if (key == "dedup") {
        for (const auto& f : node) {
          const std::string k = f.first.as<std::string>();
          if (k == "exact")
            o.exact_dedup = f.second.as<bool>();
          else if (k == "near")
            o.near_dedup = f.second.as<bool>();
          else if (k == "threshold")
            o.minhash.threshold = f.second.as<double>();
          else if (k == "num_perm")
            o.minhash.num_perm = f.second.as<int>();
          else if (k == "bands")
            o.minhash.bands = f.second.as<int>();
          else if (k == "shingle_words")
            o.minhash.shingle_words = f.second.as<int>();
          else
            return absl::InvalidArgumentError(
                absl::StrCat(where(f.first, "dedup"), ": unknown key \"", k, "\""));
        }
      } else if (key == "csv") {
        for (const auto& f : node) {
          const std::string k = f.first.as<std::string>();
          if (k == "text")
            o.csv.text = f.second.as<std::string>();
          else if (k == "title")
            o.csv.title = f.second.as<std::string>();
          else if (k == "id")
            o.csv.id = f.second.as<std::string>();
          else if (k == "rating")
            o.csv.rating = f.second.as<std::string>();
          else
            return absl::InvalidArgumentError(
                absl::StrCat(where(f.first, "csv"), ": unknown key \"", k, "\""));
        }
      } else if (key == "threads") {
        o.threads = node.as<int>();
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where(node, key), ": unknown key \"", key, "\""));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", e.mark.line + 1, ": key \"", key,
                                                   "\" has a value of the wrong type"));
  }
  return o;
}

absl::Status PrepareOptions::Validate() const {
  if (inputs.empty()) return absl::InvalidArgumentError("no inputs (set 'inputs' or pass --input)");
  if (tokenizer.empty())
    return absl::InvalidArgumentError("no tokenizer (set 'tokenizer' or pass --tokenizer)");
  if (out.empty())
    return absl::InvalidArgumentError("no output directory (set 'out' or pass --out)");
  if (!pretrain && !finetune)
    return absl::InvalidArgumentError("objectives: choose pretrain, finetune or both");
  if (!(validation_ratio >= 0 && validation_ratio < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("split.validation_ratio must be in [0, 1), got ", validation_ratio));
  }
  if (shard_tokens < 1024)
    return absl::InvalidArgumentError(
        absl::StrCat("shard_tokens must be >= 1024, got ", shard_tokens));
  if (min_chars < 0 || max_chars < min_chars) {
    return absl::InvalidArgumentError("filters: need 0 <= min_chars <= max_chars");
  }
  if (language != "any" && language != "en") {
    return absl::InvalidArgumentError(
        absl::StrCat("filters.language must be \"any\" or \"en\", got \"", language, "\""));
  }
  if (threads < 0) return absl::InvalidArgumentError("threads must be >= 0");
  if (copy_index_n != 0 && (copy_index_n < 4 || copy_index_n > 64)) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy_index_n must be 0 (off) or in [4, 64], got ", copy_index_n));
  }
  if (max_line_bytes < 1024 || max_line_bytes > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_line_bytes must be in [1024, 1073741824], got ", max_line_bytes));
  }
  if (pii_match_limit < 1 || pii_match_limit > 0xFFFFFFFFLL) {
    return absl::InvalidArgumentError(
        absl::StrCat("pii.match_limit must be in [1, 4294967295], got ", pii_match_limit));
  }
  return minhash.Validate();
}

nlohmann::ordered_json PrepareOptions::ToJson() const {
  nlohmann::ordered_json in = nlohmann::ordered_json::array();
  for (const auto& i : inputs) in.push_back({{"path", i.path}, {"format", FormatName(i.format)}});
  return {{"inputs", in},
          {"validation_ratio", validation_ratio},
          {"split_seed", split_seed},
          {"shard_tokens", shard_tokens},
          {"pii", {{"match_limit", pii_match_limit}}},
          {"max_line_bytes", max_line_bytes},
          {"copy_index_n", copy_index_n},
          {"filters",
           {{"min_chars", min_chars},
            {"max_chars", max_chars},
            {"min_words", min_words},
            {"language", language},
            {"min_english_ratio", min_english_ratio}}},
          {"dedup",
           {{"exact", exact_dedup},
            {"near", near_dedup},
            {"threshold", minhash.threshold},
            {"num_perm", minhash.num_perm},
            {"bands", minhash.bands},
            {"shingle_words", minhash.shingle_words}}}};
}

}  // namespace copyforge
