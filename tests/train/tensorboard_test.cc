#include "trainer/train/tensorboard.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tensorboard_event.pb.h"
#include "tests/test_util.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
}

TEST(EventWriter, WritesTfRecordsTensorBoardCanRead) {
  testing::TempDir tmp;
  auto w = EventWriter::Create(tmp.path());
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->AddScalar("train/loss", 1, 3.5).ok());
  ASSERT_TRUE((*w)->AddScalar("train/loss", 2, 2.25).ok());
  EXPECT_NE((*w)->path().find("events.out.tfevents."), std::string::npos);
  const std::string bytes = *ReadFile((*w)->path());
  std::vector<tensorboard::Event> events;
  for (size_t pos = 0; pos < bytes.size();) {
    uint64_t len;
    uint32_t len_crc, data_crc;
    std::memcpy(&len, bytes.data() + pos, 8);
    std::memcpy(&len_crc, bytes.data() + pos + 8, 4);
    ASSERT_EQ(len_crc, MaskedCrc32c(std::string_view(bytes.data() + pos, 8)));
    const std::string data = bytes.substr(pos + 12, len);
    std::memcpy(&data_crc, bytes.data() + pos + 12 + len, 4);
    ASSERT_EQ(data_crc, MaskedCrc32c(data));
    tensorboard::Event e;
    ASSERT_TRUE(e.ParseFromString(data));
    events.push_back(e);
    pos += 12 + len + 4;
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[2].step(), 2);
  EXPECT_EQ(events[2].summary().value(0).tag(), "train/loss");
  EXPECT_FLOAT_EQ(events[2].summary().value(0).simple_value(), 2.25f);
}

}  // namespace
}  // namespace copyforge
