// RunPrepare end to end on the generated sample corpus.
#include "trainer/data/prepare.h"

#include "trainer/data/line_reader.h"
#include "trainer/data/records.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "trainer/common/file_util.h"
#include "trainer/data/eval_tasks.h"
#include "trainer/data/ngram_index.h"
#include "trainer/data/sample_corpus.h"
#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {
namespace {
namespace fs = std::filesystem;

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SampleCorpusOptions o;
    o.records = 1200;
    o.malformed = 0.01;
    ASSERT_TRUE(WriteSampleCorpus(tmp_.File("data"), o, false, &planted_).ok());
  }
  PrepareOptions Options(const std::string& out, int threads) {
    PrepareOptions o;
    const std::string d = tmp_.File("data");
    o.inputs = {{d + "/amazon2018/*.gz", Format::kAuto},
                {d + "/amazon2023/*", Format::kAuto},
                {d + "/yelp/*", Format::kAuto},
                {d + "/csv/reviews.csv", Format::kCsv}};
    o.csv = {"text", "title", "product_id", "rating"};
    o.tokenizer = testing::Env("COPYFORGE_GPT2_TOKENIZER");
    o.templates = testing::Env("COPYFORGE_SOURCE_DIR") + "/configs/templates/ecommerce.yaml";
    o.out = tmp_.File(out);
    o.threads = threads;
    o.shard_tokens = 8192;
    o.show_progress = false;
    return o;
  }
  // All output files and their bytes.
  std::map<std::string, std::string> Files(const std::string& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.is_regular_file())
        files[fs::relative(e.path(), dir).string()] = *ReadFile(e.path().string());
    }
    return files;
  }
  std::string DecodeAll(const std::string& dir, const Tokenizer& tok) {
    std::string text;
    for (const auto& [name, bytes] : Files(dir)) {
      if (name.size() < 4 || name.substr(name.size() - 4) != ".bin") continue;
      if (name == kCopyIndexFile) continue;  // hashes, not tokens
      std::vector<int32_t> ids;
      for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
        ids.push_back(static_cast<uint8_t>(bytes[i]) | (static_cast<uint8_t>(bytes[i + 1]) << 8));
      }
      text += *tok.Decode(ids);
    }
    return text;
  }
  testing::TempDir tmp_;
  SampleCorpusSummary planted_;
};

TEST_F(PrepareTest, AccountsForEveryRecordAndIsIdenticalAcrossRunsAndThreads) {
  auto one = RunPrepare(Options("one", 1));
  ASSERT_TRUE(one.ok()) << one.status();
  auto two = RunPrepare(Options("two", 2));
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(Files(tmp_.File("one")), Files(tmp_.File("two")));

  const PrepareStats& s = *one;
  EXPECT_EQ(s.records,
            planted_.reviews + planted_.products + planted_.businesses + planted_.csv_rows);
  // Every record is kept, metadata-only, or dropped for a counted reason.
  const int64_t products_with_text = planted_.products;  // every sample product has a description
  EXPECT_EQ(s.line_too_long, 0);
  EXPECT_EQ(s.records, s.kept + s.malformed + s.empty + s.too_short + s.filtered + s.pii_error +
                           s.duplicate + s.near_duplicate + (s.metadata - products_with_text));
  EXPECT_EQ(s.pii_error, 0);
  EXPECT_EQ(s.malformed, planted_.malformed);
  EXPECT_GE(s.duplicate + s.near_duplicate, planted_.exact_duplicates + planted_.near_duplicates);
  EXPECT_GE(s.duplicate, planted_.exact_duplicates / 2);
  EXPECT_GT(s.tokens, 0);
  EXPECT_EQ(s.malformed_examples.size(), std::min<size_t>(5, planted_.malformed));
  EXPECT_NE(s.malformed_examples[0].find("Sample"), std::string::npos);

  nlohmann::json m = nlohmann::json::parse(*ReadFile(tmp_.File("one/manifest.json")));
  EXPECT_EQ(m["dtype"], "uint16");
  int64_t tokens = 0;
  for (const char* dataset : {"pretrain", "finetune"}) {
    for (const char* split : {"train", "val"}) {
      for (const auto& shard : m["datasets"][dataset][split]["shards"]) {
        const std::string bytes = *ReadFile(tmp_.File("one/") + shard["file"].get<std::string>());
        EXPECT_EQ(Sha256Hex(bytes), shard["sha256"]);
        EXPECT_EQ(static_cast<int64_t>(bytes.size()), 2 * shard["tokens"].get<int64_t>());
        // Every document ends with <|endoftext|> (50256 little-endian).
        EXPECT_EQ(static_cast<uint8_t>(bytes[bytes.size() - 2]), 50256 & 0xFF);
        EXPECT_EQ(static_cast<uint8_t>(bytes[bytes.size() - 1]), 50256 >> 8);
        if (shard.contains("mask_file")) {
          const std::string mask =
              *ReadFile(tmp_.File("one/") + shard["mask_file"].get<std::string>());
          EXPECT_EQ(mask.size(), bytes.size() / 2);
        }
        tokens += shard["tokens"].get<int64_t>();
      }
    }
  }
  EXPECT_EQ(tokens, s.tokens);
  EXPECT_GT(m["datasets"]["pretrain"]["val"]["documents"].get<int64_t>(), 0);
}

TEST_F(PrepareTest, NoPersonalDataReachesTheShards) {
  auto stats = RunPrepare(Options("out", 2));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->pii_replacements, 0);
  auto tok = Tokenizer::Load(testing::Env("COPYFORGE_GPT2_TOKENIZER"));
  // The shards and the held-out task inputs.
  const std::string text =
      DecodeAll(tmp_.File("out"), **tok) + *ReadFile(tmp_.File("out/") + kEvalTasksFile);
  for (const char* leak : {"@example.com", "(555)", "https://", "blog.example.net"}) {
    EXPECT_EQ(text.find(leak), std::string::npos) << leak;
  }
  EXPECT_NE(text.find("[email]"), std::string::npos);
  EXPECT_NE(text.find("[phone]"), std::string::npos);
  // Reviewer names of the Amazon 2018 file never appear, in full or as a first-name sign-off.
  auto reader = LineReader::Open(tmp_.File("data/amazon2018/Sample.json.gz"));
  ASSERT_TRUE(reader.ok());
  RecordParser parser;
  std::string_view line;
  int names = 0;
  while (*(*reader)->Next(&line)) {
    auto r = parser.Parse(line, Format::kAmazon2018Review, {});
    if (!r.ok() || r->review.personal.empty()) continue;
    const std::string& name = r->review.personal[0];
    EXPECT_EQ(text.find(name), std::string::npos) << name;
    EXPECT_EQ(text.find(" - " + name.substr(0, name.find(' '))), std::string::npos) << name;
    ++names;
  }
  EXPECT_GT(names, 100);
  EXPECT_NE(text.find(" - [name]"), std::string::npos);
  EXPECT_EQ(text.find("&amp;"), std::string::npos);
  EXPECT_EQ(text.find("<br"), std::string::npos);
}

// Pairs carry "Product: <title>" in their prompt: no product may appear in both splits.
// When scrubbing fails (here: a match budget no text fits in) the records are dropped and
// counted; nothing unscrubbed is written.
TEST_F(PrepareTest, PiiErrorsDropRecordsAndAreCounted) {
  PrepareOptions o = Options("pii", 2);
  o.pii_match_limit = 1;
  auto r = RunPrepare(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->kept, 0);
  EXPECT_EQ(r->tokens, 0);
  EXPECT_GT(r->pii_error, 0);
  // Only businesses (names and places, no free text to scrub) remain, as metadata.
  EXPECT_EQ(r->metadata, planted_.businesses);
  EXPECT_EQ(r->records, r->pii_error + r->malformed + r->empty + r->metadata);
}

// An overlong line is dropped and counted (never held whole); an unterminated CSV quote is an
// error naming the file and the line its row starts on, instead of swallowing the file.
TEST_F(PrepareTest, OverlongLinesAndUnterminatedQuotesAreNamed) {
  const std::string good =
      "{\"reviewText\": \"Sturdy kettle, boils fast and pours cleanly.\", "
      "\"overall\": 5, \"asin\": \"B001\", \"summary\": \"Great\"}\n";
  testing::WriteTestFile(tmp_.File("long.json"),
                         good + "{\"reviewText\": \"" + std::string(5000, 'x') + "\"}\n" + good);
  PrepareOptions o = Options("long", 1);
  o.inputs = {{tmp_.File("long.json"), Format::kAmazon2018Review}};
  o.max_line_bytes = 2048;
  auto r = RunPrepare(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->line_too_long, 1);
  EXPECT_EQ(r->records, 2);
  auto manifest = nlohmann::json::parse(*ReadFile(tmp_.File("long/manifest.json")));
  EXPECT_EQ(manifest["stats"]["dropped"]["line_too_long"], 1);

  testing::WriteTestFile(tmp_.File("open.csv"),
                         "text,title,product_id,rating\n\"Fine\",t,p1,4\n\n"
                         "\"Never closed,t,p2,5\nmore text\n" +
                             std::string(20, '\n'));
  o = Options("csv", 1);
  o.inputs = {{tmp_.File("open.csv"), Format::kCsv}};
  r = RunPrepare(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("open.csv:4: unterminated quoted CSV field"),
            std::string_view::npos)
      << r.status();
  // A quoted row growing past max_line_bytes stops there, naming its first line.
  testing::WriteTestFile(tmp_.File("huge.csv"), "text,title,product_id,rating\n\"" +
                                                    std::string(3000, 'y') + "\n" +
                                                    std::string(3000, 'z') + "\n");
  o.inputs = {{tmp_.File("huge.csv"), Format::kCsv}};
  o.max_line_bytes = 4096;
  r = RunPrepare(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("huge.csv:2: a CSV row longer than max_line_bytes"),
            std::string_view::npos)
      << r.status();
}

TEST_F(PrepareTest, SplitIsByProductWithoutLeakage) {
  PrepareOptions o = Options("out", 2);
  o.validation_ratio = 0.25;
  ASSERT_TRUE(RunPrepare(o).ok());
  auto tok = Tokenizer::Load(testing::Env("COPYFORGE_GPT2_TOKENIZER"));
  auto products = [&](const std::string& split) {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp_.File("out/finetune"))) {
      const std::string name = e.path().filename().string();
      if (name.rfind(split, 0) != 0 || e.path().extension() != ".bin") continue;
      const std::string bytes = *ReadFile(e.path().string());
      std::vector<int32_t> ids;
      for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
        ids.push_back(static_cast<uint8_t>(bytes[i]) | (static_cast<uint8_t>(bytes[i + 1]) << 8));
      }
      const std::string text = *(*tok)->Decode(ids);
      for (size_t p = text.find("Product: "); p != std::string::npos;
           p = text.find("Product: ", p + 1)) {
        names.insert(text.substr(p, text.find('\n', p) - p));
      }
    }
    return names;
  };
  std::set<std::string> train = products("train"), val = products("val");
  EXPECT_GT(train.size(), 10u);
  EXPECT_GT(val.size(), 0u);
  for (const std::string& v : val) EXPECT_EQ(train.count(v), 0u) << v;

  // The held-out task inputs are validation products and businesses only, with their human text.
  auto tasks = LoadEvalTasks(tmp_.File("out/") + kEvalTasksFile);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_GT(tasks->size(), 5u);
  int descriptions = 0, reviews = 0;
  for (const EvalTask& t : *tasks) {
    EXPECT_FALSE(t.reference.empty());
    if (t.kind == "product_description") {
      ++descriptions;
      EXPECT_EQ(train.count("Product: " + t.title), 0u) << t.title;
      EXPECT_FALSE(t.features.empty());
    } else {
      ++reviews;
      EXPECT_GE(t.rating, 1);
      EXPECT_LE(t.rating, 5);
      if (!t.title.empty()) {
        EXPECT_EQ(train.count("Product: " + t.title), 0u) << t.title;
      }
    }
  }
  EXPECT_GT(descriptions, 0);
  EXPECT_GT(reviews, 0);

  // The copy index holds the training text: a training document is copied whole, text that
  // never occurs is not copied at all.
  auto index = NgramIndex::Load(tmp_.File("out/") + kCopyIndexFile);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->n(), 8);
  const std::string bytes = *ReadFile(tmp_.File("out/pretrain/train_00000.bin"));
  std::vector<int32_t> first;
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
    const int32_t id = static_cast<uint8_t>(bytes[i]) | (static_cast<uint8_t>(bytes[i + 1]) << 8);
    if (id == 50256) break;
    first.push_back(id);
  }
  ASSERT_GE(first.size(), 8u);
  EXPECT_EQ(index->LongestCopiedRun(first), static_cast<int64_t>(first.size()));
  const std::vector<int32_t> unseen = (*tok)->Encode(
      "Zebra quantum marmalade xylophone "
      "octopus lantern velvet glacier orbit");
  EXPECT_EQ(index->LongestCopiedRun(unseen), 0);
  // Half copied: the run is the copied part.
  std::vector<int32_t> mixed(unseen.begin(), unseen.end());
  mixed.insert(mixed.end(), first.begin(), first.begin() + 8);
  EXPECT_EQ(index->LongestCopiedRun(mixed), 8);
}

TEST(NgramIndexTest, RoundTripAndCorruptFilesAreNamed) {
  testing::TempDir tmp;
  NgramIndexBuilder b(4);
  b.Add({1, 2, 3, 4, 5, 6});
  b.Add({1, 2, 3});  // shorter than a window: nothing
  b.Add({1, 2, 3, 4, 5, 6});
  auto n = b.Write(tmp.File("ngrams.bin"));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3);
  auto index = NgramIndex::Load(tmp.File("ngrams.bin"));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->LongestCopiedRun({9, 1, 2, 3, 4, 5, 6, 9}), 6);
  EXPECT_EQ(index->LongestCopiedRun({9, 2, 3, 4, 5, 9, 1, 2, 3}), 4);
  EXPECT_EQ(index->LongestCopiedRun({1, 2, 3}), 0);
  std::string bytes = *ReadFile(tmp.File("ngrams.bin"));
  testing::WriteTestFile(tmp.File("short.bin"), bytes.substr(0, bytes.size() - 3));
  auto bad = NgramIndex::Load(tmp.File("short.bin"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("short.bin"), std::string::npos);
  testing::WriteTestFile(tmp.File("tasks.jsonl"),
                         "{\"kind\":\"review\",\"reference\":\"x\"}\n[1]\n");
  auto tasks = LoadEvalTasks(tmp.File("tasks.jsonl"));
  EXPECT_NE(tasks.status().message().find("tasks.jsonl:2"), std::string::npos) << tasks.status();
}

TEST_F(PrepareTest, FiltersDropAndCountByReason) {
  testing::WriteTestFile(
      tmp_.File("f.csv"),
      "text,title\n"
      "\"This kettle boils water fast and the handle stays cool, which I like a lot.\",Good\n"
      "\"Dieser Wasserkocher kocht schnell und der Griff bleibt kalt, sehr gut gemacht.\",Gut\n"
      "Too short.,x\n"
      "\"   <br />  \",empty\n");
  PrepareOptions o = Options("f", 1);
  o.inputs = {{tmp_.File("f.csv"), Format::kAuto}};
  o.csv = {"text", "title", "", ""};
  o.language = "en";
  o.finetune = false;
  auto s = RunPrepare(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->records, 4);
  EXPECT_EQ(s->kept, 1);
  EXPECT_EQ(s->filtered, 1);
  EXPECT_EQ(s->too_short, 1);
  EXPECT_EQ(s->empty, 1);
}

TEST_F(PrepareTest, FailedRunLeavesNothingNamed) {
  // A truncated gzip input after good ones makes the run fail part-way.
  const std::string good = *ReadFile(tmp_.File("data/amazon2018/Sample.json.gz"));
  testing::WriteTestFile(tmp_.File("data/amazon2018/zz_broken.json.gz"),
                         good.substr(0, good.size() / 2));
  auto r = RunPrepare(Options("out", 2));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("zz_broken.json.gz"), std::string_view::npos) << r.status();
  EXPECT_FALSE(fs::exists(tmp_.File("out")));
  for (const auto& e : fs::directory_iterator(tmp_.path())) {
    EXPECT_EQ(e.path().filename().string().find("out.tmp"), std::string::npos)
        << "staging left behind";
  }
}

TEST_F(PrepareTest, BadConfigAndInputsAreNamed) {
  testing::WriteTestFile(tmp_.File("bad.yaml"), "inputs: [a.json]\nfilters:\n  min_char: 5\n");
  auto c = PrepareOptions::FromYamlFile(tmp_.File("bad.yaml"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad.yaml:3"), std::string_view::npos) << c.status();
  EXPECT_NE(c.status().message().find("min_char"), std::string_view::npos);

  PrepareOptions o = Options("out", 1);
  o.csv.id = "sku";
  auto r = RunPrepare(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"sku\""), std::string_view::npos) << r.status();
  EXPECT_NE(r.status().message().find("reviews.csv"), std::string_view::npos) << r.status();

  o = Options("out", 1);
  o.inputs = {{tmp_.File("nothing-*.json"), Format::kAuto}};
  r = RunPrepare(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nothing-*.json"), std::string_view::npos);
}

}  // namespace
}  // namespace copyforge
