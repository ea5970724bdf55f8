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

data::CtrReaderOptions Share(int index, int workers) {
  data::CtrReaderOptions o;
  o.worker_index = index;
  o.num_workers = workers;
  return o;
}

// Old workers read `taken[i]` samples each (a negative count: all of the epoch); then `new_workers`
// finish the epoch from the remapped positions. Every line must be read exactly once in total.
void ExpectEveryLineOnceAfterRemap(const std::vector<int>& taken, int new_workers) {
  SCOPED_TRACE(std::to_string(taken.size()) + " -> " + std::to_string(new_workers) + " workers");
  const int lines = 101;
  const std::string path = WriteCtrFile(lines);
  std::vector<int> seen(lines, 0);
  std::vector<StreamPosition> old;
  bool end = false;
  for (size_t i = 0; i < taken.size(); ++i) {
    SampleStream s;
    ASSERT_TRUE(s.Open(path, Share(i, taken.size()), 8, true, 5).ok());
    for (uint64_t u : ReadUsers(&s, taken[i] < 0 ? lines : taken[i], &end)) ++seen[u];
    if (taken[i] < 0) ReadUsers(&s, 1, &end);  // reaches the end: the next epoch's position
    old.push_back(s.position());
  }
  for (int j = 0; j < new_workers; ++j) {
    SampleStream s;
    ASSERT_TRUE(s.Open(path, Share(j, new_workers), 8, true, 5).ok());
    ASSERT_TRUE(s.Seek(RemapPositions(old, 0, j, new_workers)).ok());
    for (end = false; !end;) {
      // Interrupt and resume from the position mid-remap: the same samples follow.
      const StreamPosition at = s.position();
      const auto part = ReadUsers(&s, 7, &end);
      SampleStream again;
      ASSERT_TRUE(again.Open(path, Share(j, new_workers), 8, true, 5).ok());
      ASSERT_TRUE(again.Seek(at).ok());
      bool end2 = false;
      EXPECT_EQ(ReadUsers(&again, 7, &end2), part);
      for (uint64_t u : part) ++seen[u];
    }
    EXPECT_EQ(s.position().epoch, 1);
    EXPECT_FALSE(s.position().remapped);
    for (uint64_t u : ReadUsers(&s, lines, &end)) {  // the next epoch: this worker's own share
      EXPECT_EQ(static_cast<int>(u % new_workers), j);
    }
  }
  for (int u = 0; u < lines; ++u) EXPECT_EQ(seen[u], 1) << "line " << u;
}

TEST(SampleStreamTest, ARemappedEpochReadsEveryRemainingLineOnceWithAnyWorkerCount) {
  ExpectEveryLineOnceAfterRemap({37}, 2);        // 1 -> 2
  ExpectEveryLineOnceAfterRemap({13, 29}, 1);    // 2 -> 1
  ExpectEveryLineOnceAfterRemap({13, -1}, 3);    // 2 -> 3, one old worker had finished
  ExpectEveryLineOnceAfterRemap({0, 5, 16}, 2);  // 3 -> 2
  ExpectEveryLineOnceAfterRemap({-1, -1}, 2);    // nothing left
}

TEST(SampleStreamTest, ARemappedPositionIsRefusedByAnotherWorkerCount) {
  const std::string path = WriteCtrFile(40);
  SampleStream old;
  ASSERT_TRUE(old.Open(path, {}, 8, true, 5).ok());
  bool end = false;
  ReadUsers(&old, 9, &end);
  SampleStream s;
  ASSERT_TRUE(s.Open(path, Share(0, 3), 8, true, 5).ok());
  const Status st = s.Seek(RemapPositions({old.position()}, 0, 0, 2));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("resume with 2 workers"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace attnps::worker
