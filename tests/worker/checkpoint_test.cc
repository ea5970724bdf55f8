#include "worker/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const std::string dir = testing::TempDir() + "/ckpt_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(CheckpointTest, DenseStateRoundTripsExactly) {
  const std::string dir = FreshDir("dense");
  Tensor params = Tensor::FromVector({3}, {1.5f, -2.25f, 3e-7f});
  Tensor buffers = Tensor::FromVector({2}, {0.5f, 9.0f});
  ASSERT_TRUE(WriteDense(dir + "/dense.bin", {{"params", params}, {"buffers", buffers}}, 42).ok());
  Tensor p2 = Tensor::Zeros({3}), b2 = Tensor::Zeros({2});
  int64_t steps = 0;
  ASSERT_TRUE(ReadDense(dir + "/dense.bin", {{"params", p2}, {"buffers", b2}}, &steps).ok());
  EXPECT_EQ(p2.ToVector(), params.ToVector());
  EXPECT_EQ(b2.ToVector(), buffers.ToVector());
  EXPECT_EQ(steps, 42);
}

TEST(CheckpointTest, CorruptedOrMismatchedDenseStateIsRefusedNamingTheFile) {
  const std::string dir = FreshDir("corrupt");
  const std::string path = dir + "/dense.bin";
  Tensor params = Tensor::Filled({100}, 1.0f);
  ASSERT_TRUE(WriteDense(path, {{"params", params}}, 1).ok());
  Tensor wrong = Tensor::Zeros({99});
  int64_t steps = 0;
  Status st = ReadDense(path, {{"params", wrong}}, &steps);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("expects params of 99"), std::string::npos) << st.ToString();
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  Tensor same = Tensor::Zeros({100});
  st = ReadDense(path, {{"params", same}}, &steps);
  EXPECT_NE(st.message().find(path), std::string::npos);
  EXPECT_NE(st.message().find("checksum"), std::string::npos) << st.ToString();
}

TEST(CheckpointTest, ManifestVerifiesEveryFileAndLatestPointsAtTheStep) {
  const std::string dir = FreshDir("manifest");
  const std::string step = dir + "/" + StepDirName(7);
  fs::create_directories(step);
  ASSERT_TRUE(WritePosition(step + "/worker-0.pos", {1, 100, 5, 3}).ok());
  config::CheckpointManifest m;
  m.set_step(7);
  ASSERT_TRUE(WriteManifest(step, m).ok());
  ASSERT_TRUE(PublishLatest(dir, StepDirName(7)).ok());
  std::string latest;
  ASSERT_TRUE(ReadLatest(dir, &latest).ok());
  EXPECT_EQ(latest, step);
  config::CheckpointManifest back;
  ASSERT_TRUE(ReadManifest(step, &back).ok());
  EXPECT_EQ(back.step(), 7);
  StreamPosition p;
  ASSERT_TRUE(ReadPosition(step + "/worker-0.pos", &p).ok());
  EXPECT_EQ(p.block_offset, 100u);
  ASSERT_TRUE(VerifyCheckpoint(step, &back).ok());
  std::ofstream(step + "/worker-0.pos", std::ios::app) << "x";
  const Status st = VerifyCheckpoint(step, &back);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("worker-0.pos"), std::string::npos);
}

TEST(CheckpointTest, AStepWithoutManifestIsIncompleteAndPruneKeepsTheNewest) {
  const std::string dir = FreshDir("prune");
  for (int s : {10, 20, 30, 40}) fs::create_directories(dir + "/" + StepDirName(s));
  config::CheckpointManifest manifest;
  EXPECT_EQ(ReadManifest(dir + "/step-40", &manifest).code(), Status::Code::kNotFound);
  ASSERT_TRUE(PublishLatest(dir, StepDirName(30)).ok());
  ASSERT_TRUE(PruneCheckpoints(dir, 2).ok());
  EXPECT_FALSE(fs::exists(dir + "/step-10"));
  EXPECT_TRUE(fs::exists(dir + "/step-20"));
  EXPECT_TRUE(fs::exists(dir + "/step-30"));
  EXPECT_TRUE(fs::exists(dir + "/step-40"))
      << "newer than LATEST: replaced when reached, not pruned";
  ASSERT_TRUE(PruneCheckpoints(dir, 1).ok());
  EXPECT_FALSE(fs::exists(dir + "/step-20"));
  EXPECT_TRUE(fs::exists(dir + "/step-30"));
}

TEST(CheckpointTest, NoLatestIsNotFound) {
  std::string latest;
  EXPECT_EQ(ReadLatest(FreshDir("empty"), &latest).code(), Status::Code::kNotFound);
}

TEST(CheckpointTest, ARemappedReaderPositionRoundTrips) {
  const std::string path = FreshDir("remap_pos") + "/worker-1.pos";
  StreamPosition p;
  p.epoch = 3;
  p.remapped = true;
  p.remap = {3, 3, 1, 1, 12345, {{4096, 77, 5}, {~uint64_t{0}, 0, 0}}};
  ASSERT_TRUE(WritePosition(path, p).ok());
  StreamPosition back;
  ASSERT_TRUE(ReadPosition(path, &back).ok());
  EXPECT_TRUE(back.remapped);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.remap.old_workers, 3);
  EXPECT_EQ(back.remap.new_workers, 3);
  EXPECT_EQ(back.remap.index, 1);
  EXPECT_EQ(back.remap.current, 1);
  EXPECT_EQ(back.remap.counter, 12345u);
  ASSERT_EQ(back.remap.rest.size(), 2u);
  EXPECT_EQ(back.remap.rest[0].block_offset, 4096u);
  EXPECT_EQ(back.remap.rest[0].taken, 5);
  EXPECT_EQ(back.remap.rest[1].block_offset, ~uint64_t{0});
  std::ofstream(path, std::ios::trunc) << "3 0 0 0\nremap 2 3 7 0 0 0\n";  // index >= workers
  EXPECT_EQ(ReadPosition(path, &back).code(), Status::Code::kCorruption);
  std::ofstream(path, std::ios::trunc) << "3 0 0 0\nremap 2 3 1 1 0 2\n0 0 0\n0 0 0\n";
  EXPECT_EQ(ReadPosition(path, &back).code(), Status::Code::kCorruption) << "3 of 2 old streams";
}

}  // namespace
}  // namespace attnps::worker
