#include "trainer/data/records.h"

#include <gtest/gtest.h>

namespace copyforge {
namespace {

ParsedRecord MustParse(RecordParser& p, const std::string& line, Format f,
                       const CsvColumns& csv = {}) {
  auto r = p.Parse(line, f, csv);
  EXPECT_TRUE(r.ok()) << r.status() << " for " << line;
  return r.ok() ? *r : ParsedRecord();
}

TEST(Records, Amazon2018Review) {
  RecordParser p;
  const std::string line =
      R"({"overall": 4.0, "vote": "1,024", "verified": true, "reviewTime": "06 17, 2015", "reviewerID": "A2SUAM1J3GNN3B", "asin": "0000013714", "style": {"Format:": " Hardcover"}, "reviewerName": "J. McDonald", "reviewText": "I bought this for my husband.", "summary": "Heavenly Highway Hymns", "unixReviewTime": 1434499200, "image": ["https://x/y.jpg"]})";
  EXPECT_EQ(p.Detect(line), Format::kAmazon2018Review);
  ParsedRecord r = MustParse(p, line, Format::kAmazon2018Review);
  EXPECT_EQ(r.review.group_id, "0000013714");
  EXPECT_EQ(r.review.title, "Heavenly Highway Hymns");
  EXPECT_EQ(r.review.rating, 4.0);
  EXPECT_EQ(r.review.personal, (std::vector<std::string>{"J. McDonald", "A2SUAM1J3GNN3B"}));
  // vote as an int, overall as a string, no text: still parses.
  r = MustParse(p, R"({"overall": "5.0", "vote": 3, "asin": "B1", "reviewerID": "AX"})",
                Format::kAmazon2018Review);
  EXPECT_EQ(r.review.rating, 5.0);
  EXPECT_EQ(r.review.text, "");
}

TEST(Records, Amazon2018MetaBothCategorySpellings) {
  RecordParser p;
  const std::string doc =
      R"({"asin": "B1", "title": "Mixer", "brand": "Acme", "feature": ["a", "b"], "description": ["Line one.", "Line two."], "category": ["Home", "Kitchen"], "price": "$12.99", "main_cat": "Home"})";
  EXPECT_EQ(p.Detect(doc), Format::kAmazon2018Meta);
  ParsedRecord r = MustParse(p, doc, Format::kAmazon2018Meta);
  EXPECT_EQ(r.kind, ParsedRecord::Kind::kProduct);
  EXPECT_EQ(r.product.category, "Home > Kitchen");
  EXPECT_EQ(r.product.description, "Line one.\nLine two.");
  EXPECT_EQ(r.product.price, "$12.99");
  EXPECT_EQ(r.product.features.size(), 2u);
  r = MustParse(
      p,
      R"({"asin": "B2", "title": "T", "categories": [["Toys", "Puzzles"], ["Other"]], "description": "plain string"})",
      Format::kAmazon2018Meta);
  EXPECT_EQ(r.product.category, "Toys > Puzzles");
  EXPECT_EQ(r.product.description, "plain string");
  r = MustParse(p, R"({"asin": "B3", "title": "T", "main_cat": "Beauty", "price": ""})",
                Format::kAmazon2018Meta);
  EXPECT_EQ(r.product.category, "Beauty");
}

TEST(Records, Amazon2023ReviewAndMeta) {
  RecordParser p;
  const std::string review =
      R"({"rating": 5.0, "title": "Great", "text": "Works.<br />Really.", "images": [], "asin": "B01", "parent_asin": "B00P", "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ", "timestamp": 1588687728923, "helpful_vote": 0, "verified_purchase": true})";
  EXPECT_EQ(p.Detect(review), Format::kAmazon2023Review);
  ParsedRecord r = MustParse(p, review, Format::kAmazon2023Review);
  EXPECT_EQ(r.review.group_id, "B00P");
  EXPECT_EQ(r.review.personal, (std::vector<std::string>{"AGKHLEW2SOWHNMFQIJGBECAF7INQ"}));
  const std::string meta =
      R"({"main_category": "All Beauty", "title": "Serum", "features": [], "description": [], "price": null, "store": "Lumen", "categories": [], "details": {"Size": "1 oz"}, "parent_asin": "B00P"})";
  EXPECT_EQ(p.Detect(meta), Format::kAmazon2023Meta);
  r = MustParse(p, meta, Format::kAmazon2023Meta);
  EXPECT_EQ(r.product.id, "B00P");
  EXPECT_EQ(r.product.brand, "Lumen");
  EXPECT_EQ(r.product.price, "");
  EXPECT_EQ(r.product.category, "All Beauty");
  r = MustParse(p, R"({"parent_asin": "X", "title": "T", "price": 19.5, "features": ["f"]})",
                Format::kAmazon2023Meta);
  EXPECT_EQ(r.product.price, "$19.50");
}

TEST(Records, Yelp) {
  RecordParser p;
  const std::string review =
      R"({"review_id": "KU_O5udG6zpxOg-VcAEodg", "user_id": "mh_-eMZ6K5RLWhZyISBhwA", "business_id": "XQfwVwDr-v0ZS3_CbbE5Xw", "stars": 3.0, "useful": 0, "funny": 0, "cool": 0, "text": "Decent.", "date": "2018-07-07 22:09:11"})";
  EXPECT_EQ(p.Detect(review), Format::kYelpReview);
  ParsedRecord r = MustParse(p, review, Format::kYelpReview);
  EXPECT_EQ(r.review.group_id, "XQfwVwDr-v0ZS3_CbbE5Xw");
  EXPECT_EQ(r.review.rating, 3.0);
  const std::string business =
      R"({"business_id": "XQ", "name": "Cafe", "city": "Tampa", "state": "FL", "stars": 4.5, "attributes": null, "categories": "Restaurants, Cafes"})";
  EXPECT_EQ(p.Detect(business), Format::kYelpBusiness);
  r = MustParse(p, business, Format::kYelpBusiness);
  EXPECT_EQ(r.business.categories, "Restaurants, Cafes");
  r = MustParse(p, R"({"business_id": "Y", "name": "N", "categories": null})",
                Format::kYelpBusiness);
  EXPECT_EQ(r.business.categories, "");
}

TEST(Records, CsvColumnsAndErrors) {
  RecordParser p;
  CsvColumns cols{"body", "headline", "sku", "stars"};
  ParsedRecord r = MustParse(p, R"({"body": "Nice", "headline": "Ok", "sku": "S1", "stars": "4"})",
                             Format::kCsv, cols);
  EXPECT_EQ(r.review.text, "Nice");
  EXPECT_EQ(r.review.rating, 4.0);
  auto bad = p.Parse(R"({"overall": 5.0, "asin": )", Format::kAmazon2018Review, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("malformed JSON"), std::string_view::npos);
  auto missing = p.Parse(R"({"overall": 5.0})", Format::kAmazon2018Review, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("asin"), std::string_view::npos);
  EXPECT_FALSE(ParseFormat("amazon").ok());
  EXPECT_EQ(*ParseFormat("yelp_review"), Format::kYelpReview);
}

}  // namespace
}  // namespace copyforge
