// The coordinator's pure parts, without processes: placement, path confinement, bearer tokens,
// the job store's transactions, and the torch-free records it shares with the trainer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include "coordinator/job_store.h"
#include "coordinator/placement.h"
#include "coordinator/storage_roots.h"
#include "protos/bearer_token.h"
#include "protos/rpc_security.h"
#include "tests/test_util.h"
#include "trainer/checkpoint/manifest.h"
#include "trainer/dist/rank_env.h"
#include "trainer/train/metrics_record.h"
#include "trainer/train/run_status.h"

namespace copyforge {
namespace {

namespace fs = std::filesystem;

TEST(Placement, PrefersTheJobsDeviceThenCoresThenId) {
  std::vector<IdleWorker> idle = {
      {"b", "cpu", 8}, {"a", "cpu", 8}, {"g1", "cuda:0", 4}, {"c", "cpu", 16}};
  EXPECT_EQ(PlaceJob(1, 2, "cpu", idle), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(PlaceJob(1, 1, "cuda", idle), (std::vector<std::string>{"g1"}));
  EXPECT_EQ(PlaceJob(1, 8, "auto", idle), (std::vector<std::string>{"c", "a", "b", "g1"}));
  EXPECT_TRUE(PlaceJob(5, 8, "cpu", idle).empty()) << "fewer idle than min_workers";
  // The same inputs in any order give the same ranks.
  std::reverse(idle.begin(), idle.end());
  EXPECT_EQ(PlaceJob(1, 2, "cpu", idle), (std::vector<std::string>{"c", "a"}));
}

TEST(StorageRoots, ConfinesResolvedPaths) {
  testing::TempDir tmp;
  const std::string root = fs::canonical(tmp.path()).string();
  fs::create_directories(root + "/data");
  fs::create_directory_symlink("/etc", root + "/escape");
  const std::vector<std::string> roots = {root};
  EXPECT_EQ(*ConfinePath(root + "/data/x", roots, "train.data"), root + "/data/x");
  EXPECT_EQ(*ConfinePath(root + "/new/dir/", roots, "train.out"), root + "/new/dir");
  EXPECT_FALSE(ConfinePath(root + "/escape/passwd", roots, "f").ok());
  EXPECT_FALSE(ConfinePath(root + "/data/../data", roots, "f").ok());
  EXPECT_FALSE(ConfinePath("relative/path", roots, "f").ok());
  const absl::Status st = ConfinePath(root + "x/sibling", roots, "train.out").status();
  EXPECT_NE(st.message().find("train.out"), std::string::npos) << st;
  EXPECT_TRUE(PathsOverlap("/a/b", "/a/b/c"));
  EXPECT_TRUE(PathsOverlap("/a/b", "/a/b"));
  EXPECT_FALSE(PathsOverlap("/a/b", "/a/bc"));
  StorageRoots none;
  EXPECT_NE(none.Resolve().message().find("--storage-root"), std::string::npos);
  StorageRoots missing{{root + "/nope"}, {root}};
  EXPECT_NE(missing.Resolve().message().find("--data-root"), std::string::npos);
}

TEST(BearerToken, AcceptsAnyListedTokenAndFollowsTheFile) {
  testing::TempDir tmp;
  const std::string path = tmp.File("token");
  testing::WriteTestFile(path, "# rotation: new first\nnew-token\nold-token\n\n");
  auto file = TokenFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->Accepts("new-token"));
  EXPECT_TRUE((*file)->Accepts("old-token"));
  EXPECT_FALSE((*file)->Accepts("new-toke"));
  EXPECT_FALSE((*file)->Accepts(""));
  EXPECT_FALSE((*file)->Accepts("# rotation: new first"));
  EXPECT_EQ((*file)->Current(), "new-token");
  // Rewritten: the old token stops working without a restart.
  testing::WriteTestFile(path + ".tmp", "new-token\n");
  fs::rename(path + ".tmp", path);
  EXPECT_FALSE((*file)->Accepts("old-token"));
  EXPECT_TRUE((*file)->Accepts("new-token"));
  // Emptied or removed: nothing is accepted (fail closed).
  testing::WriteTestFile(path + ".tmp", "\n");
  fs::rename(path + ".tmp", path);
  EXPECT_FALSE((*file)->Accepts("new-token"));
  fs::remove(path);
  EXPECT_FALSE((*file)->Accepts("new-token"));
  EXPECT_FALSE(TokenFile::Open(tmp.File("absent")).ok());
}

TEST(RpcSecurity, ExposureRuleAndCredentialErrors) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.8.0.1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(CheckExposure("x", "0.0.0.0", false, true, false).ok());
  EXPECT_FALSE(CheckExposure("x", "0.0.0.0", true, false, false).ok());
  EXPECT_TRUE(CheckExposure("x", "0.0.0.0", true, true, false)->empty());
  EXPECT_NE(CheckExposure("x", "0.0.0.0", false, false, true)->find("WARNING"), std::string::npos);
  EXPECT_NE(CheckExposure("x", "127.0.0.1", false, false, false)->find("loopback"),
            std::string::npos);
  TlsFiles half;
  half.cert = "/nonexistent.pem";
  EXPECT_NE(MakeServerCredentials(half).status().message().find("--tls-key"), std::string::npos);
  TlsFiles missing{"/nonexistent.pem", "/nonexistent.key", "", ""};
  EXPECT_NE(MakeServerCredentials(missing).status().message().find("/nonexistent"),
            std::string::npos);
}

TEST(JobStore, ATransactionCommitsAllOrNothing) {
  testing::TempDir tmp;
  auto store = JobStore::Open(tmp.File("db.sqlite"));
  ASSERT_TRUE(store.ok());
  v1::Job job;
  job.set_id("job-1");
  v1::Checkpoint c;
  c.set_job_id("job-1");
  c.set_step(5);
  const absl::Status failed = (*store)->Transaction([&] {
    EXPECT_TRUE((*store)->PutCheckpoint(c).ok());
    return absl::InternalError("the second write failed");
  });
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE((*store)->LoadCheckpoints()->empty()) << "rolled back";
  ASSERT_TRUE((*store)
                  ->Transaction([&] {
                    if (absl::Status s = (*store)->PutCheckpoint(c); !s.ok()) return s;
                    return (*store)->PutJob(job, "");
                  })
                  .ok());
  EXPECT_EQ((*store)->LoadCheckpoints()->size(), 1u);
  EXPECT_EQ((*store)->LoadJobs()->size(), 1u);
}

TEST(Manifest, StrictAboutNamesSizesAndRequiredFiles) {
  testing::TempDir tmp;
  const std::string dir = tmp.File("ckpt");
  fs::create_directories(dir);
  testing::WriteTestFile(dir + "/model.safetensors", "weights");
  testing::WriteTestFile(dir + "/config.json", "{}");
  ASSERT_TRUE(WriteManifest(dir).ok());
  auto sha = VerifyManifest(dir);
  ASSERT_TRUE(sha.ok()) << sha.status();
  EXPECT_EQ(sha->size(), 64u);
  testing::WriteTestFile(dir + "/model.safetensors", "weightz");
  EXPECT_NE(VerifyManifest(dir).status().message().find("SHA-256 differs"), std::string::npos);
  testing::WriteTestFile(dir + "/model.safetensors", "longer weights");
  EXPECT_NE(VerifyManifest(dir).status().message().find("size differs"), std::string::npos);
  // A listed file that is a symlink is refused even when its target matches.
  testing::WriteTestFile(tmp.File("outside"), "{}");
  fs::remove(dir + "/config.json");
  fs::create_symlink(tmp.File("outside"), dir + "/config.json");
  testing::WriteTestFile(dir + "/model.safetensors", "weights");
  EXPECT_NE(VerifyManifest(dir).status().message().find("not a regular file"), std::string::npos);
  EXPECT_FALSE(IsPlainFileName("../x"));
  EXPECT_FALSE(IsPlainFileName("a/b"));
  EXPECT_FALSE(IsPlainFileName(".hidden"));
  EXPECT_FALSE(IsPlainFileName(std::string("a\0b", 3)));
  EXPECT_TRUE(IsPlainFileName("model.safetensors"));
  ManifestLimits tiny;
  tiny.max_manifest_bytes = 10;
  EXPECT_NE(VerifyManifest(dir, tiny).status().message().find("manifest limit"), std::string::npos);
}

TEST(RankEnv, RoundTripsAndRejectsMalformedValues) {
  ::unsetenv("COPYFORGE_RANK");
  EXPECT_FALSE(ReadRankEnv()->has_value());
  RankEnv env;
  env.rank = 1;
  env.world = 2;
  env.store_host = "10.0.0.3";
  env.store_port = 4242;
  ExportRankEnv(env);
  auto read = ReadRankEnv();
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->rank, 1);
  EXPECT_EQ((*read)->world, 2);
  EXPECT_EQ((*read)->store_host, "10.0.0.3");
  EXPECT_EQ((*read)->store_port, 4242);
  ::setenv("COPYFORGE_RANK", "2", 1);
  EXPECT_NE(ReadRankEnv().status().message().find("COPYFORGE_RANK"), std::string::npos);
  ::setenv("COPYFORGE_STORE_PORT", "http", 1);
  ::setenv("COPYFORGE_RANK", "0", 1);
  EXPECT_NE(ReadRankEnv().status().message().find("COPYFORGE_STORE_PORT"), std::string::npos);
  for (const char* v :
       {"COPYFORGE_RANK", "COPYFORGE_WORLD", "COPYFORGE_STORE_HOST", "COPYFORGE_STORE_PORT"}) {
    ::unsetenv(v);
  }
}

TEST(RunStatus, SaysWhetherARestartCouldHelp) {
  const RunStatus diverged =
      RunStatus::FromStatus(absl::DataLossError("training step 3: the loss is nan"), 2);
  EXPECT_TRUE(diverged.permanent);
  auto back = RunStatus::FromJson(diverged.ToJson(), "status.json");
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->ok);
  EXPECT_EQ(back->code, "DATA_LOSS");
  EXPECT_EQ(back->step, 2);
  EXPECT_TRUE(back->permanent);
  EXPECT_FALSE(RunStatus::FromStatus(absl::UnavailableError("peer lost"), 1).permanent);
  EXPECT_TRUE(RunStatus::FromStatus(absl::OkStatus(), 4).ok);
  EXPECT_FALSE(RunStatus::FromJson("{\"ok\": ", "s.json").ok());
  EXPECT_FALSE(RunStatus::FromJson("[1]", "s.json").ok());
}

TEST(MetricsRecord, RoundTripsEachKindAndNeverThrows) {
  MetricsRecord step;
  step.step = 7;
  step.loss = NAN;  // a diverged step is written as null
  step.tokens_per_s = 1234.5;
  step.eta_s = 3;
  const std::string line = step.ToJsonLine();
  EXPECT_NE(line.find("\"loss\":null"), std::string::npos) << line;
  auto back = MetricsRecord::Parse(line);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kind, MetricsRecord::Kind::kStep);
  EXPECT_EQ(back->step, 7);
  EXPECT_TRUE(std::isnan(back->loss));
  EXPECT_DOUBLE_EQ(back->tokens_per_s, 1234.5);
  MetricsRecord eval;
  eval.kind = MetricsRecord::Kind::kEval;
  eval.step = 10;
  eval.val_loss = 2.5;
  back = MetricsRecord::Parse(eval.ToJsonLine());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kind, MetricsRecord::Kind::kEval);
  EXPECT_DOUBLE_EQ(back->val_loss, 2.5);
  MetricsRecord start;
  start.kind = MetricsRecord::Kind::kStart;
  start.world = 2;
  start.resumed_from = "/runs/a/checkpoints/step_0000005";
  back = MetricsRecord::Parse(start.ToJsonLine());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kind, MetricsRecord::Kind::kStart);
  EXPECT_EQ(back->world, 2);
  EXPECT_EQ(back->resumed_from, start.resumed_from);
  for (const char* bad :
       {"", "{", "[1,2]", "null", "{\"step\": \"x\", \"loss\": 1}", "{\"step\": 3}",
        "{\"step\": -1, \"tokens_per_s\": 1}", "{\"step\": 1, \"tokens_per_s\": {\"a\": []}}"}) {
    auto r = MetricsRecord::Parse(bad);
    if (r) {
      EXPECT_TRUE(std::isnan(r->tokens_per_s)) << bad;  // wrong types read as NaN
    }
    if (std::string(bad).find("tokens_per_s\": {") == std::string::npos) {
      EXPECT_FALSE(r.has_value()) << bad;
    }
  }
}

}  // namespace
}  // namespace copyforge
