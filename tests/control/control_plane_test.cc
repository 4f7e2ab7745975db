// The control plane with real processes on loopback: `copyforge coordinator` on an ephemeral port,
// `copyforge worker`s running real trainers, and gRPC clients. Failures are injected by pid
// (SIGKILL, SIGSTOP) and the tests check the job still SUCCEEDS from its checkpoints.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <thread>

#include "control.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/control/fake_worker.h"
#include "tests/test_util.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/file_util.h"
#include "trainer/data/prepare.h"
#include "trainer/data/sample_corpus.h"
#include "trainer/train/trainer.h"

namespace copyforge {
namespace {

using Clock = std::chrono::steady_clock;

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::PrepareTinyTrainingSetup(tmp_.path());
    StartCoordinator();
  }

  void StartCoordinator() {
    std::filesystem::remove(tmp_.File("port"));
    std::vector<std::string> args = {bin_,
                                     "coordinator",
                                     "--state-dir",
                                     tmp_.File("state"),
                                     "--port-file",
                                     tmp_.File("port"),
                                     "--heartbeat-timeout",
                                     "3",
                                     "--heartbeat-interval-ms",
                                     "200",
                                     "--port",
                                     std::to_string(port_),
                                     "--storage-root",
                                     tmp_.path()};
    coordinator_ = std::make_unique<testing::Process>(args, tmp_.File("coordinator.log"));
    for (int i = 0; i < 200 && !std::filesystem::exists(tmp_.File("port")); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto text = ReadFile(tmp_.File("port"));
    ASSERT_TRUE(text.ok()) << Log("coordinator.log");
    port_ = std::stoi(*text);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                       grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel);
    workers_ = v1::WorkerService::NewStub(channel);
    checkpoints_ = v1::CheckpointService::NewStub(channel);
  }

  std::unique_ptr<testing::Process> StartWorker(const std::string& id) {
    return std::make_unique<testing::Process>(
        std::vector<std::string>{bin_, "worker", "--coordinator",
                                 "127.0.0.1:" + std::to_string(port_), "--workdir",
                                 tmp_.File("work-" + id), "--id", id, "--threads", "1"},
        tmp_.File(id + ".log"));
  }

  // The train section every test uses; `extra` adds keys.
  std::string TrainYaml(int steps, const std::string& out) const {
    return "  model: " + tmp_.File("model.yaml") + "\n  data: " + tmp_.File("shards") +
           "\n  out: \"" + out + "\"" +
           "\n  seq_len: 32\n  batch_size: 2\n  steps: " + std::to_string(steps) +
           "\n  optimizer:\n    lr: 1.0e-2\n    warmup_steps: 2\n  eval:\n    interval: 0\n"
           "  checkpoint:\n    interval: 5\n    keep: 20\n  dist:\n    timeout_s: 5\n"
           "  threads: 1\n  log_interval: 1\n  init_seed: 7\n";
  }

  std::string Submit(const std::string& yaml, grpc::Status* status = nullptr) {
    grpc::ClientContext c;
    v1::SubmitJobRequest req;
    req.set_spec_yaml(yaml);
    v1::SubmitJobResponse resp;
    grpc::Status s = jobs_->SubmitJob(&c, req, &resp);
    if (status) *status = s;
    EXPECT_TRUE(status != nullptr || s.ok()) << s.error_message();
    return resp.job_id();
  }

  v1::Job Get(const std::string& id) {
    for (int attempt = 0; attempt < 100; ++attempt) {  // the coordinator may be restarting
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::GetJobRequest req;
      req.set_job_id(id);
      v1::Job job;
      if (jobs_->GetJob(&c, req, &job).ok()) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "GetJob " << id << " kept failing";
    return v1::Job();
  }

  // Polls until `done(job)` or `seconds` pass; returns the last job seen.
  template <typename Pred>
  v1::Job WaitFor(const std::string& id, Pred done, double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    v1::Job job;
    while (Clock::now() < deadline) {
      job = Get(id);
      if (done(job)) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "timed out; job is " << job.DebugString() << "\n" << Log("coordinator.log");
    return job;
  }

  std::string Log(const std::string& name) const {
    auto text = ReadFile(tmp_.File(name));
    return text.ok() ? name + ":\n" + *text : name + ": (none)";
  }

  // step -> loss from a run's metrics.jsonl (the last entry for a step wins).
  static std::map<int64_t, double> Losses(const std::string& path) {
    std::map<int64_t, double> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.contains("loss")) out[j["step"].get<int64_t>()] = j["loss"];
    }
    return out;
  }

  // Every registered checkpoint of the job still verifies against its manifest.
  void ExpectCheckpointsIntact(const std::string& id, int64_t last_step) {
    grpc::ClientContext c;
    v1::ListCheckpointsRequest req;
    req.set_job_id(id);
    v1::ListCheckpointsResponse resp;
    ASSERT_TRUE(checkpoints_->ListCheckpoints(&c, req, &resp).ok());
    ASSERT_GT(resp.checkpoints_size(), 0);
    EXPECT_EQ(resp.checkpoints(resp.checkpoints_size() - 1).step(), last_step);
    for (const v1::Checkpoint& ck : resp.checkpoints()) {
      EXPECT_TRUE(VerifyManifest(ck.path()).ok()) << ck.path();
      EXPECT_EQ(ck.manifest_sha256().size(), 64u);
    }
  }

  testing::TempDir tmp_;
  const std::string bin_ = testing::Env("COPYFORGE_BIN");
  int port_ = 0;
  std::unique_ptr<testing::Process> coordinator_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::CheckpointService::Stub> checkpoints_;
};

bool Ended(const v1::Job& j) {
  return j.state() == v1::SUCCEEDED || j.state() == v1::FAILED || j.state() == v1::CANCELLED;
}

// 1 coordinator + 2 workers train to SUCCEEDED, with the same loss curve as
// `copyforge train --nproc 2` on the same train config (same code path, same data order).
TEST_F(ControlPlaneTest, TwoWorkersTrainAJobLikeTrainNproc2) {
  auto w1 = StartWorker("w1");
  auto w2 = StartWorker("w2");
  const std::string id = Submit("name: two\nmin_workers: 2\nmax_workers: 2\ntrain:\n" +
                                TrainYaml(12, tmp_.File("run")));
  // Serving's view: WatchCheckpoints streams each checkpoint as it is registered.
  grpc::ClientContext watch_context;
  std::vector<int64_t> watched;
  std::thread watcher([&] {
    v1::WatchCheckpointsRequest req;
    req.set_job_id(id);
    auto reader = checkpoints_->WatchCheckpoints(&watch_context, req);
    v1::Checkpoint c;
    while (reader->Read(&c)) {
      watched.push_back(c.step());
      if (c.step() == 12) break;
    }
    watch_context.TryCancel();
    reader->Finish();
  });
  v1::Job job = WaitFor(id, Ended, 180);
  watcher.join();
  EXPECT_EQ(watched, (std::vector<int64_t>{5, 10, 12}));
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.reason() << Log("w1.log") << Log("w2.log");
  EXPECT_EQ(job.generation(), 1);
  EXPECT_EQ(job.step(), 12);
  ExpectCheckpointsIntact(id, 12);
  // The user's view through the CLI.
  const std::string at = " --coordinator 127.0.0.1:" + std::to_string(port_) + " ";
  auto status = testing::RunCommand(bin_ + " status" + at + id + " --json");
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("\"state\":\"SUCCEEDED\""), std::string::npos) << status.out;
  auto table = testing::RunCommand(bin_ + " status" + at);
  EXPECT_NE(table.out.find(id), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("12/12"), std::string::npos) << table.out;
  auto watch = testing::RunCommand(bin_ + " watch" + at + id);
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_NE(watch.out.find("SUCCEEDED"), std::string::npos) << watch.out;
  testing::WriteTestFile(tmp_.File("bad.yaml"), "name: x\nmax_workers: 0\ntrain:\n  model: m\n");
  auto bad = testing::RunCommand(bin_ + " submit" + at + tmp_.File("bad.yaml"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT"), std::string::npos) << bad.err;
  auto missing = testing::RunCommand(bin_ + " status" + at + "job-missing");
  EXPECT_NE(missing.err.find("no job \"job-missing\""), std::string::npos) << missing.err;

  testing::WriteTestFile(tmp_.File("train.yaml"), [&] {
    std::string t = TrainYaml(12, tmp_.File("local"));
    std::string flat;  // un-indent the train section into a train config
    for (size_t pos = 0; pos < t.size();) {
      size_t end = t.find('\n', pos);
      flat += t.substr(pos + 2, end - pos - 2) + "\n";
      pos = end + 1;
    }
    return flat;
  }());
  auto local =
      testing::RunCommand(bin_ + " train --config " + tmp_.File("train.yaml") + " --nproc 2");
  ASSERT_EQ(local.exit_code, 0) << local.err;
  const auto a = Losses(tmp_.File("run/metrics.jsonl"));
  const auto b = Losses(tmp_.File("local/metrics.jsonl"));
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (const auto& [step, loss] : a) EXPECT_NEAR(loss, b.at(step), 1e-4) << "step " << step;
}

// SIGKILL a worker mid-job: the job recovers from its last checkpoint with the survivor
// (min_workers 1) and SUCCEEDS; training continues from the checkpoint's loss.
TEST_F(ControlPlaneTest, KilledWorkerJobRecoversFromCheckpoint) {
  auto w1 = StartWorker("w1");
  auto w2 = StartWorker("w2");
  const std::string id = Submit("name: kill\nmin_workers: 1\nmax_workers: 2\ntrain:\n" +
                                TrainYaml(40, tmp_.File("run")));
  v1::Job job = WaitFor(
      id, [](const v1::Job& j) { return !j.latest_checkpoint().empty() || Ended(j); }, 180);
  ASSERT_EQ(job.state(), v1::RUNNING) << job.reason();
  ASSERT_EQ(job.workers_size(), 2);
  const auto killed_at = Clock::now();
  w2->Signal(SIGKILL);
  job = WaitFor(
      id, [](const v1::Job& j) { return j.restarts() > 0 || Ended(j); }, 60);
  EXPECT_EQ(job.restarts(), 1) << job.reason();
  job = WaitFor(id, Ended, 240);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.reason() << Log("w1.log");
  EXPECT_GE(job.generation(), 2);
  std::printf("recovery: worker killed -> job SUCCEEDED after %.1f s\n",
              std::chrono::duration<double>(Clock::now() - killed_at).count());
  ExpectCheckpointsIntact(id, 40);
  // The restarted generation resumed from a checkpoint (the trainer marks each start in
  // metrics.jsonl): its first step follows the checkpoint's, and its loss is near the loss
  // before the failure, far below the initial ln(50257) ~ 10.8.
  std::ifstream in(tmp_.File("run/metrics.jsonl"));
  std::string line;
  std::vector<int64_t> starts;  // step at each start
  std::vector<std::pair<int64_t, double>> steps;
  size_t restart = 0;  // index in `steps` of the first step after the second start
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.value("event", "") == "start") {
      starts.push_back(j["step"].get<int64_t>());
      if (starts.size() == 2) restart = steps.size();
    } else if (j.contains("loss")) {
      steps.emplace_back(j["step"], j["loss"]);
    }
  }
  ASSERT_GE(starts.size(), 2u) << "no restarted generation in metrics.jsonl";
  EXPECT_EQ(starts[0], 0);
  const int64_t resumed = starts[1];
  EXPECT_EQ(resumed % 5, 0) << "resumed at step " << resumed;  // a checkpoint step
  EXPECT_GT(resumed, 0);
  ASSERT_LT(restart, steps.size());
  EXPECT_EQ(steps[restart].first, resumed + 1);
  double before = 0;
  for (size_t i = 0; i < restart; ++i) {
    if (steps[i].first == resumed) before = steps[i].second;
  }
  EXPECT_LT(std::abs(steps[restart].second - before), 1.0)
      << "loss before " << before << " after " << steps[restart].second;
  EXPECT_LT(steps[restart].second, steps[0].second - 0.3);
}

// SIGKILL the coordinator mid-job and start it again on the same state directory and port: the
// job and its checkpoints are still there, the workers reconnect, and the job SUCCEEDS.
TEST_F(ControlPlaneTest, CoordinatorRestartLosesNothing) {
  auto w1 = StartWorker("w1");
  const std::string id = Submit("name: restart\nmin_workers: 1\nmax_workers: 1\ntrain:\n" +
                                TrainYaml(30, tmp_.File("run")));
  v1::Job job = WaitFor(
      id, [](const v1::Job& j) { return !j.latest_checkpoint().empty() || Ended(j); }, 180);
  ASSERT_EQ(job.state(), v1::RUNNING) << job.reason();
  const std::string checkpoint = job.latest_checkpoint();
  // A job that never gets its workers, submitted with an idempotency key.
  auto submit_keyed = [&] {
    grpc::ClientContext c;
    v1::SubmitJobRequest req;
    req.set_spec_yaml("name: waits\nmin_workers: 5\nmax_workers: 5\ntrain:\n" +
                      TrainYaml(5, tmp_.File("run2")));
    req.set_idempotency_key("key-restart");
    v1::SubmitJobResponse resp;
    EXPECT_TRUE(jobs_->SubmitJob(&c, req, &resp).ok());
    return resp;
  };
  const std::string keyed = submit_keyed().job_id();
  coordinator_->Signal(SIGKILL);
  coordinator_->Wait();
  StartCoordinator();
  // The idempotency key survives the restart.
  const v1::SubmitJobResponse again = submit_keyed();
  EXPECT_EQ(again.job_id(), keyed);
  EXPECT_TRUE(again.existing());
  job = Get(id);
  EXPECT_EQ(job.name(), "restart");
  EXPECT_FALSE(job.latest_checkpoint().empty());
  job = WaitFor(id, Ended, 240);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.reason() << Log("w1.log");
  // The worker re-registered with its running generation and was adopted: no restart.
  EXPECT_EQ(job.restarts(), 0) << Log("coordinator.log") << Log("w1.log");
  EXPECT_EQ(job.generation(), 1);
  ExpectCheckpointsIntact(id, 30);
}

// A worker that stops heartbeating without dying (SIGSTOP) is declared dead after the heartbeat
// timeout; the job restarts without it and SUCCEEDS.
TEST_F(ControlPlaneTest, PausedWorkerIsDetectedAndReplaced) {
  auto w1 = StartWorker("w1");
  auto w2 = StartWorker("w2");
  const std::string id = Submit("name: pause\nmin_workers: 1\nmax_workers: 2\ntrain:\n" +
                                TrainYaml(30, tmp_.File("run")));
  v1::Job job = WaitFor(
      id, [](const v1::Job& j) { return !j.latest_checkpoint().empty() || Ended(j); }, 180);
  ASSERT_EQ(job.workers_size(), 2) << job.reason();
  w2->Signal(SIGSTOP);
  job = WaitFor(
      id, [](const v1::Job& j) { return j.restarts() > 0 || Ended(j); }, 60);
  EXPECT_NE(job.reason().find("w2"), std::string::npos) << job.reason();
  job = WaitFor(id, Ended, 240);
  w2->Signal(SIGCONT);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.reason() << Log("w1.log");
  ExpectCheckpointsIntact(id, 30);
}

// SIGTERM to a worker: it stops its trainer, tells the coordinator and exits 0; the job goes on
// without it.
TEST_F(ControlPlaneTest, SigtermedWorkerLeavesCleanly) {
  auto w1 = StartWorker("w1");
  auto w2 = StartWorker("w2");
  // A run directory whose name YAML would cut short ("#" starts a comment) reaches the trainers
  // as it is.
  const std::string run = tmp_.File("run #2");
  const std::string id =
      Submit("name: leave\nmin_workers: 1\nmax_workers: 2\ntrain:\n" + TrainYaml(25, run));
  v1::Job job = WaitFor(
      id, [](const v1::Job& j) { return !j.latest_checkpoint().empty() || Ended(j); }, 180);
  ASSERT_EQ(job.workers_size(), 2) << job.reason();
  w2->Signal(SIGTERM);
  const int status = w2->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << Log("w2.log");
  job = WaitFor(
      id, [](const v1::Job& j) { return j.restarts() > 0 || Ended(j); }, 60);
  EXPECT_NE(Log("coordinator.log").find("worker w2 (rank 1) left (SIGTERM)"), std::string::npos)
      << Log("coordinator.log");
  job = WaitFor(id, Ended, 240);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.reason() << Log("w1.log");
  EXPECT_EQ(ListCheckpoints(run).size(), 5u) << run;
  EXPECT_FALSE(std::filesystem::exists(tmp_.File("run"))) << "the path was cut at the '#'";
}

// A diverging job fails with the trainer's reason (the step whose loss was not finite); its
// worker survives and is idle again.
TEST_F(ControlPlaneTest, DivergedTrainingFailsTheJobAndTheWorkerSurvives) {
  auto w1 = StartWorker("w1");
  std::string train = TrainYaml(20, tmp_.File("run"));
  const std::string lr = "lr: 1.0e-2\n    warmup_steps: 2";
  train.replace(train.find(lr), lr.size(), "lr: 1.0e+30\n    min_lr: 0\n    warmup_steps: 0");
  const std::string id =
      Submit("name: nan\nmax_restarts: 1\nrecovery_timeout_s: 30\ntrain:\n" + train);
  const v1::Job job = WaitFor(id, Ended, 180);
  ASSERT_EQ(job.state(), v1::FAILED) << job.reason() << Log("w1.log");
  EXPECT_NE(job.reason().find("not finite"), std::string::npos) << job.reason();
  // The trainer's status record says a restart would diverge again: no restart is spent.
  EXPECT_EQ(job.restarts(), 0) << job.reason();
  int status = 0;
  EXPECT_EQ(::waitpid(w1->pid(), &status, WNOHANG), 0) << "the worker died" << Log("w1.log");
  EXPECT_EQ(Log("w1.log").find("terminate called"), std::string::npos) << Log("w1.log");
}

// The API without trainers: argument errors, idempotency, and the rendezvous races (a duplicate
// registration, a worker restarting under the same id, a heartbeat from an old generation).
TEST_F(ControlPlaneTest, ApiErrorsAndRendezvousRaces) {
  grpc::Status status;
  Submit("name: bad\ntrain:\n  model: m.yaml\n  data: d\n  out: o\n  bogus_key: 1\n", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("spec_yaml:6"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("bogus_key"), std::string::npos);
  Submit("name: bad\nmin_workers: two\ntrain:\n  model: m\n", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("spec_yaml:2: key \"min_workers\""), std::string::npos)
      << status.error_message();
  {
    grpc::ClientContext c;
    v1::GetJobRequest req;
    req.set_job_id("job-nope");
    v1::Job job;
    EXPECT_EQ(jobs_->GetJob(&c, req, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  std::string first, again;
  testing::FakeWorker fake(workers_.get(), "fake");
  auto beat = [&](testing::FakeWorker& w, v1::WorkerPhase phase, int64_t gen) {
    v1::HeartbeatResponse resp;
    const grpc::Status st = w.Beat(phase, first, gen, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  };
  // A live worker id belongs to its session: registering it again without that session is
  // refused; with it, the newer incarnation wins and the older one is told to re-register.
  ASSERT_TRUE(fake.Register().ok());
  const int64_t old_inc = fake.incarnation;
  testing::FakeWorker impostor(workers_.get(), "fake");
  EXPECT_EQ(impostor.Register().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(fake.Register(fake.session).ok());
  EXPECT_NE(old_inc, fake.incarnation);
  {
    testing::FakeWorker stale = fake;
    stale.incarnation = old_inc;
    EXPECT_EQ(beat(stale, v1::IDLE, 0).action(), v1::HeartbeatResponse::REREGISTER);
  }
  // Now a job for it (submitted twice with one idempotency key).
  const std::string spec =
      "name: api\nmin_workers: 1\nmax_workers: 1\ntrain:\n" + TrainYaml(10, tmp_.File("run"));
  for (std::string* out : {&first, &again}) {
    grpc::ClientContext c;
    v1::SubmitJobRequest req;
    req.set_spec_yaml(spec);
    req.set_idempotency_key("key-1");
    v1::SubmitJobResponse resp;
    ASSERT_TRUE(jobs_->SubmitJob(&c, req, &resp).ok());
    *out = resp.job_id();
  }
  EXPECT_EQ(first, again);

  // The idle worker is assigned rank 0 of the first generation.
  v1::Assignment a;
  ASSERT_TRUE(fake.AwaitStart(&a));
  EXPECT_EQ(a.job_id(), first);
  EXPECT_EQ(a.rank(), 0);
  EXPECT_EQ(a.world(), 1);
  const int64_t gen = a.generation();
  // A late second worker is not added to the running generation.
  testing::FakeWorker late(workers_.get(), "late");
  ASSERT_TRUE(late.Register().ok());
  EXPECT_EQ(beat(late, v1::IDLE, 0).action(), v1::HeartbeatResponse::NONE);
  EXPECT_EQ(Get(first).workers_size(), 1);
  // A heartbeat claiming an old generation is told to abort.
  EXPECT_EQ(beat(fake, v1::TRAINING, gen - 1).action(), v1::HeartbeatResponse::ABORT);
  EXPECT_EQ(beat(fake, v1::TRAINING, gen).action(), v1::HeartbeatResponse::NONE);
  // A checkpoint whose files do not match a manifest is refused.
  {
    const std::string dir = tmp_.File("run/checkpoints/step_0000005");
    std::filesystem::create_directories(dir);
    testing::WriteTestFile(dir + "/model.safetensors", "x");
    testing::WriteTestFile(dir + "/config.json", "{}");
    testing::WriteTestFile(
        dir + "/manifest.json",
        "{\"files\": {\"model.safetensors\": {\"bytes\": 1, \"sha256\": \"" + std::string(64, '0') +
            "\"}, \"config.json\": {\"bytes\": 2, \"sha256\": \"" + std::string(64, '0') + "\"}}}");
    const grpc::Status st = fake.RegisterCheckpoint(a, dir, 5);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DATA_LOSS) << st.error_message();
    EXPECT_NE(st.error_message().find("refused"), std::string::npos) << st.error_message();
    EXPECT_TRUE(Get(first).latest_checkpoint().empty());
  }
  // The worker restarts under the same id (its registration expires after the heartbeat
  // timeout): its generation is gone, the job recovers.
  testing::FakeWorker restarted(workers_.get(), "fake");
  grpc::Status registered;
  for (int i = 0; i < 100 && !(registered = restarted.Register()).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(registered.ok()) << registered.error_message();
  v1::Job job = WaitFor(
      first, [](const v1::Job& j) { return j.restarts() > 0; }, 10);
  EXPECT_EQ(job.restarts(), 1) << job.DebugString() << Log("coordinator.log");
  EXPECT_GT(job.generation(), gen);
  EXPECT_EQ(beat(restarted, v1::TRAINING, gen).action(), v1::HeartbeatResponse::ABORT);
  // Cancel: the job ends CANCELLED with a reason.
  {
    grpc::ClientContext c;
    v1::CancelJobRequest req;
    req.set_job_id(first);
    ASSERT_TRUE(jobs_->CancelJob(&c, req, &job).ok());
    EXPECT_EQ(job.state(), v1::CANCELLED);
    EXPECT_FALSE(job.reason().empty());
  }
}

// With token files, JobService and WorkerService callers need their own bearer token.
TEST_F(ControlPlaneTest, BearerTokensGuardTheServices) {
  testing::WriteTestFile(tmp_.File("job.token"), "s3cret-jobs\n");
  testing::WriteTestFile(tmp_.File("worker.token"), "s3cret-workers\n");
  testing::Process secured(
      {bin_, "coordinator", "--state-dir", tmp_.File("state2"), "--port-file", tmp_.File("port2"),
       "--job-token-file", tmp_.File("job.token"), "--worker-token-file", tmp_.File("worker.token"),
       "--storage-root", tmp_.path()},
      tmp_.File("secured.log"));
  for (int i = 0; i < 200 && !std::filesystem::exists(tmp_.File("port2")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string at = " --coordinator 127.0.0.1:" + *ReadFile(tmp_.File("port2"));
  auto denied = testing::RunCommand(bin_ + " status" + at.substr(0, at.size() - 1));
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_NE(denied.err.find("UNAUTHENTICATED"), std::string::npos) << denied.err;
  auto wrong = testing::RunCommand(bin_ + " status --token-file " + tmp_.File("worker.token") +
                                   at.substr(0, at.size() - 1));
  EXPECT_NE(wrong.err.find("UNAUTHENTICATED"), std::string::npos) << wrong.err;
  auto allowed = testing::RunCommand(bin_ + " status --token-file " + tmp_.File("job.token") +
                                     at.substr(0, at.size() - 1));
  EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  auto channel =
      grpc::CreateChannel(at.substr(15, at.size() - 16), grpc::InsecureChannelCredentials());
  auto workers = v1::WorkerService::NewStub(channel);
  grpc::ClientContext c;
  v1::RegisterWorkerRequest req;
  req.set_worker_id("w");
  v1::RegisterWorkerResponse resp;
  EXPECT_EQ(workers->RegisterWorker(&c, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace copyforge
