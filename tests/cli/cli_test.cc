// Runs the real copyforge binary end to end on a tiny model.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "trainer/checkpoint/manifest.h"
#include "trainer/checkpoint/run_dir.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

using testing::Env;
using testing::RunCommand;

std::string Bin() { return Env("COPYFORGE_BIN"); }
std::string Gpt2Tok() { return Env("COPYFORGE_GPT2_TOKENIZER"); }

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* cmd : {"", "tokenize", "train-tokenizer", "init-model", "eval", "generate",
                          "sample-data", "prepare", "train", "coordinator", "worker", "submit",
                          "status", "watch", "cancel", "serve"}) {
    auto r = RunCommand(Bin() + " " + cmd + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd;
  }
  auto r = RunCommand(Bin() + " no-such-role");
  EXPECT_NE(r.exit_code, 0);
}

// SIGTERM ends a run between steps: the checkpoints on disk all verify, no staging directory is
// left, and the status record says it was stopped (not a failure a restart would repeat).
TEST(Cli, TrainStopsCleanlyOnSigterm) {
  testing::TempDir tmp;
  testing::PrepareTinyTrainingSetup(tmp.path(), 120);
  const std::string run = tmp.File("run");
  testing::WriteTestFile(tmp.File("train.yaml"),
                         "model: " + tmp.File("model.yaml") + "\ndata: " + tmp.File("shards") +
                             "\nout: " + run +
                             "\nseq_len: 32\nbatch_size: 2\nsteps: 100000\nthreads: 1\n"
                             "eval:\n  interval: 0\ncheckpoint:\n  interval: 2\n  keep: 50\n");
  testing::Process train({Bin(), "train", "--config", tmp.File("train.yaml"), "--status-file",
                          tmp.File("status.json")},
                         tmp.File("train.log"));
  for (int i = 0; i < 1200 && ListCheckpoints(run).size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(ListCheckpoints(run).size(), 2u) << *ReadFile(tmp.File("train.log"));
  train.Signal(SIGTERM);
  const int status = train.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  auto record = ReadFile(tmp.File("status.json"));
  ASSERT_TRUE(record.ok());
  const auto j = nlohmann::json::parse(*record);
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_EQ(j["code"], "CANCELLED");
  EXPECT_FALSE(j["permanent"].get<bool>());
  EXPECT_NE(j["message"].get<std::string>().find("stopped by a signal"), std::string::npos);
  for (const auto& e : std::filesystem::directory_iterator(run + "/checkpoints")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
  for (const std::string& dir : ListCheckpoints(run)) {
    EXPECT_TRUE(VerifyManifest(dir).ok()) << dir;
  }
}

TEST(Cli, TokenizeAndDecodeRoundTrip) {
  testing::TempDir tmp;
  const std::string text = "Great blender, 5 stars! <|endoftext|> Would buy again.\n";
  testing::WriteTestFile(tmp.File("in.txt"), text);
  auto enc =
      RunCommand(Bin() + " tokenize --tokenizer " + Gpt2Tok() + " --input " + tmp.File("in.txt"));
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  auto ids = nlohmann::json::parse(enc.out);
  EXPECT_TRUE(std::find(ids.begin(), ids.end(), 50256) != ids.end());
  testing::WriteTestFile(tmp.File("ids.json"), enc.out);
  auto dec = RunCommand(Bin() + " tokenize --decode --tokenizer " + Gpt2Tok() + " --input " +
                        tmp.File("ids.json"));
  ASSERT_EQ(dec.exit_code, 0) << dec.err;
  EXPECT_EQ(dec.out, text);

  testing::WriteTestFile(tmp.File("bad.json"), "[1, \"x\"]");
  auto bad = RunCommand(Bin() + " tokenize --decode --tokenizer " + Gpt2Tok() + " --input " +
                        tmp.File("bad.json"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("bad.json: element 1"), std::string::npos) << bad.err;
}

TEST(Cli, TrainTokenizerIsDeterministic) {
  testing::TempDir tmp;
  std::string corpus;
  for (int i = 0; i < 50; ++i)
    corpus += "The headphones sound great and the battery lasts all day. ";
  testing::WriteTestFile(tmp.File("c.txt"), corpus);
  for (const char* out : {"a", "b"}) {
    auto r = RunCommand(Bin() + " train-tokenizer --input " + tmp.File("c.txt") +
                        " --vocab-size 300 --out " + tmp.File(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // 13 distinct pieces run out of pairs after 42 merges, before the requested 300 tokens.
    EXPECT_NE(r.out.find("vocab size       299 (stopped early"), std::string::npos) << r.out;
  }
  EXPECT_EQ(*ReadFile(tmp.File("a/vocab.json")), *ReadFile(tmp.File("b/vocab.json")));
  EXPECT_EQ(*ReadFile(tmp.File("a/merges.txt")), *ReadFile(tmp.File("b/merges.txt")));
  auto again = RunCommand(Bin() + " train-tokenizer --input " + tmp.File("c.txt") +
                          " --vocab-size 300 --out " + tmp.File("a"));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("--overwrite"), std::string::npos) << again.err;
}

TEST(Cli, InitEvalGenerate) {
  testing::TempDir tmp;
  const std::string ckpt = tmp.File("ckpt");
  const std::string config = Env("COPYFORGE_SOURCE_DIR") + "/configs/model/tiny.yaml";
  auto init = RunCommand(Bin() + " init-model --model-config " + config + " --seed 3 --tokenizer " +
                         Gpt2Tok() + " --out " + ckpt);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  for (const char* f :
       {"model.safetensors", "config.json", "vocab.json", "merges.txt", "manifest.json"}) {
    EXPECT_TRUE(std::filesystem::exists(ckpt + "/" + f)) << f;
  }

  std::string text;
  for (int i = 0; i < 40; ++i)
    text += "This lamp is bright, sturdy and easy to assemble. Five stars.\n";
  testing::WriteTestFile(tmp.File("eval.txt"), text);
  auto ev = RunCommand(Bin() + " eval --threads 1 --checkpoint " + ckpt + " --text-file " +
                       tmp.File("eval.txt"));
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  auto j = nlohmann::json::parse(ev.out);
  EXPECT_GT(j["tokens"].get<int64_t>(), 300);
  // An untrained model is close to uniform over 50257 tokens: loss ~ ln(50257) = 10.8.
  EXPECT_NEAR(j["loss"].get<double>(), 10.82, 0.3);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(j["loss"].get<double>()),
              1e-6 * j["perplexity"].get<double>());

  const std::string gen = Bin() + " generate --threads 1 --checkpoint " + ckpt +
                          " --prompt 'This lamp' --max-new-tokens 12 --no-stop";
  auto a = RunCommand(gen + " --seed 7 --temperature 0.9 --top-k 50");
  auto b = RunCommand(gen + " --seed 7 --temperature 0.9 --top-k 50");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.rfind("This lamp", 0), 0u);
  auto greedy1 = RunCommand(gen + " --temperature 0 --seed 1");
  auto greedy2 = RunCommand(gen + " --temperature 0 --seed 2 --stream");
  EXPECT_EQ(greedy1.out, greedy2.out);

  // The device is explicit where asked for; one the build or machine lacks is an error naming it.
  auto on_cpu = RunCommand(gen + " --temperature 0 --device cpu");
  EXPECT_EQ(on_cpu.out, greedy1.out) << on_cpu.err;
  if (std::getenv("COPYFORGE_EXPECT_GPU") == nullptr) {
    for (const std::string& cmd : {gen + " --device cuda",
                                   Bin() + " eval --device cuda --checkpoint " + ckpt +
                                       " --text-file " + tmp.File("eval.txt"),
                                   Bin() + " serve --device cuda --port 0 --checkpoint " + ckpt}) {
      auto r = RunCommand(cmd);
      EXPECT_EQ(r.exit_code, 1) << cmd;
      EXPECT_NE(r.err.find("--device \"cuda\""), std::string::npos) << r.err;
    }
  }
  auto bad_device = RunCommand(gen + " --device tpu");
  EXPECT_EQ(bad_device.exit_code, 1);
  EXPECT_NE(bad_device.err.find("--device \"tpu\" is not auto, cpu, cuda"), std::string::npos)
      << bad_device.err;

  auto bad_top_p = RunCommand(gen + " --top-p 0");
  EXPECT_EQ(bad_top_p.exit_code, 1);
  EXPECT_NE(bad_top_p.err.find("top_p"), std::string::npos) << bad_top_p.err;
  auto missing = RunCommand(Bin() + " eval --checkpoint " + tmp.File("nope") + " --text-file " +
                            tmp.File("eval.txt"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;
}

// eval-tasks on the held-out inputs prepare wrote: the model (generated here and through a
// server), the human texts and a fresh model, every measure present; the human reviews agree
// with their stars and mention their products' attributes far more than random text does.
TEST(Cli, EvalTasksScoresModelHumanTextsAndAFreshModel) {
  testing::TempDir tmp;
  auto data = RunCommand(Bin() + " sample-data --records 600 --out " + tmp.File("raw"));
  ASSERT_EQ(data.exit_code, 0) << data.err;
  auto prep =
      RunCommand(Bin() + " prepare --tokenizer " + Gpt2Tok() + " --input '" + tmp.File("raw") +
                 "/amazon2023/*.jsonl' --input '" + tmp.File("raw") + "/yelp/*.json' --out " +
                 tmp.File("shards") + " --quiet --validation-ratio 0.3");
  ASSERT_EQ(prep.exit_code, 0) << prep.err;
  const std::string ckpt = tmp.File("ckpt");
  auto init =
      RunCommand(Bin() + " init-model --model-config " + Env("COPYFORGE_SOURCE_DIR") +
                 "/configs/model/tiny.yaml --seed 3 --tokenizer " + Gpt2Tok() + " --out " + ckpt);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const std::string eval = Bin() + " eval-tasks --checkpoint " + ckpt + " --data " +
                           tmp.File("shards") + " --count 4 --max-new-tokens 8 --threads 1";
  auto local = RunCommand(eval + " --json " + tmp.File("local.json"));
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_NE(local.out.find("sentiment_agreement"), std::string::npos) << local.out;
  auto j = nlohmann::json::parse(*ReadFile(tmp.File("local.json")));
  for (const char* system : {"model", "human", "fresh_init"}) {
    ASSERT_TRUE(j["systems"].contains(system)) << system;
  }
  const auto& human = j["systems"]["human"];
  const auto& fresh = j["systems"]["fresh_init"];
  for (const char* m : {"distinct_1", "distinct_2", "repeated_4gram_rate", "template_leakage",
                        "pii_outputs", "copy_run_mean", "copied_16plus"}) {
    EXPECT_TRUE(j["systems"]["model"]["review"].contains(m)) << m;
    EXPECT_TRUE(j["systems"]["model"]["blog_post"].contains(m)) << m;
  }
  EXPECT_EQ(human["review"]["outputs"], 4);
  EXPECT_GE(human["review"]["sentiment_agreement"].get<double>(), 0.75);
  EXPECT_GT(human["product_description"]["attribute_coverage"].get<double>(),
            fresh["product_description"]["attribute_coverage"].get<double>() + 0.2);
  EXPECT_EQ(human["review"]["template_leakage"], 0.0);
  EXPECT_EQ(human["review"]["pii_outputs"], 0.0);
  EXPECT_EQ(j["examples"].size(), j["samples"].get<size_t>());

  // The same inputs through a server: the same seeds give the same outputs.
  testing::Process server(
      {Bin(), "serve", "--checkpoint", ckpt, "--threads", "1", "--port-file", tmp.File("port")},
      tmp.File("serve.log"));
  const std::string port = testing::WaitForPortFile(tmp.File("port"));
  ASSERT_FALSE(port.empty());
  auto remote = RunCommand(eval + " --no-lower-bound --server 127.0.0.1:" + port + " --json " +
                           tmp.File("remote.json"));
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  auto r = nlohmann::json::parse(*ReadFile(tmp.File("remote.json")));
  EXPECT_FALSE(r["systems"].contains("fresh_init"));
  for (size_t i = 0; i < j["examples"].size(); ++i) {
    EXPECT_EQ(r["examples"][i]["model"], j["examples"][i]["model"]) << i;
  }
  // A dataset without held-out inputs is named.
  auto missing =
      RunCommand(Bin() + " eval-tasks --checkpoint " + ckpt + " --data " + tmp.File("nowhere"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nowhere/eval/tasks.jsonl"), std::string::npos) << missing.err;
}

TEST(Cli, SampleDataThenPrepareWithTheShippedConfig) {
  testing::TempDir tmp;
  auto gen = RunCommand(Bin() + " sample-data --records 400 --seed 3 --out " +
                        tmp.File("build/demo/data"));
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_NE(gen.out.find("planted"), std::string::npos);
  // configs/data/sample.yaml names paths under build/demo relative to the working directory.
  const std::string config = Env("COPYFORGE_SOURCE_DIR") + "/configs/data/sample.yaml";
  const std::string cache = std::filesystem::path(Gpt2Tok()).parent_path().string();
  auto prep = RunCommand("cd " + tmp.path() + " && COPYFORGE_CACHE=" + cache + " " + Bin() +
                         " prepare --config " + config + " --threads 2");
  ASSERT_EQ(prep.exit_code, 0) << prep.err;
  for (const char* row : {"records read", "dropped: malformed", "dropped: near-duplicate",
                          "tokens written", "shards"}) {
    EXPECT_NE(prep.out.find(row), std::string::npos) << row << "\n" << prep.out;
  }
  EXPECT_NE(prep.err.find("prepare:"), std::string::npos);  // progress line
  EXPECT_TRUE(std::filesystem::exists(tmp.File("build/demo/shards/manifest.json")));
  EXPECT_TRUE(std::filesystem::exists(tmp.File("build/demo/shards/finetune/train_00000.mask")));

  // The minimal call: inputs, tokenizer and output only, formats detected.
  auto minimal =
      RunCommand(Bin() + " prepare --quiet --input '" + tmp.File("build/demo/data/yelp/*") +
                 "' --tokenizer " + Gpt2Tok() + " --out " + tmp.File("yelp-shards"));
  ASSERT_EQ(minimal.exit_code, 0) << minimal.err;

  // Bad input names the problem and writes nothing.
  testing::WriteTestFile(tmp.File("bad.yaml"),
                         "inputs: [x.json]\ntokenizer: t\nout: o\nshard_size: 5\n");
  auto bad = RunCommand(Bin() + " prepare --config " + tmp.File("bad.yaml"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("bad.yaml:4"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("shard_size"), std::string::npos) << bad.err;
}

// Kills prepare with SIGKILL part-way: the output directory is either absent or complete, never a
// manifest naming a missing or partial shard.
TEST(Cli, KilledPrepareLeavesNoNamedPartialShard) {
  testing::TempDir tmp;
  ASSERT_EQ(RunCommand(Bin() + " sample-data --records 20000 --out " + tmp.File("data")).exit_code,
            0);
  const std::string out = tmp.File("shards");
  for (const char* delay : {"0.3", "0.8"}) {
    RunCommand("(" + Bin() + " prepare --quiet --overwrite --input '" + tmp.File("data/*/*") +
               "' --csv-id product_id --tokenizer " + Gpt2Tok() + " --out " + out +
               " & pid=$!; sleep " + delay + "; kill -9 $pid; wait $pid)");
    if (!std::filesystem::exists(out)) continue;
    auto manifest = ReadFile(out + "/manifest.json");
    ASSERT_TRUE(manifest.ok()) << "output directory without a manifest";
    auto m = nlohmann::json::parse(*manifest);
    for (const auto& [dataset, splits] : m["datasets"].items()) {
      for (const auto& [split, info] : splits.items()) {
        for (const auto& shard : info["shards"]) {
          auto bytes = ReadFile(out + "/" + shard["file"].get<std::string>());
          ASSERT_TRUE(bytes.ok()) << shard["file"];
          EXPECT_EQ(Sha256Hex(*bytes), shard["sha256"]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace copyforge
