// The prompt a GenerateRequest asks for: its raw `prompt`, or a task input (product
// description, review, blog post) rendered with the fine-tuning templates, so that serving
// prompts are the ones the model was trained on. Torch-free (the fuzz target links it).
#ifndef COPYFORGE_SERVING_REQUEST_PROMPT_H_
#define COPYFORGE_SERVING_REQUEST_PROMPT_H_

#include <string>

#include "absl/status/statusor.h"
#include "serving.pb.h"
#include "trainer/data/templates.h"

namespace copyforge {

// INVALID_ARGUMENT naming the field for a task input that cannot be rendered; FAILED_PRECONDITION
// when `templates` lack the task's template.
absl::StatusOr<std::string> RenderRequestPrompt(const v1::GenerateRequest& req,
                                                const TemplateSet& templates);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_REQUEST_PROMPT_H_
