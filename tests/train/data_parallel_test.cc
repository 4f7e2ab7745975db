// `copyforge train --nproc 2` against one process: same parameters, and a dead rank fails the run.
#include <gtest/gtest.h>

#include <filesystem>

#include <thread>

#include "tests/test_util.h"
#include "trainer/checkpoint/safetensors.h"
#include "trainer/common/file_util.h"
#include "trainer/data/prepare.h"
#include "trainer/data/sample_corpus.h"
#include "trainer/device/device.h"
#include "trainer/dist/communicator.h"

namespace copyforge {
namespace {

class DataParallelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::PrepareTinyTrainingSetup(tmp_.path());
    testing::WriteTestFile(
        tmp_.File("train.yaml"),
        "model: " + tmp_.File("model.yaml") + "\ndata: " + tmp_.File("shards") +
            "\nseq_len: 32\nsteps: 4\noptimizer:\n  lr: 1.0e-3\n  warmup_steps: 1\n"
            "eval:\n  interval: 0\ncheckpoint:\n  interval: 0\nthreads: 1\n"
            "dist:\n  timeout_s: 10\n  bucket_mb: 0.5\n");
  }
  std::string Train(const std::string& args) {
    return testing::Env("COPYFORGE_BIN") + " train --config " + tmp_.File("train.yaml") + " " +
           args;
  }
  testing::TempDir tmp_;
};

// Tolerance: the two runs sum the same per-sample gradients in a different order (per rank, then
// across ranks, versus within one batch), so parameters agree to float32 rounding carried through
// four Adam steps.
TEST_F(DataParallelTest, TwoRanksOfBatchBMatchOneRankOfBatch2B) {
  auto two =
      testing::RunCommand(Train("--nproc 2 --set batch_size=2 --set out=" + tmp_.File("two")));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  auto one = testing::RunCommand(Train("--set batch_size=4 --set out=" + tmp_.File("one")));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto a = SafetensorsFile::Open(tmp_.File("two/checkpoints/step_0000004/model.safetensors"));
  auto b = SafetensorsFile::Open(tmp_.File("one/checkpoints/step_0000004/model.safetensors"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*a)->tensors().size(), (*b)->tensors().size());
  double max_diff = 0;
  bool changed = false;
  for (const TensorView& t : (*a)->tensors()) {
    const TensorView* u = (*b)->Find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    const auto* x = reinterpret_cast<const float*>(t.data);
    const auto* y = reinterpret_cast<const float*>(u->data);
    for (size_t i = 0; i < t.nbytes / 4; ++i)
      max_diff = std::max(max_diff, static_cast<double>(std::abs(x[i] - y[i])));
  }
  // Training moved the weights (a learning rate of 1e-3 for 4 steps), and both runs moved them
  // alike.
  auto init_step =
      testing::RunCommand(Train("--set batch_size=4 --set steps=1 --set out=" + tmp_.File("init")));
  ASSERT_EQ(init_step.exit_code, 0);
  auto c = SafetensorsFile::Open(tmp_.File("init/checkpoints/step_0000001/model.safetensors"));
  ASSERT_TRUE(c.ok());
  const TensorView* w0 = (*c)->Find("transformer.h.0.attn.c_attn.weight");
  const TensorView* w4 = (*b)->Find("transformer.h.0.attn.c_attn.weight");
  changed = std::memcmp(w0->data, w4->data, w0->nbytes) != 0;
  EXPECT_TRUE(changed);
  EXPECT_LT(max_diff, 1e-5);
  // Both ranks log the same, all-reduced loss; only rank 0 writes.
  EXPECT_NE(two.err.find("step 4/4"), std::string::npos) << two.err;
}

// An elastic restart resumes a 2-rank checkpoint with 1 rank: the data cursor is converted
// through the samples both ranks consumed (2 ranks x 2 steps x batch 2 = 8), so the single rank
// continues at sample 8 of the epoch instead of re-reading what rank 1 already trained on.
TEST_F(DataParallelTest, ResumeWithFewerRanksKeepsTheDataPosition) {
  auto two = testing::RunCommand(
      Train("--nproc 2 --set batch_size=2 --set steps=2 --set out=" + tmp_.File("two")));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  auto one =
      testing::RunCommand(Train("--set batch_size=2 --set steps=3 --set out=" + tmp_.File("one") +
                                " --resume " + tmp_.File("two/checkpoints/step_0000002")));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto saved = ReadFile(tmp_.File("two/checkpoints/step_0000002/training_state.json"));
  auto resumed = ReadFile(tmp_.File("one/checkpoints/step_0000003/training_state.json"));
  ASSERT_TRUE(saved.ok() && resumed.ok());
  EXPECT_NE(saved->find("\"position\": 4"), std::string::npos) << *saved;
  EXPECT_NE(saved->find("\"world\": 2"), std::string::npos) << *saved;
  EXPECT_NE(resumed->find("\"position\": 10"), std::string::npos) << *resumed;  // 8 + 2
  EXPECT_NE(resumed->find("\"world\": 1"), std::string::npos) << *resumed;
}

TEST_F(DataParallelTest, ADeadRankFailsTheRunInsteadOfHanging) {
  // Rank 1 is killed mid-run: the launcher reports it and stops rank 0.
  const std::string cmd =
      "(" +
      Train("--nproc 2 --set batch_size=2 --set steps=100000 --set out=" + tmp_.File("dead")) +
      " & launcher=$!; sleep 6; "
      "for p in $(pgrep -P $launcher); do if tr '\\0' '\\n' < /proc/$p/environ | grep -q "
      "'^COPYFORGE_RANK=1$'; "
      "then kill -9 $p; fi; done; wait $launcher)";
  auto r = testing::RunCommand(cmd);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("rank 1 was killed by signal 9"), std::string::npos) << r.err;
}

// Without a launcher to stop it, a rank whose peer never answers fails its collective after the
// timeout with an error naming the backend and rank.
TEST(Communicator, CollectiveWithADeadPeerTimesOut) {
  const int port = 29000 + static_cast<int>(::getpid() % 1000);
  CommunicatorOptions o;
  o.world = 2;
  o.store_port = port;
  o.timeout = std::chrono::milliseconds(3000);
  std::unique_ptr<Communicator> peer;
  std::thread t([&] {
    CommunicatorOptions p = o;
    p.rank = 1;
    auto c = CreateCommunicator(p);
    ASSERT_TRUE(c.ok()) << c.status();
    peer = *std::move(c);  // joins the group, then never takes part in a collective
  });
  auto c = CreateCommunicator(o);
  t.join();
  ASSERT_TRUE(c.ok()) << c.status();
  torch::Tensor x = torch::ones({4});
  // A working collective first: both ranks sum.
  std::thread both([&] {
    torch::Tensor y = torch::ones({4});
    ASSERT_TRUE(peer->AllReduceSum(y).ok());
  });
  ASSERT_TRUE((*c)->AllReduceSum(x).ok());
  both.join();
  EXPECT_EQ(x[0].item<float>(), 2.0f);
  const auto start = std::chrono::steady_clock::now();
  absl::Status st = (*c)->AllReduceSum(x);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("gloo rank 0"), std::string_view::npos) << st;
  EXPECT_LT(waited, 30.0);
}

// The NCCL backend: without a GPU (or in a build without NCCL) creating it is a clear error; with
// one, a single-rank communicator reduces device tensors of several dtypes in place (async,
// broadcast, barrier) and refuses CPU tensors.
TEST(Communicator, NcclNeedsAGpuAndSaysSo) {
  const int port = 30000 + static_cast<int>(::getpid() % 1000);
  auto nccl = CreateCommunicator(
      CommunicatorOptions{"nccl", 0, 1, "127.0.0.1", port, std::chrono::milliseconds(20000)});
#ifndef COPYFORGE_WITH_NCCL
  ASSERT_FALSE(nccl.ok());
  EXPECT_NE(nccl.status().message().find("not available in this build"), std::string_view::npos)
      << nccl.status();
  GTEST_SKIP() << "built without NCCL";
#else
  if (!nccl.ok()) {
    EXPECT_EQ(nccl.status().code(), absl::StatusCode::kFailedPrecondition) << nccl.status();
    EXPECT_NE(nccl.status().message().find("nccl rank 0: no CUDA device is visible"),
              std::string_view::npos)
        << nccl.status();
    EXPECT_NE(nccl.status().message().find("gloo"), std::string_view::npos) << nccl.status();
    GTEST_SKIP() << "no GPU here: " << nccl.status().message();
  }
  Communicator& c = **nccl;
  EXPECT_EQ(c.backend(), "nccl");
  torch::Tensor on_cpu = torch::ones({8});
  const absl::Status refused = c.AllReduceSum(on_cpu);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_NE(refused.message().find("needs a CUDA tensor"), std::string_view::npos) << refused;
  if (!TorchHasCuda()) GTEST_SKIP() << "this libtorch has no CUDA: no device tensors to reduce";
  const auto gpu = torch::TensorOptions().device(torch::kCUDA, 0);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kInt64}) {
    // Produced by a kernel on libtorch's stream just before the collective: the collective must
    // be ordered after it.
    torch::Tensor x = torch::arange(1000, gpu).to(dtype) * 3;
    const torch::Tensor expected = torch::arange(1000, gpu).to(dtype) * 3;
    ASSERT_TRUE(c.AllReduceSum(x).ok());
    EXPECT_TRUE(torch::equal(x, expected)) << dtype;
  }
  torch::Tensor big = torch::randn({3'000'000}, gpu);
  const torch::Tensor before = big.clone();
  auto pending = c.AllReduceSumAsync(big);
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_TRUE((*pending)->Wait().ok());
  EXPECT_TRUE(torch::equal(big, before));
  EXPECT_TRUE(c.Broadcast(big, 0).ok());
  EXPECT_TRUE(c.Barrier().ok());
  torch::Tensor strided = torch::ones({4, 4}, gpu).t().slice(0, 0, 2);
  EXPECT_FALSE(c.AllReduceSum(strided).ok());
  // A peer that never comes: rendezvous fails after the timeout instead of hanging.
  const auto start = std::chrono::steady_clock::now();
  auto lonely = CreateCommunicator(
      CommunicatorOptions{"nccl", 0, 2, "127.0.0.1", port + 1, std::chrono::milliseconds(2000)});
  ASSERT_FALSE(lonely.ok());
  EXPECT_NE(lonely.status().message().find("nccl rank 0"), std::string_view::npos)
      << lonely.status();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
#endif
}

}  // namespace
}  // namespace copyforge
