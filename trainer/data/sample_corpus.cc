#include "trainer/data/sample_corpus.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace {

using Strings = std::vector<std::string>;

struct Category {
  std::string main_cat, path;
  Strings kinds, features, uses, colors;
};

const std::vector<Category>& Categories() {
  static const std::vector<Category> c = {
      {"Home & Kitchen",
       "Home & Kitchen|Kitchen & Dining|Small Appliances",
       {"blender", "coffee maker", "toaster", "air fryer", "electric kettle", "stand mixer"},
       {"a 1200-watt motor", "a dishwasher-safe jar", "a brushed stainless steel body",
        "an automatic shut-off", "a 1.7 liter capacity", "six speed settings", "a keep-warm plate",
        "a removable drip tray"},
       {"morning smoothies", "a small apartment kitchen", "weekend brunches", "meal prep",
        "holiday baking"},
       {"black", "silver", "red", "white"}},
      {"Electronics",
       "Electronics|Headphones|Over-Ear Headphones",
       {"wireless headphones", "bluetooth speaker", "noise cancelling earbuds", "portable charger",
        "smart watch"},
       {"30 hours of battery life", "active noise cancellation", "USB-C fast charging",
        "a built-in microphone", "IPX7 water resistance", "multipoint pairing",
        "a heart rate sensor", "a fold-flat design"},
       {"long flights", "the daily commute", "working from home", "the gym", "video calls"},
       {"matte black", "navy blue", "rose gold", "graphite"}},
      {"Sports & Outdoors",
       "Sports & Outdoors|Outdoor Recreation|Camping & Hiking",
       {"camping tent", "hiking backpack", "insulated water bottle", "trekking poles",
        "sleeping bag"},
       {"a waterproof rainfly", "padded hip straps", "double-wall vacuum insulation",
        "a lightweight aluminum frame", "a 20 degree temperature rating", "a compression sack",
        "reflective guy lines", "a leak-proof lid"},
       {"weekend camping trips", "day hikes", "backpacking in the rain", "family trips to the lake",
        "trail running"},
       {"forest green", "orange", "slate gray", "sand"}},
      {"Beauty",
       "Beauty & Personal Care|Skin Care|Face",
       {"face moisturizer", "vitamin C serum", "mineral sunscreen", "cleansing balm",
        "night cream"},
       {"hyaluronic acid", "SPF 50 protection", "a fragrance-free formula", "a lightweight texture",
        "niacinamide", "a pump bottle", "ceramides", "a non-greasy finish"},
       {"dry winter skin", "sensitive skin", "a morning routine", "daily wear under makeup",
        "oily skin"},
       {"clear", "white", "amber", "pink"}},
      {"Toys & Games",
       "Toys & Games|Puzzles|Jigsaw Puzzles",
       {"jigsaw puzzle", "building block set", "board game", "remote control car", "science kit"},
       {"1000 thick pieces", "a sturdy storage box", "clear illustrated instructions",
        "rechargeable batteries", "a poster of the finished image", "two speed modes",
        "twenty experiments", "non-toxic paint"},
       {"family game night", "a rainy afternoon", "a birthday gift", "kids aged eight and up",
        "a long weekend"},
       {"multicolor", "blue", "yellow", "green"}},
      {"Office Products",
       "Office Products|Office Furniture|Chairs",
       {"office chair", "standing desk", "desk lamp", "mechanical keyboard", "monitor arm"},
       {"adjustable lumbar support", "three memory presets", "five brightness levels",
        "hot-swappable switches", "a gas spring arm", "breathable mesh", "a cable tray",
        "a USB charging port"},
       {"long work days", "a home office", "late night studying", "a shared workspace",
        "gaming sessions"},
       {"black", "white", "walnut", "gray"}},
  };
  return c;
}

const Strings kBrands = {"Northwind", "Acme",   "Brightline", "Kestrel",   "Oakridge", "Lumen",
                         "Vantage",   "Harbor", "Copperleaf", "Pinecrest", "Solace",   "Everstead"};
const Strings kFirst = {"Maria",  "James", "Priya", "Chen",  "Olivia", "Samir", "Anna", "Thomas",
                        "Fatima", "Lucas", "Grace", "Mateo", "Hannah", "Kenji", "Ruth", "Diego"};
const Strings kCities = {"Phoenix|AZ",   "Las Vegas|NV", "Toronto|ON", "Pittsburgh|PA",
                         "Charlotte|NC", "Madison|WI",   "Tampa|FL",   "Nashville|TN"};
const Strings kCuisine = {"Italian", "Mexican",  "Thai",  "Japanese",
                          "Indian",  "American", "Greek", "Vietnamese"};
const Strings kDishes = {"lasagna",        "carnitas tacos", "pad thai",     "tonkotsu ramen",
                         "butter chicken", "smash burger",   "gyro platter", "pho",
                         "tiramisu",       "green curry",    "fish tacos",   "margherita pizza"};

// Sentence pools by sentiment; {x} slots are filled from the product or business.
const Strings kOpen[3] = {
    {"I regret buying this {kind}.", "This {kind} was a letdown from day one.",
     "Save your money and skip this {kind}.", "I wanted to like this {kind}, but it failed me.",
     "Very disappointed with this {kind}."},
    {"This {kind} is okay, nothing more.", "The {kind} does what it says, mostly.",
     "Mixed feelings about this {kind}.", "An average {kind} for the price.",
     "It is a decent {kind} with some flaws."},
    {"I love this {kind}!", "This {kind} exceeded my expectations.",
     "Best {kind} I have owned so far.", "Really happy with this {color} {kind}.",
     "This {kind} is worth every penny."}};
const Strings kBody[3] = {
    {"The {feature} stopped working after {weeks} weeks.",
     "It feels cheap, and the {feature} is flimsy.",
     "Customer service never answered my emails about the {feature}.",
     "For {use} it is simply not good enough.", "The {color} finish scratched within a week.",
     "At ${price} I expected far better quality.", "It arrived with a cracked part and no manual."},
    {"The {feature} works, though it took some getting used to.",
     "It is fine for {use}, but not great.", "Build quality is acceptable for ${price}.",
     "The {color} color looks a bit different from the photos.", "Setup was slower than I hoped.",
     "It does the basics well but nothing stands out."},
    {"The {feature} is the standout feature and it makes {use} easy.",
     "I have used it for {weeks} weeks and it still works like new.",
     "Setup took less than ten minutes.", "The {color} finish looks great and feels solid.",
     "For {use} it is perfect.", "At ${price} it is a great value.",
     "I bought a second one as a gift."}};
const Strings kClose[3] = {
    {"Returning it.", "One star is generous.", "Would not recommend."},
    {"Three stars.", "It is fine if you find it on sale.", "Might look elsewhere next time."},
    {"Highly recommend!", "Five stars from me.", "Would buy again without hesitation."}};
const Strings kTitles[3] = {{"Terrible", "Broke quickly", "Not worth it", "Disappointed"},
                            {"It's okay", "Average", "Does the job", "Mixed feelings"},
                            {"Love it!", "Excellent", "Great value", "Exceeded expectations"}};
const Strings kYelp[3] = {
    {"We waited {wait} minutes for cold {dish}.", "The {dish} was bland and overpriced.",
     "Our server forgot half the order.", "The tables were sticky and the music far too loud."},
    {"The {dish} was decent but nothing memorable.", "Service was friendly if a bit slow.",
     "Portions are fair for the price.", "Parking in {city} near here is tricky."},
    {"The {dish} was outstanding, easily the best {cuisine} food in {city}.",
     "Service was warm and quick.", "We were seated right away even on a busy {day} night.",
     "Generous portions and fair prices."}};
const Strings kWho = {"my mother", "my brother",     "my partner", "my roommate",
                      "my son",    "my daughter",    "a coworker", "my dad",
                      "myself",    "my grandmother", "a friend",   "my sister"};
const Strings kWhen = {"last spring",           "before a long trip",
                       "for the holidays",      "after my old one broke",
                       "on a lightning deal",   "for a new apartment",
                       "as a birthday present", "two months ago",
                       "during a sale",         "to replace a cheaper model"};
const Strings kAdverb = {"really",    "honestly", "surprisingly", "pretty",
                         "genuinely", "quite",    "fairly",       "truly"};
const Strings kOccasion = {
    "a birthday dinner",   "a quick lunch",   "date night", "a work meeting",
    "brunch with friends", "a family dinner", "takeout",    "a late dinner after a concert",
    "an anniversary"};
const Strings kParty = {"two of us", "a group of six", "four adults and two kids", "just me",
                        "three coworkers"};
const Strings kPii = {"Email me at {email} if you want more photos.",
                      "Questions? Call me at {phone}.",
                      "Full review with pictures at https://blog.example.net/reviews/{n}.",
                      "Text {phone} and I'll share my settings."};

int Sentiment(int stars) { return stars <= 2 ? 0 : stars == 3 ? 1 : 2; }

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  int64_t Int(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  const std::string& Pick(const Strings& v) {
    return v[static_cast<size_t>(Int(0, static_cast<int64_t>(v.size()) - 1))];
  }
  Strings Distinct(const Strings& v, int64_t n) {
    Strings copy = v;
    std::shuffle(copy.begin(), copy.end(), rng_);
    copy.resize(std::min<size_t>(copy.size(), static_cast<size_t>(n)));
    return copy;
  }
  // Ratings skew positive, as on real review sites.
  int Stars() {
    const double u = Uniform();
    return u < 0.08 ? 1 : u < 0.15 ? 2 : u < 0.27 ? 3 : u < 0.5 ? 4 : 5;
  }

 private:
  std::mt19937_64 rng_;
};

using Vars = std::vector<std::pair<std::string, std::string>>;
std::string Fill(const std::string& s, const Vars& vars) {
  std::vector<std::pair<absl::string_view, absl::string_view>> r(vars.begin(), vars.end());
  return absl::StrReplaceAll(s, r);
}

struct Product {
  std::string id, title, brand, kind, color, price_text;
  double price;
  const Category* cat;
  Strings features;
  std::string description;
};

Product MakeProduct(Gen& g, int64_t i, bool v2023) {
  Product p;
  p.cat =
      &Categories()[static_cast<size_t>(g.Int(0, static_cast<int64_t>(Categories().size()) - 1))];
  p.kind = g.Pick(p.cat->kinds);
  p.brand = g.Pick(kBrands);
  p.color = g.Pick(p.cat->colors);
  // Amazon 2018 ids keep the form every sample corpus so far has had: one id, B000000001, for all
  // 2018 products (written with constant format strings, which clang requires).
  p.id = v2023 ? absl::StrFormat("B0%dX%06d", 9, 100000 + i * 7919 % 900000)
               : absl::StrFormat("B0%08d", 1);
  p.title = absl::StrFormat("%s %c%d %s, %s", p.brand, static_cast<char>('A' + g.Int(0, 25)),
                            g.Int(100, 999), p.kind, p.color);
  p.features = g.Distinct(p.cat->features, 3);
  p.price = g.Int(999, 24999) / 100.0;
  p.price_text = absl::StrFormat("$%.2f", p.price);
  const std::string use = g.Pick(p.cat->uses);
  p.description = absl::StrCat("The ", p.brand, " ", p.kind, " is made for ", use,
                               ". It comes with ", p.features[0], ", ", p.features[1], " and ",
                               p.features[2], ", in a ", p.color, " finish.");
  return p;
}

std::string ReviewerName(Gen& g) {
  return absl::StrCat(g.Pick(kFirst), " ", std::string(1, static_cast<char>('A' + g.Int(0, 25))),
                      ".");
}

// Review text for `stars`, built from the product's attributes.
// `name` (may be empty) signs some reviews; only formats that carry the reviewer's name get one,
// since a name the record does not hold cannot be scrubbed.
std::string ReviewText(Gen& g, const Product& p, int stars, const std::string& name, bool* pii) {
  const int s = Sentiment(stars);
  Vars vars = {{"{kind}", p.kind},
               {"{feature}", g.Pick(p.features)},
               {"{use}", g.Pick(p.cat->uses)},
               {"{color}", p.color},
               {"{weeks}", absl::StrCat(g.Int(2, 40))},
               {"{price}", absl::StrFormat("%.2f", p.price)}};
  Strings parts = {Fill(g.Pick(kOpen[s]), vars)};
  if (g.Uniform() < 0.8) {
    parts.push_back(absl::StrCat("I bought it for ", g.Pick(kWho), " ", g.Pick(kWhen), " and I am ",
                                 g.Pick(kAdverb), " ",
                                 s == 0   ? "annoyed"
                                 : s == 1 ? "on the fence"
                                          : "glad",
                                 " about it."));
  }
  for (const std::string& b : g.Distinct(kBody[s], g.Int(1, 3))) {
    vars[1].second = g.Pick(p.features);
    parts.push_back(Fill(b, vars));
  }
  parts.push_back(g.Pick(kClose[s]));
  std::string text = absl::StrJoin(parts, g.Uniform() < 0.1 ? "<br />" : " ");
  *pii = false;
  if (g.Uniform() < 0.06) {
    *pii = true;
    const std::string first = name.empty() ? "shopper" : name.substr(0, name.find(' '));
    Vars pv = {
        {"{email}", absl::StrCat(absl::AsciiStrToLower(first), ".", g.Int(10, 99), "@example.com")},
        {"{phone}", absl::StrFormat("(555) %03d-%04d", g.Int(100, 999), g.Int(0, 9999))},
        {"{n}", absl::StrCat(g.Int(1000, 9999))}};
    absl::StrAppend(&text, " ", Fill(g.Pick(kPii), pv));
  } else if (!name.empty() && g.Uniform() < 0.03) {
    *pii = true;
    absl::StrAppend(&text, " - ", name.substr(0, name.find(' ')));
  }
  return text;
}

// Plants duplicates: returns a previous text verbatim or lightly edited, or `fresh`.
std::string MaybeDuplicate(Gen& g, const SampleCorpusOptions& o, Strings& history,
                           std::string fresh, SampleCorpusSummary* s) {
  const double u = g.Uniform();
  if (!history.empty() && u < o.exact_duplicates) {
    ++s->exact_duplicates;
    return g.Pick(history);
  }
  if (!history.empty() && u < o.exact_duplicates + o.near_duplicates) {
    ++s->near_duplicates;
    std::string copy = g.Pick(history);
    return copy + (g.Uniform() < 0.5 ? " Thanks!" : " Update: still happy.");
  }
  history.push_back(fresh);
  return fresh;
}

std::string MaybeMalform(Gen& g, const SampleCorpusOptions& o, std::string line,
                         SampleCorpusSummary* s) {
  if (g.Uniform() >= o.malformed) return line;
  ++s->malformed;
  return line.substr(0, line.size() / 2);  // a line cut off mid-record, as in a broken download
}

absl::Status WriteGzip(const std::string& path, const std::string& data) {
  gzFile gz = gzopen(path.c_str(), "wb9");
  if (gz == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path));
  const int n = data.empty() ? 0 : gzwrite(gz, data.data(), static_cast<unsigned>(data.size()));
  const int rc = gzclose(gz);
  if ((!data.empty() && n <= 0) || rc != Z_OK)
    return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteSampleCorpus(const std::string& dir, const SampleCorpusOptions& o, bool overwrite,
                               SampleCorpusSummary* summary) {
  Gen g(o.seed);
  SampleCorpusSummary s;
  std::string meta18, rev18, meta23, rev23, biz, yelp,
      csv = "review_id,product_id,rating,title,text\n", text;
  Strings history;
  const int64_t n18 = o.records * 45 / 100, n23 = o.records * 30 / 100,
                nyelp = o.records - n18 - n23;
  const int64_t products = std::max<int64_t>(4, o.records / 25);

  auto products_of = [&](bool v2023, std::string* out) {
    std::vector<Product> ps;
    for (int64_t i = 0; i < products / 2; ++i) {
      Product p = MakeProduct(g, i + (v2023 ? products : 0), v2023);
      nlohmann::ordered_json m;
      if (v2023) {
        m = {{"main_category", p.cat->main_cat},
             {"title", p.title},
             {"average_rating", 4.2},
             {"rating_number", g.Int(3, 900)},
             {"features", p.features},
             {"description", {p.description}},
             {"store", p.brand},
             {"categories", Strings(absl::StrSplit(p.cat->path, '|'))},
             {"details", {{"Color", p.color}}},
             {"parent_asin", p.id},
             {"bought_together", nullptr}};
        m["price"] =
            g.Uniform() < 0.2 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(p.price);
      } else {
        m = {{"asin", p.id},
             {"title", p.title},
             {"brand", p.brand},
             {"feature", p.features},
             {"description", {p.description}},
             {"price", g.Uniform() < 0.2 ? "" : p.price_text},
             {"main_cat", p.cat->main_cat}};
        // Older files spell categories as a list of lists.
        if (i % 5 == 0) {
          m["categories"] = {Strings(absl::StrSplit(p.cat->path, '|'))};
        } else {
          m["category"] = Strings(absl::StrSplit(p.cat->path, '|'));
        }
        if (i % 7 == 0)
          m["title"] = absl::StrReplaceAll(p.title, {{"&", "&amp;"}}) + " &amp; Accessories";
      }
      absl::StrAppend(out, m.dump(), "\n");
      ps.push_back(std::move(p));
      ++s.products;
    }
    return ps;
  };
  const std::vector<Product> p18 = products_of(false, &meta18), p23 = products_of(true, &meta23);

  for (int64_t i = 0; i < n18 + n23; ++i) {
    const bool v2023 = i >= n18;
    const Product& p =
        v2023 ? p23[static_cast<size_t>(g.Int(0, static_cast<int64_t>(p23.size()) - 1))]
              : p18[static_cast<size_t>(g.Int(0, static_cast<int64_t>(p18.size()) - 1))];
    const int stars = g.Stars();
    const std::string name = ReviewerName(g);
    bool pii = false;
    std::string body =
        MaybeDuplicate(g, o, history, ReviewText(g, p, stars, v2023 ? "" : name, &pii), &s);
    s.with_pii += pii;
    const std::string title = g.Pick(kTitles[Sentiment(stars)]);
    const int64_t t = 1400000000 + g.Int(0, 250000000);
    nlohmann::ordered_json r;
    if (v2023) {
      r = {{"rating", static_cast<double>(stars)},
           {"title", title},
           {"text", body},
           {"images", nlohmann::json::array()},
           {"asin", p.id},
           {"parent_asin", p.id},
           {"user_id", absl::StrFormat("AE%016d", g.Int(0, 99999999))},
           {"timestamp", t * 1000},
           {"helpful_vote", g.Int(0, 30)},
           {"verified_purchase", g.Uniform() < 0.85}};
      absl::StrAppend(&rev23, MaybeMalform(g, o, r.dump(), &s), "\n");
    } else {
      r = {{"overall", static_cast<double>(stars)},
           {"verified", g.Uniform() < 0.85},
           {"reviewTime", absl::StrFormat("%02d %d, %d", g.Int(1, 12), g.Int(1, 28),
                                          2014 + (t - 1400000000) / 31536000)},
           {"reviewerID", absl::StrFormat("A%012d", g.Int(0, 999999999))},
           {"asin", p.id},
           {"style", {{"Color:", " " + p.color}}},
           {"reviewerName", name},
           {"reviewText", body},
           {"summary", title},
           {"unixReviewTime", t}};
      // `vote` is a string ("1,024") in the published files, an int in some re-exports.
      if (g.Uniform() < 0.3)
        r["vote"] = g.Uniform() < 0.5 ? nlohmann::ordered_json(absl::StrCat(g.Int(2, 40)))
                                      : nlohmann::ordered_json(g.Int(2, 40));
      absl::StrAppend(&rev18, MaybeMalform(g, o, r.dump(), &s), "\n");
    }
    if (i % 10 == 0) {
      bool csv_pii = false;
      const int csv_stars = g.Stars();
      nlohmann::json fields = {absl::StrCat("r", i), p.id, csv_stars,
                               g.Pick(kTitles[Sentiment(csv_stars)]),
                               ReviewText(g, p, csv_stars, "", &csv_pii)};
      Strings cells;
      for (const auto& f : fields) {
        std::string cell = f.is_string() ? f.get<std::string>() : f.dump();
        cells.push_back(absl::StrCat("\"", absl::StrReplaceAll(cell, {{"\"", "\"\""}}), "\""));
      }
      absl::StrAppend(&csv, absl::StrJoin(cells, ","), "\n");
      ++s.csv_rows;
    }
    absl::StrAppend(&text, title, "\n", absl::StrReplaceAll(body, {{"<br />", "\n"}}),
                    "<|endoftext|>");
    ++s.reviews;
  }

  struct Biz {
    std::string id, name, cuisine, city;
  };
  std::vector<Biz> businesses;
  for (int64_t i = 0; i < std::max<int64_t>(2, products / 2); ++i) {
    const std::string city = g.Pick(kCities);
    Biz b{absl::StrFormat("b%021d", i * 104729),
          absl::StrCat(g.Pick(kBrands), " ", g.Pick(kCuisine), " Kitchen"), g.Pick(kCuisine),
          city.substr(0, city.find('|'))};
    nlohmann::ordered_json j = {{"business_id", b.id},
                                {"name", b.name},
                                {"address", absl::StrCat(g.Int(10, 999), " Main St")},
                                {"city", b.city},
                                {"state", city.substr(city.find('|') + 1)},
                                {"stars", g.Int(2, 10) / 2.0},
                                {"review_count", g.Int(5, 900)},
                                {"is_open", 1},
                                {"attributes",
                                 {{"RestaurantsTakeOut", "True"},
                                  {"OutdoorSeating", g.Uniform() < 0.5 ? "True" : "False"}}},
                                {"categories", absl::StrCat("Restaurants, ", b.cuisine, ", Food")}};
    absl::StrAppend(&biz, j.dump(), "\n");
    businesses.push_back(std::move(b));
    ++s.businesses;
  }
  for (int64_t i = 0; i < nyelp; ++i) {
    const Biz& b =
        businesses[static_cast<size_t>(g.Int(0, static_cast<int64_t>(businesses.size()) - 1))];
    const int stars = g.Stars();
    Vars vars = {{"{dish}", g.Pick(kDishes)},
                 {"{cuisine}", b.cuisine},
                 {"{city}", b.city},
                 {"{day}", g.Uniform() < 0.5 ? "Friday" : "Saturday"},
                 {"{wait}", absl::StrCat(g.Int(25, 70))}};
    Strings parts = {absl::StrCat("Came here for ", g.Pick(kOccasion), ", ", g.Pick(kParty), ".")};
    for (const std::string& sentence : g.Distinct(kYelp[Sentiment(stars)], g.Int(2, 4))) {
      vars[0].second = g.Pick(kDishes);
      parts.push_back(Fill(sentence, vars));
    }
    std::string body = MaybeDuplicate(g, o, history, absl::StrJoin(parts, " "), &s);
    nlohmann::ordered_json r = {
        {"review_id", absl::StrFormat("y%021d", i)},
        {"user_id", absl::StrFormat("u%021d", g.Int(0, 99999))},
        {"business_id", b.id},
        {"stars", static_cast<double>(stars)},
        {"useful", g.Int(0, 5)},
        {"funny", g.Int(0, 2)},
        {"cool", g.Int(0, 3)},
        {"text", body},
        {"date", absl::StrFormat("20%02d-%02d-%02d 19:%02d:00", g.Int(12, 22), g.Int(1, 12),
                                 g.Int(1, 28), g.Int(0, 59))}};
    absl::StrAppend(&yelp, MaybeMalform(g, o, r.dump(), &s), "\n");
    absl::StrAppend(&text, body, "<|endoftext|>");
    ++s.reviews;
  }
  s.text_bytes = static_cast<int64_t>(text.size());

  CF_RETURN_IF_ERROR(
      WriteDirectoryAtomic(dir, overwrite, [&](const std::string& d) -> absl::Status {
        for (const char* sub : {"amazon2018", "amazon2023", "yelp", "csv"})
          std::filesystem::create_directories(d + "/" + sub);
        CF_RETURN_IF_ERROR(WriteGzip(d + "/amazon2018/meta_Sample.json.gz", meta18));
        CF_RETURN_IF_ERROR(WriteGzip(d + "/amazon2018/Sample.json.gz", rev18));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/amazon2023/meta_Sample.jsonl", meta23));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/amazon2023/Sample.jsonl", rev23));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/yelp/yelp_academic_dataset_business.json", biz));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/yelp/yelp_academic_dataset_review.json", yelp));
        CF_RETURN_IF_ERROR(WriteFileSynced(d + "/csv/reviews.csv", csv));
        for (const char* sub : {"amazon2018", "amazon2023", "yelp", "csv"})
          CF_RETURN_IF_ERROR(SyncDirectory(d + "/" + sub));
        return WriteFileSynced(d + "/reviews.txt", text);
      }));
  if (summary != nullptr) *summary = s;
  return absl::OkStatus();
}

}  // namespace copyforge
