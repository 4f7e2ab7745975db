#include "trainer/eval/task_report.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/eval/task_metrics.h"

namespace copyforge {
namespace {

// Outputs with a verbatim run of at least this many tokens from a training text count as copies.
constexpr int64_t kCopyTokens = 16;

double Mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

struct KindScores {
  std::vector<std::string> texts;
  std::vector<double> words, repeated, leak, pii, copy_run, copied;
  std::vector<double> coverage, hallucinated, hallucinating;  // product descriptions
  std::vector<double> agrees;                                 // reviews (3 stars not scored)
};

}  // namespace

nlohmann::ordered_json ScoreOutputs(const std::vector<EvalSample>& samples,
                                    const std::vector<std::string>& outputs,
                                    const ScoringContext& context) {
  std::map<std::string, KindScores> kinds;
  for (size_t i = 0; i < samples.size() && i < outputs.size(); ++i) {
    const EvalSample& s = samples[i];
    const std::string& text = outputs[i];
    KindScores& k = kinds[s.kind];
    k.texts.push_back(text);
    k.words.push_back(static_cast<double>(Words(text).size()));
    k.repeated.push_back(RepeatedNgramRate(text));
    k.leak.push_back(TemplateLeak(s.prompt, text) ? 1 : 0);
    std::string scrubbed = text;
    // A scrubbing error counts as PII found: the measure must not pass what it cannot check.
    auto replaced = context.pii->Scrub(&scrubbed, {});
    k.pii.push_back(!replaced.ok() || *replaced > 0 ? 1 : 0);
    const int64_t run = context.copy_index == nullptr
                            ? 0
                            : context.copy_index->LongestCopiedRun(context.tokenizer->Encode(text));
    k.copy_run.push_back(static_cast<double>(run));
    k.copied.push_back(run >= kCopyTokens ? 1 : 0);
    if (s.kind == "product_description") {
      k.coverage.push_back(AttributeCoverage(s.task, text));
      const int h = HallucinatedAttributes(s.task, text, context.brands);
      k.hallucinated.push_back(h);
      k.hallucinating.push_back(h > 0 ? 1 : 0);
    } else if (s.kind == "review") {
      const int agrees = SentimentAgrees(s.task.rating, text);
      if (agrees >= 0) k.agrees.push_back(agrees);
    }
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [kind, k] : kinds) {
    nlohmann::ordered_json j = {{"outputs", k.texts.size()}};
    if (kind == "product_description") {
      j["attribute_coverage"] = Mean(k.coverage);
      j["hallucinated_per_output"] = Mean(k.hallucinated);
      j["outputs_hallucinating"] = Mean(k.hallucinating);
    }
    if (kind == "review") {
      j["sentiment_agreement"] = Mean(k.agrees);
      j["sentiment_scored"] = k.agrees.size();
      j["words_p10"] = Quantile(k.words, 0.1);
      j["words_p50"] = Quantile(k.words, 0.5);
      j["words_p90"] = Quantile(k.words, 0.9);
    }
    j["words_mean"] = Mean(k.words);
    j["distinct_1"] = DistinctN(k.texts, 1);
    j["distinct_2"] = DistinctN(k.texts, 2);
    j["repeated_4gram_rate"] = Mean(k.repeated);
    j["template_leakage"] = Mean(k.leak);
    j["pii_outputs"] = Mean(k.pii);
    j["copy_run_mean"] = Mean(k.copy_run);
    j["copy_run_max"] =
        k.copy_run.empty() ? 0 : *std::max_element(k.copy_run.begin(), k.copy_run.end());
    j[absl::StrCat("copied_", kCopyTokens, "plus")] = Mean(k.copied);
    out[kind] = j;
  }
  return out;
}

std::string FormatTaskTable(const nlohmann::ordered_json& systems) {
  std::string out;
  std::vector<std::string> names;
  for (const auto& [name, _] : systems.items()) names.push_back(name);
  std::vector<std::string> kinds;
  for (const auto& [name, scores] : systems.items()) {
    for (const auto& [kind, _] : scores.items()) {
      if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
    }
  }
  for (const std::string& kind : kinds) {
    absl::StrAppendFormat(&out, "\n%-26s", kind);
    for (const std::string& n : names) absl::StrAppendFormat(&out, " %12s", n);
    out += "\n";
    std::vector<std::string> measures;
    for (const auto& [name, scores] : systems.items()) {
      if (!scores.contains(kind)) continue;
      for (const auto& [m, _] : scores[kind].items()) {
        if (std::find(measures.begin(), measures.end(), m) == measures.end()) measures.push_back(m);
      }
    }
    for (const std::string& m : measures) {
      absl::StrAppendFormat(&out, "  %-24s", m);
      for (const std::string& n : names) {
        const auto& s = systems[n];
        if (!s.contains(kind) || !s[kind].contains(m)) {
          absl::StrAppendFormat(&out, " %12s", "-");
        } else if (s[kind][m].is_number_integer() || s[kind][m].is_number_unsigned()) {
          absl::StrAppendFormat(&out, " %12d", s[kind][m].get<int64_t>());
        } else {
          absl::StrAppendFormat(&out, " %12.3f", s[kind][m].get<double>());
        }
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace copyforge
