// Device selection and its errors, on a machine with or without a GPU.
#include "trainer/device/device.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/test_util.h"
#include "trainer/dist/communicator.h"
#include "trainer/train/train_config.h"
#include "trainer/train/trainer.h"

namespace copyforge {
namespace {

bool GpuVisible() { return TorchHasCuda() && torch::cuda::device_count() > 0; }

TEST(Device, NamesAreCheckedBeforeAnythingRuns) {
  for (const char* ok : {"auto", "cpu", "cuda", "cuda:0", "cuda:3"}) {
    EXPECT_TRUE(ValidateDeviceName(ok, "device").ok()) << ok;
  }
  for (const char* bad : {"", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "tpu"}) {
    const absl::Status st = ValidateDeviceName(bad, "--device");
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find(std::string("--device \"") + bad + "\""), std::string::npos) << st;
    EXPECT_EQ(ResolveDevice(bad, "--device").status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(Device, CpuAndAutoResolve) {
  auto cpu = ResolveDevice("cpu", "device");
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_TRUE(cpu->is_cpu());
  auto automatic = ResolveDevice("auto", "device", 0);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->is_cuda(), GpuVisible());
  EXPECT_EQ(ResolveBackend("auto", *cpu), "gloo");
  EXPECT_EQ(ResolveBackend("auto", torch::Device(torch::kCUDA, 0)), "nccl");
  EXPECT_EQ(ResolveBackend("gloo", torch::Device(torch::kCUDA, 0)), "gloo");
  EXPECT_GT(MeasureMatmulFlops(*cpu, torch::kFloat), 1e8);
}

TEST(Device, CudaWithoutAGpuIsAClearError) {
  if (GpuVisible()) {
    auto gpu = ResolveDevice("cuda", "device", 0);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    EXPECT_TRUE(gpu->is_cuda());
    EXPECT_EQ(ResolveDevice("cuda:99", "device").status().code(),
              absl::StatusCode::kInvalidArgument);
    GTEST_SKIP() << "a GPU is visible";
  }
  for (const char* name : {"cuda", "cuda:0"}) {
    const absl::Status st = ResolveDevice(name, "--device").status();
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
    EXPECT_NE(st.message().find(std::string("--device \"") + name + "\""), std::string::npos) << st;
    EXPECT_NE(st.message().find(TorchHasCuda() ? "no CUDA device is visible" : "has no CUDA"),
              std::string::npos)
        << st;
  }
}

TEST(Device, LocalRankPicksTheGpu) {
  ::unsetenv("LOCAL_RANK");
  EXPECT_EQ(LocalDeviceOrdinal(5, 4), 1);
  ::setenv("LOCAL_RANK", "2", 1);
  EXPECT_EQ(LocalDeviceOrdinal(5, 4), 2);
  EXPECT_EQ(LocalDeviceOrdinal(0, 2), 0);
  ::unsetenv("LOCAL_RANK");
}

TEST(Device, TrainConfigCarriesTheDevice) {
  TrainConfig c;
  c.model = "m.yaml";
  c.data = "d";
  c.out = "o";
  EXPECT_EQ(c.device, "auto");
  EXPECT_EQ(c.backend, "auto");
  ASSERT_TRUE(c.Set("device=cuda").ok());
  EXPECT_TRUE(c.Validate().ok());
  ASSERT_TRUE(c.Set("device=npu").ok());
  const absl::Status st = c.Validate();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("device \"npu\" is not auto, cpu, cuda"), std::string::npos) << st;
  EXPECT_EQ(c.ToJson()["device"], "npu");
}

// A CUDA trainer on a machine without one fails in Create, before data or steps.
TEST(Device, TrainerOnAMissingGpuFailsBeforeAnyStep) {
  if (GpuVisible()) GTEST_SKIP() << "a GPU is visible";
  testing::TempDir tmp;
  testing::PrepareTinyTrainingSetup(tmp.path(), 60);
  TrainConfig c;
  c.model = tmp.File("model.yaml");
  c.data = tmp.File("shards");
  c.out = tmp.File("run");
  c.seq_len = 32;
  c.device = "cuda";
  auto trainer = Trainer::Create(c);
  ASSERT_FALSE(trainer.ok());
  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(trainer.status().message().find("device \"cuda\""), std::string::npos)
      << trainer.status();
}

}  // namespace
}  // namespace copyforge
