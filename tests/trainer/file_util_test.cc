#include "trainer/common/file_util.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/test_util.h"
#include "trainer/common/threads.h"

namespace copyforge {
namespace {
namespace fs = std::filesystem;

TEST(WriteDirectoryAtomic, PublishesWholeDirectoryOrNothing) {
  testing::TempDir tmp;
  const std::string dir = tmp.File("ckpt");
  ASSERT_TRUE(WriteDirectoryAtomic(dir, false, [](const std::string& d) {
                return WriteFileSynced(d + "/a.txt", "one");
              }).ok());
  EXPECT_EQ(*ReadFile(dir + "/a.txt"), "one");

  // A failing writer leaves the published directory as it was and no staging directory behind.
  absl::Status st = WriteDirectoryAtomic(dir, true, [](const std::string& d) {
    EXPECT_TRUE(WriteFileSynced(d + "/a.txt", "two").ok());
    return absl::InternalError("disk full");
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(*ReadFile(dir + "/a.txt"), "one");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) entries += e.exists();
  EXPECT_EQ(entries, 1);

  // Without overwrite an existing directory is refused, naming it.
  st = WriteDirectoryAtomic(dir, false, [](const std::string&) { return absl::OkStatus(); });
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(st.message().find("ckpt"), std::string_view::npos);

  ASSERT_TRUE(WriteDirectoryAtomic(dir, true, [](const std::string& d) {
                return WriteFileSynced(d + "/a.txt", "three");
              }).ok());
  EXPECT_EQ(*ReadFile(dir + "/a.txt"), "three");
}

TEST(Sha256, KnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace copyforge

// The CPUs a container may use: the cgroup quota, rounded up; unlimited is no limit.
TEST(ThreadsTest, CgroupCpuLimits) {
  EXPECT_EQ(copyforge::CgroupV2CpuLimit("max 100000\n"), std::nullopt);
  EXPECT_EQ(copyforge::CgroupV2CpuLimit("200000 100000\n"), 2);
  EXPECT_EQ(copyforge::CgroupV2CpuLimit("150000 100000\n"), 2);
  EXPECT_EQ(copyforge::CgroupV2CpuLimit("50000 100000"), 1);
  EXPECT_EQ(copyforge::CgroupV2CpuLimit("garbage"), std::nullopt);
  EXPECT_EQ(copyforge::CgroupV1CpuLimit("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(copyforge::CgroupV1CpuLimit("400000\n", "100000\n"), 4);
  copyforge::testing::TempDir tmp;
  EXPECT_EQ(copyforge::CgroupCpuLimit(tmp.path()), std::nullopt);
  copyforge::testing::WriteTestFile(tmp.File("cpu.max"), "300000 100000\n");
  EXPECT_EQ(copyforge::CgroupCpuLimit(tmp.path()), 3);
  // COPYFORGE_CPUS (the deployment's CPU request) wins; a bad value is ignored.
  setenv("COPYFORGE_CPUS", "3", 1);
  EXPECT_EQ(copyforge::AvailableCpus(), 3);
  EXPECT_EQ(copyforge::ResolveThreads(0), 3);
  EXPECT_EQ(copyforge::ResolveThreads(5), 5);
  setenv("COPYFORGE_CPUS", "x", 1);
  EXPECT_GE(copyforge::AvailableCpus(), 1);
  unsetenv("COPYFORGE_CPUS");
}
