// The run-directory checkpoint source: nothing yet is NOT_FOUND (what the first-checkpoint wait
// retries on), the newest checkpoint is announced as steps appear, and Stop ends Follow. The
// coordinator source runs in ServerTest.FollowsTheCoordinatorsCheckpoints.
#include "serving/checkpoint_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/test_util.h"
#include "trainer/checkpoint/run_dir.h"

namespace copyforge {
namespace {

TEST(CheckpointSource, RunDirectoryAnnouncesTheNewestAndStops) {
  testing::TempDir tmp;
  const std::string run = tmp.File("run");
  auto source = CheckpointSource::RunDirectory(run, 0.05);
  EXPECT_TRUE(absl::IsNotFound(source->Latest().status()));
  auto waited = WaitForFirstCheckpoint(*source, 0.2, 0.05, nullptr);
  EXPECT_TRUE(absl::IsNotFound(waited.status())) << waited.status();
  bool stop = true;
  EXPECT_TRUE(
      absl::IsCancelled(WaitForFirstCheckpoint(*source, 5, 0.05, [&] { return stop; }).status()));

  std::filesystem::create_directories(CheckpointDir(run, 10));
  std::filesystem::create_directories(run + "/checkpoints/step_0000020.tmp-1-x");  // staging
  EXPECT_EQ(*source->Latest(), CheckpointDir(run, 10));
  std::mutex mu;
  std::vector<std::string> seen;
  std::thread follower([&] {
    source->Follow([&](const std::string& path) {
      std::lock_guard<std::mutex> lock(mu);
      if (seen.empty() || seen.back() != path) seen.push_back(path);
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::filesystem::create_directories(CheckpointDir(run, 10000000));  // ordered by number
  std::filesystem::create_directories(CheckpointDir(run, 30));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  source->Stop();
  follower.join();  // returns once stopped
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], CheckpointDir(run, 10));
  EXPECT_EQ(seen[1], CheckpointDir(run, 10000000));
}

}  // namespace
}  // namespace copyforge
