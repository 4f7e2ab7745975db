// The single-process trainer on shards prepared from the sample corpus.
#include "trainer/train/trainer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "tests/test_util.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/file_util.h"
#include "trainer/data/prepare.h"
#include "trainer/data/sample_corpus.h"
#include "trainer/train/schedule.h"
#include "trainer/train/shard_dataset.h"

namespace copyforge {
namespace {
namespace fs = std::filesystem;

// Shards and a small model config shared by the tests of this file (built once).
class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    SampleCorpusOptions corpus;
    corpus.records = 400;
    ASSERT_TRUE(WriteSampleCorpus(dir_->File("data"), corpus, false, nullptr).ok());
    PrepareOptions p;
    p.inputs = {{dir_->File("data/amazon2023/*"), Format::kAuto},
                {dir_->File("data/yelp/*"), Format::kAuto}};
    p.tokenizer = testing::Env("COPYFORGE_GPT2_TOKENIZER");
    p.out = dir_->File("shards");
    p.validation_ratio = 0.2;
    p.shard_tokens = 4096;
    p.show_progress = false;
    auto st = RunPrepare(p);
    ASSERT_TRUE(st.ok()) << st.status();
    // Dropout on, so resuming must also restore the random state.
    testing::WriteTestFile(
        dir_->File("model.yaml"),
        "n_layer: 2\nn_head: 2\nn_embd: 32\nn_positions: 64\nvocab_size: 50257\ndropout: 0.1\n");
  }
  static void TearDownTestSuite() { delete dir_; }

  TrainConfig Config(const std::string& out) {
    TrainConfig c;
    c.model = dir_->File("model.yaml");
    c.data = dir_->File("shards");
    c.seq_len = 32;
    c.batch_size = 4;
    c.grad_accum = 2;
    c.steps = 20;
    c.lr = 3e-3;
    c.warmup_steps = 4;
    c.eval_interval = 0;
    c.eval_batches = 2;
    c.out = dir_->File(out);
    c.checkpoint_interval = 0;
    c.threads = 1;
    return c;
  }
  static testing::TempDir* dir_;
};
testing::TempDir* TrainerTest::dir_ = nullptr;

std::vector<double> Losses(Trainer& t, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    auto s = t.Step();
    EXPECT_TRUE(s.ok()) << s.status();
    out.push_back(s.ok() ? s->loss : -1);
  }
  return out;
}

// A run that diverges fails at the first non-finite loss (or gradient norm), naming the step,
// instead of going on to train NaN weights.
TEST_F(TrainerTest, ANonFiniteLossFailsTheStepThatProducedIt) {
  TrainConfig c = Config("diverge");
  c.lr = 1e30;
  c.min_lr = 0;
  c.warmup_steps = 0;
  c.grad_clip = 0;
  auto t = Trainer::Create(c);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::Status failed;
  for (int i = 0; i < 10 && failed.ok(); ++i) {
    auto s = (*t)->Step();
    if (!s.ok()) failed = s.status();
  }
  ASSERT_FALSE(failed.ok()) << "ten steps at lr 1e30 stayed finite";
  EXPECT_NE(failed.message().find(absl::StrCat("training step ", (*t)->step() + 1, ": the ")),
            std::string::npos)
      << failed;
  EXPECT_NE(failed.message().find("not finite"), std::string::npos) << failed;
}

// A validation split shorter than one window is an error naming it at Create, not a division by
// zero at the first evaluation.
TEST_F(TrainerTest, ASplitTooSmallForOneSampleIsNamed) {
  auto val = ShardDataset::Open(dir_->File("shards"), "pretrain", "val", false);
  ASSERT_TRUE(val.ok()) << val.status();
  const int64_t tokens = (*val)->num_tokens();
  ASSERT_GE(tokens, 2);
  testing::WriteTestFile(dir_->File("long.yaml"),
                         "n_layer: 1\nn_head: 2\nn_embd: 16\nn_positions: " +
                             std::to_string(tokens + 8) + "\nvocab_size: 50257\n");
  TrainConfig c = Config("small_val");
  c.model = dir_->File("long.yaml");
  c.seq_len = tokens;  // the val split holds tokens - 1 targets: no full window
  c.steps = 1;
  c.grad_accum = 1;
  c.batch_size = 1;
  auto t = Trainer::Create(c);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("pretrain val split holds " + std::to_string(tokens) +
                                      " tokens, not one sample of seq_len"),
            std::string::npos)
      << t.status();
}

// Checkpoints sort by step number, not by name; staging directories are never checkpoints, and
// those of a process that is gone are removed.
TEST(RunDirectory, CheckpointsInStepOrderAndStaleStagingRemoved) {
  testing::TempDir tmp;
  const std::string ck = tmp.File("checkpoints");
  for (const char* d : {"step_9999999", "step_10000000", "step_0000100", "step_0000100.tmp-1-2",
                        "step_0000200.tmp-999999999-7", "step_12x", "other"}) {
    std::filesystem::create_directories(ck + "/" + d);
  }
  const std::string live = "step_0000300.tmp-" + std::to_string(::getpid()) + "-1";
  std::filesystem::create_directories(ck + "/" + live);
  EXPECT_EQ(ListCheckpoints(tmp.path()),
            (std::vector<std::string>{ck + "/step_0000100", ck + "/step_9999999",
                                      ck + "/step_10000000"}));
  EXPECT_EQ(*LatestCheckpoint(tmp.path()), ck + "/step_10000000");
  // pid 999999999 does not exist; pid 1 (init) and this process are alive.
  EXPECT_EQ(RemoveStaleStaging(tmp.path()), 1);
  EXPECT_FALSE(std::filesystem::exists(ck + "/step_0000200.tmp-999999999-7"));
  EXPECT_TRUE(std::filesystem::exists(ck + "/step_0000100.tmp-1-2"));
  EXPECT_TRUE(std::filesystem::exists(ck + "/" + live));
}

// --set reads YAML; --set-string takes the text as it is (what the worker passes on).
TEST(TrainConfigSet, SetStringKeepsTheTextVerbatim) {
  TrainConfig c;
  ASSERT_TRUE(c.Set("out=runs/run #2").ok());
  EXPECT_EQ(c.out, "runs/run");  // YAML: the rest is a comment
  ASSERT_TRUE(c.SetString("out=runs/run #2").ok());
  EXPECT_EQ(c.out, "runs/run #2");
  ASSERT_TRUE(c.SetString("out=~").ok());
  EXPECT_EQ(c.out, "~");
  ASSERT_TRUE(c.SetString("threads=3").ok());
  EXPECT_EQ(c.threads, 3);
  const absl::Status bad = c.SetString("threads=three");
  EXPECT_NE(bad.message().find("--set-string: key \"threads\""), std::string::npos) << bad;
  EXPECT_FALSE(c.SetString("nokey").ok());
}

TEST_F(TrainerTest, ResumeContinuesBitIdentically) {
  auto straight = Trainer::Create(Config("a"));
  ASSERT_TRUE(straight.ok()) << straight.status();
  const std::vector<double> want = Losses(**straight, 20);

  auto first = Trainer::Create(Config("b"));
  ASSERT_TRUE(first.ok());
  std::vector<double> got = Losses(**first, 10);
  auto saved = (*first)->SaveCheckpoint();
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_TRUE(fs::exists(*saved + "/training_state.pt"));
  first->reset();

  TrainConfig resume = Config("b");
  resume.resume = "latest";
  auto second = Trainer::Create(resume);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->step(), 10);
  for (double l : Losses(**second, 10)) got.push_back(l);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(got[i], want[i]) << "step " << i + 1;  // bit-identical
  EXPECT_LT(want.back(), want.front());
}

TEST_F(TrainerTest, RunWritesMetricsCheckpointsAndKeepsTheLastK) {
  TrainConfig c = Config("run");
  c.steps = 6;
  c.checkpoint_interval = 2;
  c.keep_checkpoints = 2;
  c.eval_interval = 3;
  auto t = Trainer::Create(c);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->Run().ok());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(c.out + "/checkpoints"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step_0000004", "step_0000006"}));
  EXPECT_TRUE(VerifyManifest(c.out + "/checkpoints/step_0000006").ok());
  const std::string metrics = *ReadFile(c.out + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"val_loss\""), std::string::npos);
  EXPECT_NE(metrics.find("\"mfu\""), std::string::npos);
  bool tfevents = false;
  for (const auto& e : fs::directory_iterator(c.out)) {
    tfevents |=
        e.path().filename().string().rfind("events.out.tfevents.", 0) == 0 && e.file_size() > 100;
  }
  EXPECT_TRUE(tfevents);
}

TEST_F(TrainerTest, FinetuneMasksThePrompt) {
  auto d = ShardDataset::Open(dir_->File("shards"), "finetune", "train", true);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE((*d)->has_mask());
  std::vector<int64_t> x(64), y(64);
  (*d)->GetSample(0, 64, x.data(), y.data());
  // A pair starts with its prompt: the first targets are ignored, later ones count.
  EXPECT_EQ(y[0], kIgnoreTarget);
  EXPECT_TRUE(std::any_of(y.begin(), y.end(), [](int64_t v) { return v != kIgnoreTarget; }));
  TrainConfig c = Config("ft");
  c.objective = "finetune";
  c.steps = 3;
  auto t = Trainer::Create(c);
  ASSERT_TRUE(t.ok()) << t.status();
  auto s = (*t)->Step();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->loss, 0);
}

TEST_F(TrainerTest, SamplerIsDeterministicAndDisjointAcrossRanks) {
  auto d = ShardDataset::Open(dir_->File("shards"), "pretrain", "train", false);
  ASSERT_TRUE(d.ok());
  std::vector<int64_t> a, b, t;
  BatchSampler s1(**d, 16, 1, 7, 0, 1, true), s2(**d, 16, 1, 7, 0, 1, true);
  s1.Next(&a, &t);
  s2.Next(&b, &t);
  EXPECT_EQ(a, b);
  BatchSampler r0(**d, 16, 1, 7, 0, 2, true), r1(**d, 16, 1, 7, 1, 2, true);
  std::set<int64_t> seen;
  for (int i = 0; i < r0.samples_per_epoch(); ++i) {
    EXPECT_TRUE(seen.insert(r0.NextIndex()).second);
    EXPECT_TRUE(seen.insert(r1.NextIndex()).second);
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), 2 * r0.samples_per_epoch());
  // The next epoch is a different permutation of the same samples.
  BatchSampler again(**d, 16, 1, 7, 0, 1, true);
  std::vector<int64_t> epoch0, epoch1;
  for (int i = 0; i < again.samples_per_epoch(); ++i) epoch0.push_back(again.NextIndex());
  for (int i = 0; i < again.samples_per_epoch(); ++i) epoch1.push_back(again.NextIndex());
  EXPECT_NE(epoch0, epoch1);
  std::sort(epoch0.begin(), epoch0.end());
  std::sort(epoch1.begin(), epoch1.end());
  EXPECT_EQ(epoch0, epoch1);
}

TEST(Schedule, WarmupThenCosineToTheFloor) {
  EXPECT_DOUBLE_EQ(ScheduledLr(0, 100, 10, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledLr(9, 100, 10, 1.0, 0.1), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLr(10, 100, 10, 1.0, 0.1), 1.0);
  EXPECT_NEAR(ScheduledLr(99, 100, 10, 1.0, 0.1), 0.1, 1e-12);
  EXPECT_GT(ScheduledLr(50, 100, 10, 1.0, 0.1), ScheduledLr(60, 100, 10, 1.0, 0.1));
}

TEST_F(TrainerTest, BadInputIsNamedBeforeAnyStep) {
  testing::WriteTestFile(dir_->File("bad.yaml"), "model: m.yaml\noptimizer:\n  learning_rate: 1\n");
  auto c = TrainConfig::FromYamlFile(dir_->File("bad.yaml"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad.yaml:3"), std::string_view::npos) << c.status();
  EXPECT_NE(c.status().message().find("optimizer.learning_rate"), std::string_view::npos);

  TrainConfig set = Config("x");
  EXPECT_NE(set.Set("optimizer.lr=abc").message().find("optimizer.lr"), std::string_view::npos);
  EXPECT_TRUE(set.Set("optimizer.lr=1e-4").ok());
  EXPECT_EQ(set.lr, 1e-4);

  TrainConfig missing = Config("x");
  missing.data = dir_->File("nowhere");
  auto t = Trainer::Create(missing);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("nowhere/manifest.json"), std::string_view::npos)
      << t.status();

  TrainConfig long_seq = Config("x");
  long_seq.seq_len = 100;
  t = Trainer::Create(long_seq);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("n_positions"), std::string_view::npos) << t.status();
}

}  // namespace
}  // namespace copyforge
