// The trust boundary, tried as a hostile client on loopback would: each test is an attack that
// worked before the coordinator had sessions, confinement and limits, and TLS end to end.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "control.grpc.pb.h"
#include "health.grpc.pb.h"
#include "tests/control/fake_worker.h"
#include "tests/test_util.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

namespace fs = std::filesystem;

class TrustBoundaryTest : public ::testing::Test {
 protected:
  // A coordinator confined to the test directory, with small limits.
  void StartCoordinator(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {bin_,
                                     "coordinator",
                                     "--state-dir",
                                     tmp_.File("state"),
                                     "--port-file",
                                     tmp_.File("port"),
                                     "--storage-root",
                                     tmp_.path(),
                                     "--heartbeat-timeout",
                                     "60",
                                     "--max-watch-streams",
                                     "1",
                                     "--max-spec-bytes",
                                     "4096"};
    args.insert(args.end(), extra.begin(), extra.end());
    coordinator_ = std::make_unique<testing::Process>(args, tmp_.File("coordinator.log"));
    const std::string port = testing::WaitForPortFile(tmp_.File("port"));
    ASSERT_FALSE(port.empty()) << Log("coordinator.log");
    address_ = "127.0.0.1:" + port;
    auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel);
    workers_ = v1::WorkerService::NewStub(channel);
  }

  grpc::Status Submit(const std::string& yaml, std::string* id = nullptr) {
    grpc::ClientContext c;
    v1::SubmitJobRequest req;
    req.set_spec_yaml(yaml);
    v1::SubmitJobResponse resp;
    const grpc::Status st = jobs_->SubmitJob(&c, req, &resp);
    if (id != nullptr) *id = resp.job_id();
    return st;
  }

  // A job writing to `out`, named `name` (default: a fresh name per call).
  std::string Spec(const std::string& out, int steps = 4, const std::string& data = "",
                   std::string name = "") {
    if (name.empty()) name = "t" + std::to_string(++specs_);
    return "name: " + name + "\ntrain:\n  model: " + tmp_.File("model.yaml") +
           "\n  data: " + (data.empty() ? tmp_.File("shards") : data) + "\n  out: \"" + out +
           "\"\n  steps: " + std::to_string(steps) + "\n";
  }

  v1::Job Get(const std::string& id) {
    grpc::ClientContext c;
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    EXPECT_TRUE(jobs_->GetJob(&c, req, &job).ok());
    return job;
  }

  // A real checkpoint (init-model) at `dir`.
  void MakeCheckpoint(const std::string& dir) {
    testing::WriteTestFile(tmp_.File("model.yaml"),
                           "n_layer: 1\nn_head: 2\nn_embd: 32\nn_positions: 64\n"
                           "vocab_size: 50257\ndropout: 0.0\n");
    auto r = testing::RunCommand(bin_ + " init-model --model-config " + tmp_.File("model.yaml") +
                                 " --seed 1 --tokenizer " +
                                 testing::Env("COPYFORGE_GPT2_TOKENIZER") + " --out " + dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::string Log(const std::string& name) const {
    auto text = ReadFile(tmp_.File(name));
    return text.ok() ? name + ":\n" + *text : name + ": (none)";
  }

  testing::TempDir tmp_;
  const std::string bin_ = testing::Env("COPYFORGE_BIN");
  int specs_ = 0;
  std::string address_;
  std::unique_ptr<testing::Process> coordinator_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

// Publishing a checkpoint, acting as another worker and claiming success all need to be the
// job's current rank 0, with its session, for a verified directory inside the run directory.
TEST_F(TrustBoundaryTest, OnlyTheCurrentRankZeroPublishesAndSucceeds) {
  // The checkpoints first: the fake rank 0 below does not heartbeat while the test runs (the
  // coordinator's heartbeat timeout is long enough for the whole test).
  const std::string run = tmp_.File("run/checkpoints");
  MakeCheckpoint(run + "/step_0000002");
  MakeCheckpoint(tmp_.File("elsewhere"));
  StartCoordinator();
  std::string id;
  ASSERT_TRUE(Submit(Spec(tmp_.File("run")), &id).ok());
  testing::FakeWorker rank0(workers_.get(), "w0");
  ASSERT_TRUE(rank0.Register().ok());
  v1::Assignment a;
  ASSERT_TRUE(rank0.AwaitStart(&a));
  ASSERT_EQ(a.rank(), 0);

  // Someone who never registered, and a registered worker outside the generation.
  testing::FakeWorker stranger(workers_.get(), "nobody");
  EXPECT_EQ(stranger.RegisterCheckpoint(a, run + "/step_0000002", 2).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  testing::FakeWorker idle(workers_.get(), "w1");
  ASSERT_TRUE(idle.Register().ok());
  EXPECT_EQ(idle.RegisterCheckpoint(a, run + "/step_0000002", 2).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Acting as rank 0 without its session: heartbeats, registrations, re-registration.
  testing::FakeWorker impostor = rank0;
  impostor.session = "guess";
  v1::HeartbeatResponse hb;
  EXPECT_EQ(impostor.Beat(v1::DONE, id, a.generation(), &hb).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(impostor.RegisterCheckpoint(a, run + "/step_0000002", 2).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  testing::FakeWorker hijack(workers_.get(), "w0");
  EXPECT_EQ(hijack.Register().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Get(id).state(), v1::RUNNING) << Get(id).reason();

  // Rank 0 itself: not outside the run directory, not through a symlink leading out.
  EXPECT_EQ(rank0.RegisterCheckpoint(a, tmp_.File("elsewhere"), 2).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  fs::create_directory_symlink(tmp_.File("elsewhere"), run + "/step_0000003");
  EXPECT_EQ(rank0.RegisterCheckpoint(a, run + "/step_0000003", 3).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(rank0.RegisterCheckpoint(a, run + "/../../elsewhere", 2).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A manifest that names a file outside its directory learns nothing about it.
  {
    const std::string dir = run + "/step_0000001";
    fs::create_directories(dir);
    testing::WriteTestFile(tmp_.File("secret"), "the secret");
    const std::string sha = Sha256Hex("the secret");
    testing::WriteTestFile(dir + "/manifest.json",
                           "{\"files\": {\"../../../secret\": {\"bytes\": 10, \"sha256\": \"" +
                               sha + "\"}, \"model.safetensors\": {}, \"config.json\": {}}}");
    const grpc::Status st = rank0.RegisterCheckpoint(a, dir, 1);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DATA_LOSS) << st.error_message();
    EXPECT_NE(st.error_message().find("not a plain file name"), std::string::npos)
        << st.error_message();
    EXPECT_EQ(st.error_message().find(sha), std::string::npos);
    // Required files, and sizes checked against the real files before anything is hashed.
    testing::WriteTestFile(dir + "/manifest.json", "{\"files\": {}}");
    EXPECT_NE(rank0.RegisterCheckpoint(a, dir, 1).error_message().find("model.safetensors"),
              std::string::npos);
  }
  // DONE alone proves nothing: with no verified checkpoint of the final step, the job fails.
  v1::Checkpoint stored;
  ASSERT_TRUE(rank0.RegisterCheckpoint(a, run + "/step_0000002", 2, &stored).ok());
  EXPECT_EQ(stored.manifest_sha256().size(), 64u);
  EXPECT_EQ(Get(id).latest_checkpoint(), run + "/step_0000002");
  ASSERT_TRUE(rank0.Beat(v1::DONE, id, a.generation(), &hb).ok());
  const v1::Job job = Get(id);
  EXPECT_EQ(job.state(), v1::FAILED) << job.reason();
  EXPECT_NE(job.reason().find("final step 4"), std::string::npos) << job.reason();
}

// Job paths resolve under the coordinator's roots; run directories are not shared.
TEST_F(TrustBoundaryTest, JobPathsAreConfinedAndRunDirectoriesExclusive) {
  StartCoordinator({"--max-jobs", "3"});
  auto refused = [&](const std::string& yaml, grpc::StatusCode code, const std::string& what) {
    const grpc::Status st = Submit(yaml);
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(what), std::string::npos) << st.error_message();
  };
  refused(Spec("/etc"), grpc::StatusCode::INVALID_ARGUMENT, "train.out \"/etc\" lies outside");
  refused(Spec(tmp_.File("run/../../etc")), grpc::StatusCode::INVALID_ARGUMENT, "\"..\"");
  refused(Spec(tmp_.File("run"), 4, "/var/lib"), grpc::StatusCode::INVALID_ARGUMENT, "train.data");
  fs::create_directory_symlink("/etc", tmp_.File("link"));
  refused(Spec(tmp_.File("link/run")), grpc::StatusCode::INVALID_ARGUMENT, "outside");
  // Found by the job_spec fuzzer: a complex YAML key threw past the parser and ended the process.
  refused("name: x\ntrain:\n  ? {a: 1}\n  : 2\n", grpc::StatusCode::INVALID_ARGUMENT,
          "a key must be a plain name");
  refused(Spec(tmp_.File("run")) + "# " + std::string(5000, 'x') + "\n",
          grpc::StatusCode::INVALID_ARGUMENT, "--max-spec-bytes");
  std::string first;
  ASSERT_TRUE(Submit(Spec(tmp_.File("run")), &first).ok());
  refused(Spec(tmp_.File("run")), grpc::StatusCode::FAILED_PRECONDITION, first);
  refused(Spec(tmp_.File("run/inner")), grpc::StatusCode::FAILED_PRECONDITION, "overlaps");
  // A relative path lies under the first root.
  std::string relative;
  ASSERT_TRUE(Submit(Spec("runs/relative", 4, "", "by-name"), &relative).ok());
  // Names are unique among live jobs, and every job call takes a name as well as an id.
  refused(Spec(tmp_.File("other"), 4, "", "by-name"), grpc::StatusCode::ALREADY_EXISTS, relative);
  EXPECT_EQ(Get("by-name").id(), relative);
  {
    grpc::ClientContext c;
    v1::CancelJobRequest req;
    req.set_job_id(first);
    v1::Job job;
    ASSERT_TRUE(jobs_->CancelJob(&c, req, &job).ok());
  }
  ASSERT_TRUE(Submit(Spec(tmp_.File("run"))).ok()) << "a cancelled job's run directory is free";
  refused(Spec(tmp_.File("run4")), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-jobs");
  // Watch streams are bounded (one here): a second watcher is told so at once.
  grpc::ClientContext watching;
  v1::WatchJobRequest req;
  req.set_job_id(relative);
  auto reader = jobs_->WatchJob(&watching, req);
  v1::Job seen;
  ASSERT_TRUE(reader->Read(&seen));
  grpc::ClientContext second;
  auto again = jobs_->WatchJob(&second, req);
  EXPECT_FALSE(again->Read(&seen));
  const grpc::Status st = again->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("--max-watch-streams"), std::string::npos);
  watching.TryCancel();
  reader->Finish();
}

// Bound to a non-loopback address, a server refuses to run open unless told --insecure.
TEST_F(TrustBoundaryTest, NonLoopbackServersRefuseToRunOpen) {
  auto r = testing::RunCommand(bin_ + " coordinator --host 0.0.0.0 --port 0 --state-dir " +
                               tmp_.File("s1") + " --storage-root " + tmp_.path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("refusing to listen on 0.0.0.0"), std::string::npos) << r.err;
  r = testing::RunCommand(bin_ + " serve --host 0.0.0.0 --checkpoint " + tmp_.File("none"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("refusing to listen on 0.0.0.0"), std::string::npos) << r.err;
  testing::Process open(
      {bin_, "coordinator", "--host", "0.0.0.0", "--insecure", "--port", "0", "--state-dir",
       tmp_.File("s2"), "--storage-root", tmp_.path(), "--port-file", tmp_.File("open.port")},
      tmp_.File("open.log"));
  const std::string open_port = testing::WaitForPortFile(tmp_.File("open.port"));
  ASSERT_FALSE(open_port.empty()) << Log("open.log");
  EXPECT_NE(Log("open.log").find("WARNING"), std::string::npos) << Log("open.log");
  // The coordinator answers grpc.health.v1 (its Kubernetes probes use it).
  {
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel("127.0.0.1:" + open_port, grpc::InsecureChannelCredentials()));
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&c, grpc::health::v1::HealthCheckRequest(), &resp).ok());
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  // Loopback runs open, saying so; no roots is an error naming the flags.
  r = testing::RunCommand(bin_ + " coordinator --port 0 --state-dir " + tmp_.File("s3"));
  EXPECT_NE(r.err.find("--storage-root"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace copyforge
