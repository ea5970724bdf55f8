// The event files' framing and contents, read back byte by byte.
#include "worker/metrics/tensorboard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "proto/tensorboard_event.pb.h"

namespace attnps::metrics {
namespace {

TEST(TensorBoardTest, Crc32cMatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

// The records of a TFRecord file, each CRC checked.
std::vector<tensorboard::Event> ReadEvents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<tensorboard::Event> events;
  for (size_t at = 0; at < bytes.size();) {
    EXPECT_GE(bytes.size() - at, 16u) << "truncated record at " << at;
    if (bytes.size() - at < 16) break;
    uint64_t length = 0;
    uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, bytes.data() + at, 8);
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    EXPECT_EQ(length_crc, MaskedCrc32c(bytes.data() + at, 8)) << "record at " << at;
    const char* data = bytes.data() + at + 12;
    std::memcpy(&data_crc, data + length, 4);
    EXPECT_EQ(data_crc, MaskedCrc32c(data, length)) << "record at " << at;
    tensorboard::Event event;
    EXPECT_TRUE(event.ParseFromArray(data, static_cast<int>(length)));
    events.push_back(event);
    at += 16 + length;
  }
  return events;
}

TEST(TensorBoardTest, EventsHoldTheScalarsAddedWithTheirSteps) {
  const std::string dir = ::testing::TempDir() + "/tensorboard_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::unique_ptr<TensorBoardWriter> writer;
  ASSERT_TRUE(TensorBoardWriter::Open(dir, &writer).ok());
  ASSERT_TRUE(writer->Add(10, 1.5, {{"test/auc", 0.75}, {"test/loss", NAN}}).ok());
  ASSERT_TRUE(writer->Add(20, 2.5, {{"test/auc", 0.8125}, {"test/bytes", 123456.0}}).ok());
  EXPECT_EQ(std::filesystem::path(writer->path()).parent_path(), dir);
  EXPECT_NE(writer->path().find("events.out.tfevents."), std::string::npos);
  const std::vector<tensorboard::Event> events = ReadEvents(writer->path());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[1].step(), 10);
  EXPECT_EQ(events[1].wall_time(), 1.5);
  ASSERT_EQ(events[1].summary().value_size(), 1);  // the NaN is left out
  EXPECT_EQ(events[1].summary().value(0).tag(), "test/auc");
  EXPECT_EQ(events[1].summary().value(0).simple_value(), 0.75f);
  ASSERT_EQ(events[2].summary().value_size(), 2);
  EXPECT_EQ(events[2].step(), 20);
  EXPECT_EQ(events[2].summary().value(1).simple_value(), 123456.0f);
  std::filesystem::remove_all(dir);
}

TEST(TensorBoardTest, AnUnwritableDirectoryIsAnErrorNamingIt) {
  std::unique_ptr<TensorBoardWriter> writer;
  const Status st = TensorBoardWriter::Open("/proc/attnps_no_such/dir", &writer);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/proc/attnps_no_such/dir"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace attnps::metrics
