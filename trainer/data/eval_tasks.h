// Held-out task inputs: `prepare` writes one line per validation-split record that has a
// fine-tuning pair (eval/tasks.jsonl): the structured input a serving request would carry and the
// human text the record holds. `eval-tasks` generates from these inputs and scores the outputs.
#ifndef COPYFORGE_TRAINER_DATA_EVAL_TASKS_H_
#define COPYFORGE_TRAINER_DATA_EVAL_TASKS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace copyforge {

struct EvalTask {
  std::string kind;  // "product_description" or "review"
  // Product (descriptions and product reviews).
  std::string title, brand, category, price;
  std::vector<std::string> features;
  // Business (Yelp reviews).
  std::string business_name, business_categories, city, state;
  double rating = 0;      // reviews: the stars asked for (the human review's own)
  std::string reference;  // the held-out human text

  std::string ToJsonLine() const;  // one line, no newline
};

// Reads eval/tasks.jsonl; a bad line is an error naming the file and line.
absl::StatusOr<std::vector<EvalTask>> LoadEvalTasks(const std::string& path);

// Where a prepared dataset keeps them, relative to its directory.
inline constexpr char kEvalTasksFile[] = "eval/tasks.jsonl";
inline constexpr char kCopyIndexFile[] = "ngrams.bin";

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DATA_EVAL_TASKS_H_
