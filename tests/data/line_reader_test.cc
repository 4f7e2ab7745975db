#include "trainer/data/line_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "tests/test_util.h"

namespace copyforge {
namespace {

void WriteGz(const std::string& path, const std::string& data) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  gzwrite(gz, data.data(), static_cast<unsigned>(data.size()));
  gzclose(gz);
}

std::vector<std::string> ReadAll(const std::string& path) {
  auto r = LineReader::Open(path);
  EXPECT_TRUE(r.ok()) << r.status();
  std::vector<std::string> lines;
  std::string_view line;
  while (true) {
    auto more = (*r)->Next(&line);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    lines.emplace_back(line);
  }
  return lines;
}

TEST(LineReader, PlainAndGzipGiveTheSameLines) {
  testing::TempDir tmp;
  std::string data = "first\r\nsecond\n\n" + std::string(3 << 20, 'x') + "\nlast without newline";
  testing::WriteTestFile(tmp.File("a.txt"), data);
  WriteGz(tmp.File("a.txt.gz"), data);
  auto plain = ReadAll(tmp.File("a.txt"));
  auto gz = ReadAll(tmp.File("a.txt.gz"));
  ASSERT_EQ(plain.size(), 5u);
  EXPECT_EQ(plain[0], "first");
  EXPECT_EQ(plain[2], "");
  EXPECT_EQ(plain[3].size(), 3u << 20);
  EXPECT_EQ(plain[4], "last without newline");
  EXPECT_EQ(plain, gz);
}

TEST(LineReader, TruncatedGzipIsAnErrorNamingTheFile) {
  testing::TempDir tmp;
  std::string data;
  for (int i = 0; i < 20000; ++i) data += "{\"line\": " + std::to_string(i) + "}\n";
  WriteGz(tmp.File("full.gz"), data);
  std::string bytes;
  {
    std::FILE* f = std::fopen(tmp.File("full.gz").c_str(), "rb");
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
  }
  testing::WriteTestFile(tmp.File("cut.gz"), bytes.substr(0, bytes.size() / 2));
  auto r = LineReader::Open(tmp.File("cut.gz"));
  ASSERT_TRUE(r.ok());
  std::string_view line;
  absl::Status error;
  while (true) {
    auto more = (*r)->Next(&line);
    if (!more.ok()) {
      error = more.status();
      break;
    }
    if (!*more) break;
  }
  ASSERT_FALSE(error.ok()) << "a truncated gzip file must not read as a shorter valid one";
  EXPECT_NE(error.message().find("cut.gz"), std::string_view::npos) << error;
}

TEST(LineReader, OverlongLinesAreSkippedAndCounted) {
  testing::TempDir tmp;
  const std::string path = tmp.File("lines.txt");
  // Longer than one read chunk too, so the skip crosses buffer refills.
  testing::WriteTestFile(
      path, "short\n" + std::string(3 << 20, 'x') + "\nafter\n" + std::string(100, 'y'));
  auto reader = LineReader::Open(path, 64);
  ASSERT_TRUE(reader.ok());
  std::vector<std::string> lines;
  std::string_view line;
  while (*(*reader)->Next(&line)) lines.emplace_back(line);
  EXPECT_EQ(lines, (std::vector<std::string>{"short", "after"}));
  EXPECT_EQ((*reader)->overlong_lines(), 2);
  EXPECT_EQ((*reader)->line_number(), 4);
}

TEST(LineReader, MissingFileIsNamed) {
  auto r = LineReader::Open("/nonexistent/reviews.json.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/reviews.json.gz"), std::string_view::npos);
}

}  // namespace
}  // namespace copyforge
