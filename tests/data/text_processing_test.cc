// Cleaning, PII scrubbing, deduplication and templates.
#include <gtest/gtest.h>

#include "trainer/data/dedup.h"
#include "trainer/data/pii.h"
#include "trainer/data/templates.h"
#include "trainer/data/text_clean.h"

namespace copyforge {
namespace {

TEST(CleanText, HtmlEntitiesControlsAndWhitespace) {
  EXPECT_EQ(CleanText("Great&nbsp;value &amp; fast.<br /><br />Would buy&#33; &#x263A;"),
            "Great value & fast.\n\nWould buy! \u263A");
  EXPECT_EQ(CleanText("  a\t\tb \x01 c\r\n\n\n\nd  "), "a b c\n\nd");
  EXPECT_EQ(CleanText("<p>One</p><p>Two</p>"), "One\n\nTwo");  // paragraphs stay paragraphs
  EXPECT_EQ(CleanText("<b>bold</b> and a < b"), "bold and a < b");
  EXPECT_EQ(CleanText("bad \xFF byte"), "bad byte");
  EXPECT_EQ(CleanText("&bogus; stays"), "&bogus; stays");
}

TEST(CleanText, NormalizationAndCounts) {
  EXPECT_EQ(NormalizeForDedup("Great, GREAT product!!  Café."), "great great product café");
  EXPECT_EQ(CountWords("It's a 5-star product"), 5);
  EXPECT_GT(EnglishStopwordRatio("This is the best blender and it is quiet"), 0.3);
  EXPECT_EQ(EnglishStopwordRatio("Dieses Produkt ist sehr gut"), 0.0);
}

TEST(Pii, PlantedExamplesAreScrubbed) {
  PiiScrubber s;
  std::string t =
      "Mail jane.doe+shop@mail.example.co.uk or call (555) 014-2368 / +44 20 7946 0958 / "
      "555.867.5309. "
      "Photos at https://blog.example.net/r/42?x=1, or www.shop.example.com. Thanks, Maria G. "
      "(Maria)";
  int n = *s.Scrub(&t, {"Maria G.", "A2SUAM1J3GNN3B"});
  EXPECT_EQ(t,
            "Mail [email] or call [phone] / [phone] / [phone]. Photos at [url], or [url]. Thanks, "
            "[name] ([name])");
  EXPECT_EQ(n, 8);
  std::string id = "Reviewer A2SUAM1J3GNN3B says hi";
  ASSERT_TRUE(s.Scrub(&id, {"A2SUAM1J3GNN3B"}).ok());
  EXPECT_EQ(id, "Reviewer [name] says hi");
}

TEST(Pii, LeavesOrdinaryNumbersAndWordsAlone) {
  PiiScrubber s;
  std::string t = "Model 2000, 1200 watts, $129.99, 3.5mm jack, 10/10. Tomato sauce.";
  const std::string before = t;
  EXPECT_EQ(*s.Scrub(&t, {"Tom B."}), 0);
  EXPECT_EQ(t, before);
}

// A match that runs out of its budget is an error, never a text passed through as scrubbed.
TEST(Pii, AMatchOverItsLimitIsAnErrorNotAPass) {
  PiiScrubber tight(1);
  std::string t = "Call (555) 014-2368 or mail jane@example.com about the blender.";
  const absl::StatusOr<int> n = tight.Scrub(&t, {});
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("PII scrubbing failed"), std::string::npos) << n.status();
}

TEST(Dedup, ExactAndNearDuplicates) {
  MinHashOptions o;
  ASSERT_TRUE(o.Validate().ok());
  MinHasher h(o);
  DedupIndex index(o);
  auto check = [&](const std::string& text) {
    const std::string n = NormalizeForDedup(text);
    return index.Check(StableHash(n), h.Signature(n), true);
  };
  const std::string base =
      "I bought this blender for my mother last spring and it still crushes ice every morning "
      "without any "
      "trouble at all. The jar is easy to clean and the motor is quiet. Five stars from me.";
  EXPECT_EQ(check(base), DedupIndex::Verdict::kUnique);
  EXPECT_EQ(check("  " + base + "!!"),
            DedupIndex::Verdict::kExactDuplicate);  // same normalised text
  EXPECT_EQ(check(base + " Thanks!"), DedupIndex::Verdict::kNearDuplicate);
  EXPECT_EQ(check("The tent leaked on the first night of our camping trip and the poles bent in "
                  "light wind."),
            DedupIndex::Verdict::kUnique);
  // Signatures are stable: the same text always hashes the same.
  EXPECT_EQ(h.Signature("a b c d"), h.Signature("a b c d"));
  EXPECT_EQ(StableHash("abc"), StableHash("abc"));
  MinHashOptions bad;
  bad.bands = 7;
  EXPECT_NE(bad.Validate().message().find("bands"), std::string_view::npos);
}

TEST(Templates, RenderDropsLinesWhoseFieldsAreEmpty) {
  auto t = TextTemplate::Parse("Product: {product_title}\nBrand: {brand}\nReview:", "test");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->Render({{"product_title", "Mixer"}}), "Product: Mixer\nReview:");
  EXPECT_EQ(t->Render({{"product_title", "Mixer"}, {"brand", "Acme"}}),
            "Product: Mixer\nBrand: Acme\nReview:");
  auto bad = TextTemplate::Parse("Hello {nmae}", "file.yaml: template x");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("{nmae}"), std::string_view::npos);
  EXPECT_NE(bad.status().message().find("file.yaml"), std::string_view::npos);
}

}  // namespace
}  // namespace copyforge
