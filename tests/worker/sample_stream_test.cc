#include "worker/sample_stream.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace attnps::worker {
namespace {

std::string WriteCtrFile(int lines) {
  const std::string path = testing::TempDir() + "/stream_" + std::to_string(lines) + ".tsv";
  std::ofstream out(path);
  for (int i = 0; i < lines; ++i) out << (i % 2) << "\t" << i << "\t" << i + 1 << "\t1\t\t\n";
  return path;
}

std::vector<uint64_t> ReadUsers(SampleStream* s, int n, bool* end) {
  std::vector<data::CtrSample> batch;
  EXPECT_TRUE(s->Read(n, &batch, end).ok());
  std::vector<uint64_t> users;
  for (const auto& x : batch) users.push_back(x.user);
  return users;
}

TEST(SampleStreamTest, EpochHoldsEverySampleOnceInAShuffledOrder) {
  const std::string path = WriteCtrFile(100);
  SampleStream s;
  ASSERT_TRUE(s.Open(path, {}, 32, /*shuffle=*/true, 7).ok());
  bool end = false;
  std::vector<uint64_t> all;
  while (!end) {
    auto part = ReadUsers(&s, 30, &end);
    all.insert(all.end(), part.begin(), part.end());
  }
  ASSERT_EQ(all.size(), 100u);
  std::vector<uint64_t> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(sorted, all) << "not shuffled";
  EXPECT_EQ(s.position().epoch, 1);
  auto second = ReadUsers(&s, 100, &end);
  EXPECT_EQ(second.size(), 100u);
  EXPECT_NE(second, all) << "the next epoch should shuffle differently";
}

TEST(SampleStreamTest, SeekToASavedPositionReplaysTheSameSamples) {
  const std::string path = WriteCtrFile(90);
  SampleStream a;
  ASSERT_TRUE(a.Open(path, {}, 16, true, 3).ok());
  bool end = false;
  ReadUsers(&a, 37, &end);
  const StreamPosition saved = a.position();
  const auto rest = ReadUsers(&a, 200, &end);
  SampleStream b;
  ASSERT_TRUE(b.Open(path, {}, 16, true, 3).ok());
  ASSERT_TRUE(b.Seek(saved).ok());
  EXPECT_EQ(ReadUsers(&b, 200, &end), rest);
}

TEST(SampleStreamTest, WorkersReadDisjointPartitions) {
  const std::string path = WriteCtrFile(50);
  std::vector<uint64_t> seen;
  for (int w = 0; w < 3; ++w) {
    data::CtrReaderOptions o;
    o.worker_index = w;
    o.num_workers = 3;
    SampleStream s;
    ASSERT_TRUE(s.Open(path, o, 8, true, 1).ok());
    bool end = false;
    auto part = ReadUsers(&s, 100, &end);
    EXPECT_TRUE(end);
    seen.insert(seen.end(), part.begin(), part.end());
  }
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), 50u);
  for (uint64_t i = 0; i < 50; ++i) EXPECT_EQ(seen[i], i);
}

}  // namespace
}  // namespace attnps::worker
