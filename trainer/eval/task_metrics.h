// Content-quality measures of generated e-commerce text (`copyforge eval-tasks`), torch-free:
// each works on one output (and its task input) or on a set of outputs of one kind.
#ifndef COPYFORGE_TRAINER_EVAL_TASK_METRICS_H_
#define COPYFORGE_TRAINER_EVAL_TASK_METRICS_H_

#include <set>
#include <string>
#include <vector>

#include "trainer/data/eval_tasks.h"

namespace copyforge {

// Lower-cased words (letters, digits, apostrophes and the '.' inside a number).
std::vector<std::string> Words(const std::string& text);

// The attributes a product description should mention: the brand, the price, every feature
// (as a phrase) and every content word of the title (which carries model, type and colour).
std::vector<std::string> ProductAttributes(const EvalTask& task);
// The share of ProductAttributes found in `text` (case-insensitive; a price matches by its
// number); 0 when the task has none.
double AttributeCoverage(const EvalTask& task, const std::string& text);
// Attributes `text` states that its input does not hold: numbers (prices, sizes, model numbers)
// absent from every input field, and brands of other products (`known_brands`) that are not the
// task's brand.
int HallucinatedAttributes(const EvalTask& task, const std::string& text,
                           const std::set<std::string>& known_brands);

// Lexicon polarity of a review in [-1, 1]: (positive - negative) / (positive + negative) over
// opinion words, a word after a negator ("not", "never", "n't", "no") counting for the other
// side; 0 with no opinion word.
double Polarity(const std::string& text);
// Whether a review's polarity agrees with the stars asked for: 1 when 1-2 stars read negative or
// 4-5 stars positive, 0 when not, -1 for 3 stars (not scored).
int SentimentAgrees(double rating, const std::string& text);

// distinct-n over a set of texts: distinct word n-grams / all word n-grams (0 when none).
double DistinctN(const std::vector<std::string>& texts, int n);
// The share of a text's word n-grams that repeat an earlier n-gram of the same text.
double RepeatedNgramRate(const std::string& text, int n = 4);
// Whether the output echoes its prompt: a prompt line of 8 or more characters, or a template
// field label ("Product:", "Rating:", "Features:", ...) starting a line.
bool TemplateLeak(const std::string& prompt, const std::string& text);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_EVAL_TASK_METRICS_H_
