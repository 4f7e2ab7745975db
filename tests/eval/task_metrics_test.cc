// The content-quality measures of eval-tasks on hand-written texts.
#include "trainer/eval/task_metrics.h"

#include <gtest/gtest.h>

#include "trainer/data/pii.h"
#include "trainer/eval/task_report.h"

namespace copyforge {
namespace {

EvalTask Lamp() {
  EvalTask t;
  t.kind = "product_description";
  t.title = "Lumina X200 desk lamp, black";
  t.brand = "Lumina";
  t.category = "Home > Lighting";
  t.price = "$39.99";
  t.features = {"three brightness levels", "a USB port"};
  return t;
}

TEST(TaskMetrics, AttributeCoverageCountsBrandPriceFeaturesAndTitleWords) {
  const EvalTask t = Lamp();
  // brand, price, 2 features, title words x200 desk lamp black.
  EXPECT_EQ(ProductAttributes(t).size(), 8u);
  EXPECT_DOUBLE_EQ(AttributeCoverage(t, "Nothing relevant here."), 0.0);
  EXPECT_DOUBLE_EQ(AttributeCoverage(t,
                                     "The Lumina X200 desk lamp in black has three brightness "
                                     "levels and a USB port, for 39.99."),
                   1.0);
  EXPECT_DOUBLE_EQ(AttributeCoverage(t, "A black lamp by lumina."), 3.0 / 8.0);
}

TEST(TaskMetrics, HallucinationsAreNumbersAndBrandsNotInTheInput) {
  const EvalTask t = Lamp();
  const std::set<std::string> brands = {"Lumina", "Brightco"};
  EXPECT_EQ(HallucinatedAttributes(t, "The X200 costs $39.99.", brands), 0);
  EXPECT_EQ(HallucinatedAttributes(t, "Only $19.99 with 5 bulbs, like Brightco.", brands), 3);
}

TEST(TaskMetrics, PolarityAndRatingAgreement) {
  EXPECT_GT(Polarity("Great lamp, I love it. Highly recommend."), 0);
  EXPECT_LT(Polarity("Terrible. It broke after a week and I returned it."), 0);
  EXPECT_LT(Polarity("Not good at all, not worth it."), 0);  // negation flips
  EXPECT_EQ(Polarity("It is a lamp."), 0);
  EXPECT_EQ(SentimentAgrees(1, "Awful, broken on arrival."), 1);
  EXPECT_EQ(SentimentAgrees(1, "Love it!"), 0);
  EXPECT_EQ(SentimentAgrees(5, "Love it!"), 1);
  EXPECT_EQ(SentimentAgrees(5, "It is a lamp."), 0);  // neutral is not positive
  EXPECT_EQ(SentimentAgrees(3, "Love it!"), -1);      // 3 stars are not scored
}

TEST(TaskMetrics, DiversityRepetitionAndLeakage) {
  EXPECT_DOUBLE_EQ(DistinctN({"a b c", "a b d"}, 1), 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(DistinctN({"a b c", "a b d"}, 2), 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(RepeatedNgramRate("one two three four one two three four", 4), 1.0 / 5.0);
  EXPECT_DOUBLE_EQ(RepeatedNgramRate("short text"), 0.0);
  const std::string prompt = "Write a customer review.\nProduct: Lumina lamp\nRating: 5 out of 5";
  EXPECT_FALSE(TemplateLeak(prompt, "Bright and sturdy."));
  EXPECT_TRUE(TemplateLeak(prompt, "Bright. Write a customer review."));
  EXPECT_TRUE(TemplateLeak(prompt, "Bright.\nRating: 2"));
}

TEST(TaskMetrics, ScoreOutputsAggregatesPerKind) {
  PiiScrubber pii;
  ScoringContext context;
  context.pii = &pii;
  EvalSample description{"product_description", Lamp(), "Write a product description.", {}, ""};
  EvalTask review_task;
  review_task.kind = "review";
  review_task.rating = 1;
  EvalSample review{"review", review_task, "Write a customer review.", {}, ""};
  auto j = ScoreOutputs(
      {description, review, review},
      {"The Lumina X200 desk lamp.", "Broken and useless, mail me at a@b.com", "I love it"},
      context);
  EXPECT_EQ(j["review"]["outputs"], 2);
  EXPECT_DOUBLE_EQ(j["review"]["sentiment_agreement"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["review"]["pii_outputs"].get<double>(), 0.5);
  EXPECT_GT(j["product_description"]["attribute_coverage"].get<double>(), 0.4);
  const std::string table = FormatTaskTable({{"model", j}, {"human", j}});
  EXPECT_NE(table.find("sentiment_agreement"), std::string::npos);
  EXPECT_NE(table.find("human"), std::string::npos);
}

}  // namespace
}  // namespace copyforge
