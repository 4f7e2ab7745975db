#include "trainer/common/file_util.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_util.h"

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
