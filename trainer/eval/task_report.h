// Scores a system's outputs for the held-out tasks (`copyforge eval-tasks`): per content kind,
// the measures of trainer/eval/task_metrics.h aggregated, as JSON and as a printed table with one
// column per system (the model, the human texts, a freshly initialised model).
#ifndef COPYFORGE_TRAINER_EVAL_TASK_REPORT_H_
#define COPYFORGE_TRAINER_EVAL_TASK_REPORT_H_

#include <set>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "trainer/data/eval_tasks.h"
#include "trainer/data/ngram_index.h"
#include "trainer/data/pii.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {

// One generation of the evaluation: its kind ("product_description", "review", "blog_post"),
// the task input (for blog posts: the first product it names), the rendered prompt.
struct EvalSample {
  std::string kind;
  EvalTask task;
  std::string prompt;
  std::vector<std::string> blog_products;  // blog posts: the products the post is about
  std::string blog_topic;
};

// What the scorer reads besides the outputs; all must outlive it.
struct ScoringContext {
  const Tokenizer* tokenizer = nullptr;  // the dataset's (the copy index holds its token ids)
  const NgramIndex* copy_index = nullptr;
  const PiiScrubber* pii = nullptr;
  std::set<std::string> brands;  // every brand of the held-out products
};

// Scores `outputs[i]` (the text generated for samples[i]; empty strings count as outputs) and
// returns {kind: {measure: value}} for every kind present.
nlohmann::ordered_json ScoreOutputs(const std::vector<EvalSample>& samples,
                                    const std::vector<std::string>& outputs,
                                    const ScoringContext& context);

// The table: for each kind, one row per measure and one column per system (`systems` is
// {name: ScoreOutputs result}, in column order).
std::string FormatTaskTable(const nlohmann::ordered_json& systems);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_EVAL_TASK_REPORT_H_
