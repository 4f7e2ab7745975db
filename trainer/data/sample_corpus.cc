#include "trainer/data/sample_corpus.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace {

struct Category {
  const char* main_cat;
  const char* path;
  std::vector<const char*> kinds;
  std::vector<const char*> features;
  std::vector<const char*> uses;
};

const std::vector<Category>& Categories() {
  static const std::vector<Category> c = {
      {"Home & Kitchen",
       "Home & Kitchen|Kitchen & Dining|Small Appliances",
       {"blender", "coffee maker", "toaster", "air fryer", "electric kettle"},
       {"a 1200-watt motor", "a dishwasher-safe jar", "a stainless steel body", "an auto shut-off",
        "a 1.7 liter capacity"},
       {"morning smoothies", "a small apartment kitchen", "weekend brunches", "meal prep"}},
      {"Electronics",
       "Electronics|Headphones|Over-Ear Headphones",
       {"wireless headphones", "bluetooth speaker", "noise cancelling earbuds", "portable charger"},
       {"30 hours of battery life", "active noise cancellation", "USB-C fast charging",
        "a built-in microphone", "water resistance"},
       {"long flights", "the daily commute", "working from home", "the gym"}},
      {"Sports & Outdoors",
       "Sports & Outdoors|Outdoor Recreation|Camping & Hiking",
       {"camping tent", "hiking backpack", "insulated water bottle", "trekking poles"},
       {"a waterproof rainfly", "adjustable straps", "double-wall insulation",
        "a lightweight aluminum frame"},
       {"weekend camping trips", "day hikes", "backpacking in the rain",
        "family trips to the lake"}},
      {"Beauty",
       "Beauty & Personal Care|Skin Care|Face",
       {"face moisturizer", "vitamin C serum", "sunscreen", "cleansing balm"},
       {"hyaluronic acid", "SPF 50 protection", "a fragrance-free formula",
        "a lightweight texture"},
       {"dry winter skin", "sensitive skin", "a morning routine", "daily wear under makeup"}},
      {"Toys & Games",
       "Toys & Games|Puzzles|Jigsaw Puzzles",
       {"jigsaw puzzle", "building block set", "board game", "remote control car"},
       {"1000 thick pieces", "a sturdy box", "clear instructions", "rechargeable batteries"},
       {"family game night", "a rainy afternoon", "a birthday gift", "kids aged eight and up"}},
      {"Office Products",
       "Office Products|Office Furniture|Chairs",
       {"office chair", "standing desk", "desk lamp", "mechanical keyboard"},
       {"lumbar support", "a memory preset", "adjustable brightness", "hot-swappable switches"},
       {"long work days", "a home office", "late night studying", "a shared workspace"}},
  };
  return c;
}

const std::vector<const char*> kBrands = {"Northwind", "Acme",  "Brightline", "Kestrel",
                                          "Oakridge",  "Lumen", "Vantage",    "Harbor"};
const std::vector<const char*> kNames = {"Maria G.",  "James T.", "Priya K.", "Chen W.",
                                         "Olivia R.", "Samir A.", "Ana P.",   "Tom B."};
const std::vector<const char*> kCities = {"Phoenix|AZ",    "Las Vegas|NV", "Toronto|ON",
                                          "Pittsburgh|PA", "Charlotte|NC", "Madison|WI"};
const std::vector<const char*> kCuisine = {"Italian",  "Mexican", "Thai",
                                           "Japanese", "Indian",  "American"};
const std::vector<const char*> kDishes = {"pasta",          "tacos",  "pad thai", "ramen",
                                          "butter chicken", "burger", "tiramisu", "dumplings"};

const std::vector<const char*> kPositive = {
    "I have used this {kind} every day for {weeks} weeks and it still works like new.",
    "The {feature} is the best part: it makes {use} so much easier.",
    "Setup took less than ten minutes and the instructions were clear.",
    "For the price, the build quality is excellent and it feels solid.",
    "It is quieter than my old {kind} and looks great on the counter.",
    "I bought a second one as a gift for my sister after a month.",
    "Perfect for {use}; I would not go back to anything else.",
    "Customer service answered my question within a day, which I appreciated."};
const std::vector<const char*> kNegative = {
    "It stopped working after {weeks} weeks, which is disappointing at ${price}.",
    "The {feature} sounded great on paper, but in practice it is hard to use.",
    "Returned it: the {kind} arrived with a cracked part and a missing manual.",
    "Not great for {use}; it struggles with anything more than light use.",
    "The description promised more than it delivers, so I cannot recommend it.",
    "It is louder than expected and the buttons feel cheap."};
const std::vector<const char*> kMixed = {
    "It does the job, though the {feature} could be better designed.",
    "Good value overall, but it took a few tries to get used to it.",
    "Works fine for {use}, nothing special beyond that."};
const std::vector<const char*> kPii = {
    "Email me at {first}.{last}@example.com if you want more photos.",
    "Call me at (555) 014-{digits} if you have questions about it.",
    "Full review with pictures at https://blog.example.net/reviews/{digits}."};
const std::vector<const char*> kYelp = {
    "We came here on a {day} night and the {dish} was outstanding.",
    "Service was friendly and fast, even though the place was packed.",
    "The {dish} was a little cold and we waited forty minutes for a table.",
    "Great {cuisine} spot in {city}; the portions are generous.",
    "Parking is tricky, but the patio makes up for it.",
    "Prices went up since last year, and the {dish} got smaller.",
    "Our server recommended the {dish} and it was the highlight of the meal."};

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  int64_t Int(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Int(0, static_cast<int64_t>(v.size()) - 1))];
  }
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  // Up to n distinct elements of v, in random order.
  template <typename T>
  std::vector<T> PickDistinct(const std::vector<T>& v, int64_t n) {
    std::vector<T> copy = v;
    std::shuffle(copy.begin(), copy.end(), rng_);
    copy.resize(std::min<size_t>(copy.size(), static_cast<size_t>(n)));
    return copy;
  }

 private:
  std::mt19937_64 rng_;
};

std::string Fill(std::string s, const std::vector<std::pair<std::string, std::string>>& vars) {
  std::vector<std::pair<absl::string_view, absl::string_view>> r;
  for (const auto& [k, v] : vars) r.emplace_back(k, v);
  return absl::StrReplaceAll(s, r);
}

}  // namespace

absl::Status WriteSampleCorpus(const std::string& dir, const SampleCorpusOptions& options,
                               bool overwrite, SampleCorpusSummary* summary) {
  Gen g(options.seed);
  std::string meta, reviews, businesses, yelp, text;
  struct Product {
    std::string asin, title;
    const Category* cat;
    std::string kind;
    std::vector<std::string> features;
    double price;
  };
  std::vector<Product> products;
  for (int64_t i = 0; i < options.products; ++i) {
    Product p;
    p.cat = &g.Pick(Categories());
    p.kind = g.Pick(p.cat->kinds);
    const std::string brand = g.Pick(kBrands);
    p.asin = absl::StrFormat("B0%08d", 1000 + i * 7919 % 90000000);
    p.title = absl::StrCat(brand, " ", std::string(1, static_cast<char>('A' + i % 26)),
                           g.Int(100, 999), " ", p.kind);
    for (const char* f : g.PickDistinct(p.cat->features, 3)) p.features.push_back(f);
    p.price = g.Int(999, 19999) / 100.0;
    nlohmann::ordered_json m;
    m["asin"] = p.asin;
    m["title"] = p.title;
    m["brand"] = brand;
    m["feature"] = p.features;
    m["description"] = {absl::StrCat("The ", p.title, " is built for ", g.Pick(p.cat->uses),
                                     ". It comes with ", p.features[0], " and ", p.features[1],
                                     ".")};
    m["category"] = std::vector<std::string>(absl::StrSplit(p.cat->path, '|'));
    m["price"] = absl::StrFormat("$%.2f", p.price);
    m["main_cat"] = p.cat->main_cat;
    absl::StrAppend(&meta, m.dump(), "\n");
    products.push_back(std::move(p));
  }
  for (int64_t i = 0; i < options.reviews; ++i) {
    const Product& p =
        products[static_cast<size_t>(g.Int(0, static_cast<int64_t>(products.size()) - 1))];
    const int stars = static_cast<int>(g.Int(1, 5));
    const auto& pool = stars >= 4 ? kPositive : stars <= 2 ? kNegative : kMixed;
    const std::string name = g.Pick(kNames);
    std::vector<std::pair<std::string, std::string>> vars = {
        {"{kind}", p.kind},
        {"{feature}", g.Pick(p.features)},
        {"{use}", g.Pick(p.cat->uses)},
        {"{weeks}", absl::StrCat(g.Int(2, 30))},
        {"{price}", absl::StrFormat("%.2f", p.price)},
        {"{first}", std::string(name.substr(0, name.find(' ')))},
        {"{last}", "shopper"},
        {"{digits}", absl::StrFormat("%04d", g.Int(0, 9999))}};
    std::string body;
    for (const char* sentence : g.PickDistinct(pool, g.Int(2, 4))) {
      absl::StrAppend(&body, body.empty() ? "" : " ", Fill(sentence, vars));
    }
    if (g.Uniform() < 0.08) absl::StrAppend(&body, " ", Fill(g.Pick(kPii), vars));
    if (stars >= 4 && g.Uniform() < 0.2)
      absl::StrAppend(&body, "<br />Update: still going strong &amp; happy with it.");
    static const char* kSummaries[] = {"Terrible", "Disappointing", "It's okay", "Very good",
                                       "Love it!"};
    const int64_t t = 1400000000 + g.Int(0, 150000000);
    nlohmann::ordered_json r;
    r["overall"] = static_cast<double>(stars);
    r["verified"] = g.Uniform() < 0.85;
    r["reviewTime"] = absl::StrFormat("%02d %d, %d", g.Int(1, 12), g.Int(1, 28),
                                      2014 + (t - 1400000000) / 31536000);
    r["reviewerID"] = absl::StrFormat("A%012d", g.Int(0, 999999999));
    r["asin"] = p.asin;
    r["style"] = {{"Color:", g.Uniform() < 0.5 ? " Black" : " Silver"}};
    r["reviewerName"] = name;
    r["reviewText"] = body;
    r["summary"] = kSummaries[stars - 1];
    r["unixReviewTime"] = t;
    if (g.Uniform() < 0.3) r["vote"] = absl::StrCat(g.Int(2, 40));
    absl::StrAppend(&reviews, r.dump(), "\n");
    absl::StrAppend(&text, kSummaries[stars - 1], "\n", body, "<|endoftext|>");
  }
  std::vector<std::pair<std::string, std::string>> biz;
  for (int64_t i = 0; i < options.businesses; ++i) {
    const std::string city = g.Pick(kCities);
    const std::string cuisine = g.Pick(kCuisine);
    nlohmann::ordered_json b;
    b["business_id"] = absl::StrFormat("biz%019d", i * 104729);
    b["name"] = absl::StrCat(g.Pick(kBrands), " ", cuisine, " Kitchen");
    b["city"] = city.substr(0, city.find('|'));
    b["state"] = city.substr(city.find('|') + 1);
    b["stars"] = g.Int(2, 10) / 2.0;
    b["review_count"] = g.Int(5, 900);
    b["categories"] = absl::StrCat("Restaurants, ", cuisine, ", Food");
    b["attributes"] = {{"RestaurantsTakeOut", "True"},
                       {"OutdoorSeating", g.Uniform() < 0.5 ? "True" : "False"}};
    absl::StrAppend(&businesses, b.dump(), "\n");
    biz.emplace_back(b["business_id"].get<std::string>(),
                     absl::StrCat(cuisine, "|", b["city"].get<std::string>()));
  }
  for (int64_t i = 0; i < options.yelp_reviews; ++i) {
    const auto& [id, info] = g.Pick(biz);
    std::vector<std::pair<std::string, std::string>> vars = {
        {"{dish}", g.Pick(kDishes)},
        {"{day}", g.Uniform() < 0.5 ? "Friday" : "Tuesday"},
        {"{cuisine}", info.substr(0, info.find('|'))},
        {"{city}", info.substr(info.find('|') + 1)}};
    std::string body;
    for (const char* sentence : g.PickDistinct(kYelp, g.Int(2, 4))) {
      absl::StrAppend(&body, body.empty() ? "" : " ", Fill(sentence, vars));
    }
    nlohmann::ordered_json r;
    r["review_id"] = absl::StrFormat("rev%019d", i);
    r["user_id"] = absl::StrFormat("usr%019d", g.Int(0, 99999));
    r["business_id"] = id;
    r["stars"] = static_cast<double>(g.Int(1, 5));
    r["useful"] = g.Int(0, 5);
    r["funny"] = g.Int(0, 2);
    r["cool"] = g.Int(0, 3);
    r["text"] = body;
    r["date"] = absl::StrFormat("20%02d-%02d-%02d 19:%02d:00", g.Int(12, 22), g.Int(1, 12),
                                g.Int(1, 28), g.Int(0, 59));
    absl::StrAppend(&yelp, r.dump(), "\n");
    absl::StrAppend(&text, body, "<|endoftext|>");
  }
  CF_RETURN_IF_ERROR(
      WriteDirectoryAtomic(dir, overwrite, [&](const std::string& d) -> absl::Status {
        std::filesystem::create_directories(d + "/amazon2018");
        std::filesystem::create_directories(d + "/yelp");
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/amazon2018/meta.jsonl", meta));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/amazon2018/reviews.jsonl", reviews));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/yelp/business.json", businesses));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/yelp/review.json", yelp));
        CF_RETURN_IF_ERROR(SyncDirectory(d + "/amazon2018"));
        CF_RETURN_IF_ERROR(SyncDirectory(d + "/yelp"));
        return WriteFileSynced(d + "/reviews.txt", text);
      }));
  if (summary != nullptr) {
    *summary = {options.reviews, options.products, options.yelp_reviews, options.businesses,
                static_cast<int64_t>(text.size())};
  }
  return absl::OkStatus();
}

}  // namespace copyforge
