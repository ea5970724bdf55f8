// SaveShard onto a full disk: a small tmpfs mounted for the test (needs root or CAP_SYS_ADMIN;
// skipped otherwise).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ps/shard_storage.h"

namespace attnps::ps {
namespace {

namespace fs = std::filesystem;

// A tmpfs of `size` bytes ("256k") mounted at a new directory `dir` for the object's lifetime.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, const std::string& size) : dir_(dir) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string data = "size=" + size;
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, data.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

std::string CannotMount(const TmpfsMount& mount) {
  return "cannot mount a tmpfs at " + mount.dir() + " (" + mount.error() +
         "); this test needs root or CAP_SYS_ADMIN";
}

TableConfig AdagradTable() {
  TableConfig c;
  c.name = "table1";
  c.id = 1;
  c.dim = 16;
  c.optimizer.kind = SparseOptimizerKind::kAdagrad;
  return c;
}

// A table of `rows` random (incompressible) rows.
std::unique_ptr<EmbeddingShard> RandomTable(int rows) {
  auto table = std::make_unique<EmbeddingShard>(AdagradTable());
  std::mt19937 rng(rows);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> row(table->value_width());
  for (int k = 0; k < rows; ++k) {
    for (float& x : row) x = u(rng);
    table->InsertRow(static_cast<uint64_t>(k) * 7919 + 1, row.data(), 3);
  }
  return table;
}

// A path in the temp directory unique to this process and test ('/' of parameters replaced).
std::string TestDir(const std::string& name) {
  std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(test.begin(), test.end(), '/', '_');
  return (fs::path(::testing::TempDir()) / (name + "_" + std::to_string(::getpid()) + "_" + test))
      .string();
}

int ThreadCount() {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) n += e.is_directory() ? 1 : 0;
  return n;
}

// Writes zeros into `dir`/filler until about `leave` bytes are left.
void FillLeaving(const std::string& dir, uint64_t leave) {
  const uint64_t available = fs::space(dir).available;
  std::ofstream f(dir + "/filler", std::ios::binary);
  const std::string zeros(4096, '\0');
  for (uint64_t n = 0; n + leave < available; n += zeros.size())
    f.write(zeros.data(), zeros.size());
}

// A disk-full save failed the way SaveShard promises.
void ExpectDiskFullError(const Status& st, const std::string& dir) {
  EXPECT_EQ(st.code(), Status::Code::kIoError) << st.ToString();
  EXPECT_NE(st.message().find(dir), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("space"), std::string::npos) << st.ToString();
  EXPECT_FALSE(fs::exists(dir)) << "a failed save left " << dir;
}

void ExpectLoadsEqual(const std::string& dir, const EmbeddingShard& want) {
  EmbeddingShard loaded(AdagradTable());
  const Status st = LoadShards({dir}, nullptr, {{&loaded}});
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(loaded.num_rows(), want.num_rows());
  want.ForEachRow([&](uint64_t key, const float* value, uint64_t) {
    const float* got = loaded.Find(key);
    ASSERT_NE(got, nullptr) << "key " << key;
    ASSERT_EQ(std::memcmp(got, value, sizeof(float) * want.value_width()), 0) << "key " << key;
  });
}

class ShardStorageDiskFullTest : public ::testing::TestWithParam<const char*> {};

// Saves of doubling size run out of space at different points (Open, OPTIONS, SST, flush).
TEST_P(ShardStorageDiskFullTest, GrowingSavesFailWithIoErrorNamingTheDirectory) {
  TmpfsMount mount(TestDir("full"), GetParam());
  if (!mount.mounted()) GTEST_SKIP() << CannotMount(mount);
  const std::string elsewhere = TestDir("saved_elsewhere");
  fs::remove_all(elsewhere);
  const auto saved = RandomTable(200);
  ASSERT_TRUE(SaveShard(elsewhere + "/shard-0", {saved.get()}).ok());
  const int threads = ThreadCount();  // RocksDB's shared pool is started now

  bool failed = false;
  for (int rows = 1; rows <= (1 << 16) && !failed; rows *= 2) {
    const auto table = RandomTable(rows);
    const std::string dir = mount.dir() + "/shard-" + std::to_string(rows);
    const Status st = SaveShard(dir, {table.get()});
    if (st.ok()) continue;
    failed = true;
    ExpectDiskFullError(st, dir);
  }
  EXPECT_TRUE(failed) << "the " << GetParam() << " tmpfs never filled up";
  EXPECT_EQ(ThreadCount(), threads) << "a failed save left a thread running";
  ExpectLoadsEqual(elsewhere + "/shard-0", *saved);
  fs::remove_all(elsewhere);
}

INSTANTIATE_TEST_SUITE_P(Sizes, ShardStorageDiskFullTest,
                         ::testing::Values("64k", "256k", "1m", "4m"));

// One save with 0, 1, 2, ... free pages: every point where the disk can fill fails cleanly, until
// there is room enough and the save succeeds.
TEST(ShardStorageDiskFullPagesTest, EveryFreePageCountFailsCleanlyOrSaves) {
  TmpfsMount mount(TestDir("pages"), "1m");
  if (!mount.mounted()) GTEST_SKIP() << CannotMount(mount);
  const auto table = RandomTable(40);
  const std::string dir = mount.dir() + "/shard-0";
  bool saved = false;
  for (uint64_t pages = 0; pages < 64 && !saved; ++pages) {
    FillLeaving(mount.dir(), pages * 4096);
    const Status st = SaveShard(dir, {table.get()});
    saved = st.ok();
    if (!saved) ExpectDiskFullError(st, dir);
    fs::remove(mount.dir() + "/filler");
  }
  ASSERT_TRUE(saved) << "64 free pages were not enough";
  ExpectLoadsEqual(dir, *table);
}

}  // namespace
}  // namespace attnps::ps
