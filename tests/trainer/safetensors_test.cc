#include "trainer/checkpoint/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/test_util.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

std::string WriteSample(const testing::TempDir& tmp) {
  static const float a[6] = {1, 2, 3, 4, 5, 6};
  static const uint16_t b[2] = {0x3F80, 0x4000};  // bfloat16 1.0, 2.0
  const std::string path = tmp.File("t.safetensors");
  EXPECT_TRUE(WriteSafetensors(
                  path,
                  {{"a", "F32", {2, 3}, std::string_view(reinterpret_cast<const char*>(a), 24)},
                   {"b", "BF16", {2}, std::string_view(reinterpret_cast<const char*>(b), 4)}},
                  {{"format", "pt"}})
                  .ok());
  return path;
}

TEST(Safetensors, RoundTrip) {
  testing::TempDir tmp;
  auto f = SafetensorsFile::Open(WriteSample(tmp));
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 2u);
  const TensorView* a = (*f)->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  float v[6];
  std::memcpy(v, a->data, 24);
  EXPECT_EQ(v[5], 6.0f);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ((*f)->Find("missing"), nullptr);
  // The header is padded so the data section starts 8-byte aligned.
  std::string raw = *ReadFile(tmp.File("t.safetensors"));
  uint64_t n;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, TruncatedFileNamesTheTensor) {
  testing::TempDir tmp;
  std::string raw = *ReadFile(WriteSample(tmp));
  testing::WriteTestFile(tmp.File("cut.safetensors"), raw.substr(0, raw.size() - 3));
  auto f = SafetensorsFile::Open(tmp.File("cut.safetensors"));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("cut.safetensors"), std::string_view::npos) << f.status();
  EXPECT_NE(f.status().message().find("tensor b"), std::string_view::npos) << f.status();
}

TEST(Safetensors, CorruptHeadersAreErrorsNotCrashes) {
  testing::TempDir tmp;
  std::string raw = *ReadFile(WriteSample(tmp));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"short", raw.substr(0, 5)},
      {"huge-header", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + raw.substr(8)},
      {"not-json", raw.substr(0, 8) + std::string(raw.size() - 8, '#')},
  };
  for (const auto& [name, bytes] : cases) {
    testing::WriteTestFile(tmp.File(name), bytes);
    auto f = SafetensorsFile::Open(tmp.File(name));
    ASSERT_FALSE(f.ok()) << name;
    EXPECT_NE(f.status().message().find(name), std::string_view::npos) << f.status();
  }
  std::string header = R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})";
  std::string bad(8, '\0');
  uint64_t n = header.size();
  std::memcpy(bad.data(), &n, 8);
  testing::WriteTestFile(tmp.File("size"), bad + header + std::string(8, '\0'));
  auto f = SafetensorsFile::Open(tmp.File("size"));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("tensor x"), std::string_view::npos) << f.status();
}

}  // namespace
}  // namespace copyforge
