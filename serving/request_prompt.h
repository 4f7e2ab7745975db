// The prompt a GenerateRequest asks for: its raw `prompt`, or a task input (product
// description, review, blog post) rendered with the fine-tuning templates, so that serving
// prompts are the ones the model was trained on. Torch-free (the fuzz target links it).
#ifndef COPYFORGE_SERVING_REQUEST_PROMPT_H_
#define COPYFORGE_SERVING_REQUEST_PROMPT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "serving.pb.h"
#include "trainer/data/eval_tasks.h"
#include "trainer/data/templates.h"

namespace copyforge {

// INVALID_ARGUMENT naming the field for a task input that cannot be rendered; FAILED_PRECONDITION
// when `templates` lack the task's template.
absl::StatusOr<std::string> RenderRequestPrompt(const v1::GenerateRequest& req,
                                                const TemplateSet& templates);

// What a request asks for: one of kTaskNames (a raw prompt is "prompt").
inline constexpr const char* kTaskNames[] = {"product_description", "review", "blog_post",
                                             "prompt"};
const char* TaskOf(const v1::GenerateRequest& req);

// A task input's fields, flat, as command-line flags and held-out tasks carry them.
struct TaskInputFields {
  std::string title, brand, category, price;  // the product (a review's product_title)
  std::vector<std::string> features;
  std::string business_name, business_categories, city, state;  // a business review
  double rating = 0;                                            // a review's stars
  std::string topic;                                            // a blog post
  std::vector<std::string> products;
};

// The fields of a held-out task (prepare's eval/tasks.jsonl); blog posts carry none there.
TaskInputFields TaskFieldsOf(const EvalTask& task);

// Sets `req`'s task input for `task` (product_description, review or blog_post) from `fields`;
// INVALID_ARGUMENT naming the task when it is none of them.
absl::Status SetTaskInput(const std::string& task, const TaskInputFields& fields,
                          v1::GenerateRequest* req);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_REQUEST_PROMPT_H_
