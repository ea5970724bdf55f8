#include "ps/shard_storage.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <regex>

#include "ps/sharding.h"

namespace attnps::ps {
namespace {

namespace fs = std::filesystem;

TableConfig AdagradTable(uint32_t id, int dim) {
  TableConfig c;
  c.name = "table" + std::to_string(id);
  c.id = id;
  c.dim = dim;
  c.optimizer.kind = SparseOptimizerKind::kAdagrad;
  return c;
}

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       (name + "_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// A table split over `shards` shards (by ShardOf), trained a little.
std::vector<std::unique_ptr<EmbeddingShard>> TrainedTable(const TableConfig& config, int shards,
                                                          int keys) {
  std::vector<std::unique_ptr<EmbeddingShard>> table;
  for (int s = 0; s < shards; ++s) table.push_back(std::make_unique<EmbeddingShard>(config));
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> out(config.dim), grad(config.dim);
  for (int step = 1; step <= 3; ++step) {
    for (uint64_t k = 0; k < static_cast<uint64_t>(keys); ++k) {
      const uint64_t key = k * 1000003 + 17;
      EmbeddingShard* shard = table[ShardOf(key, shards)].get();
      shard->Pull(&key, 1, step, out.data());
      for (float& x : grad) x = g(rng);
      if ((k + step) % 3 != 0) shard->Push(&key, 1, grad.data(), step);
    }
  }
  return table;
}

std::vector<std::string> SaveAll(const std::vector<std::unique_ptr<EmbeddingShard>>& table,
                                 const std::string& root) {
  std::vector<std::string> dirs;
  for (size_t s = 0; s < table.size(); ++s) {
    dirs.push_back(root + "/shard-" + std::to_string(s));
    const Status st = SaveShard(dirs.back(), {table[s].get()});
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return dirs;
}

// Every row of `want` (over its shards) is in exactly one shard of `got`, bit for bit.
void ExpectSameRows(const std::vector<std::unique_ptr<EmbeddingShard>>& want,
                    const std::vector<std::unique_ptr<EmbeddingShard>>& got) {
  int64_t want_rows = 0, got_rows = 0;
  for (const auto& s : got) got_rows += s->num_rows();
  for (const auto& s : want) {
    want_rows += s->num_rows();
    s->ForEachRow([&](uint64_t key, const float* value, uint64_t last_update) {
      const EmbeddingShard& owner = *got[ShardOf(key, static_cast<int>(got.size()))];
      const float* loaded = owner.Find(key);
      ASSERT_NE(loaded, nullptr) << "key " << key;
      ASSERT_EQ(std::memcmp(loaded, value, sizeof(float) * s->value_width()), 0) << "key " << key;
      ASSERT_EQ(owner.LastUpdate(key), last_update);
    });
  }
  EXPECT_EQ(got_rows, want_rows);
}

TEST(ShardStorageTest, SaveThenLoadIsBitExact) {
  const std::string root = FreshDir("ckpt");
  auto table = TrainedTable(AdagradTable(1, 16), 1, 500);
  const auto dirs = SaveAll(table, root);
  std::vector<std::unique_ptr<EmbeddingShard>> loaded;
  loaded.push_back(std::make_unique<EmbeddingShard>(AdagradTable(1, 16)));
  const Status st = LoadShards(dirs, nullptr, {{loaded[0].get()}});
  ASSERT_TRUE(st.ok()) << st.ToString();
  ExpectSameRows(table, loaded);
}

struct Reshard {
  int from, to;
};

class ShardStorageReshardTest : public ::testing::TestWithParam<Reshard> {};

TEST_P(ShardStorageReshardTest, LoadIntoOtherShardCountEqualsOriginal) {
  const auto [from, to] = GetParam();
  const std::string root = FreshDir("reshard");
  const TableConfig config = AdagradTable(2, 8);
  auto table = TrainedTable(config, from, 600);
  const auto dirs = SaveAll(table, root);
  std::vector<std::unique_ptr<EmbeddingShard>> loaded;
  std::vector<std::vector<EmbeddingShard*>> dest;
  for (int s = 0; s < to; ++s) {
    loaded.push_back(std::make_unique<EmbeddingShard>(config));
    dest.push_back({loaded.back().get()});
  }
  const Status st = LoadShards(
      dirs, [&](uint64_t key) { return ShardOf(key, to); }, dest);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ExpectSameRows(table, loaded);
}

INSTANTIATE_TEST_SUITE_P(Counts, ShardStorageReshardTest,
                         ::testing::Values(Reshard{1, 3}, Reshard{4, 2}));

std::string OneSstFile(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".sst") return e.path().string();
  }
  return "";
}

TEST(ShardStorageTest, CorruptedFileIsRefusedNamingIt) {
  const std::string root = FreshDir("corrupt");
  auto table = TrainedTable(AdagradTable(1, 16), 1, 300);
  const auto dirs = SaveAll(table, root);
  const std::string sst = OneSstFile(dirs[0]);
  ASSERT_FALSE(sst.empty());
  {
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(sst) / 3));
    const char junk[16] = {'\x5a', '\x5a', '\x5a', '\x5a', '\x5a', '\x5a', '\x5a', '\x5a',
                           '\x5a', '\x5a', '\x5a', '\x5a', '\x5a', '\x5a', '\x5a', '\x5a'};
    f.write(junk, sizeof(junk));
  }
  EmbeddingShard loaded(AdagradTable(1, 16));
  const Status st = LoadShards(dirs, nullptr, {{&loaded}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find(fs::path(sst).filename().string()), std::string::npos)
      << st.ToString();
  EXPECT_EQ(loaded.num_rows(), 0);  // nothing half-loaded
}

TEST(ShardStorageTest, TruncatedFileIsRefusedNamingIt) {
  const std::string root = FreshDir("truncated");
  auto table = TrainedTable(AdagradTable(1, 16), 1, 300);
  const auto dirs = SaveAll(table, root);
  const std::string sst = OneSstFile(dirs[0]);
  fs::resize_file(sst, fs::file_size(sst) / 2);
  EmbeddingShard loaded(AdagradTable(1, 16));
  const Status st = LoadShards(dirs, nullptr, {{&loaded}});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(fs::path(sst).filename().string()), std::string::npos)
      << st.ToString();
  EXPECT_EQ(loaded.num_rows(), 0);
}

TEST(ShardStorageTest, MissingShardDirectoryIsNamed) {
  EmbeddingShard loaded(AdagradTable(1, 16));
  const Status st = LoadShards({"/nonexistent/shard-0"}, nullptr, {{&loaded}});
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
  EXPECT_NE(st.message().find("/nonexistent/shard-0"), std::string::npos);
}

TEST(ShardStorageTest, DimMismatchIsRefused) {
  const std::string root = FreshDir("dim");
  auto table = TrainedTable(AdagradTable(1, 16), 1, 10);
  const auto dirs = SaveAll(table, root);
  EmbeddingShard loaded(AdagradTable(1, 8));
  const Status st = LoadShards(dirs, nullptr, {{&loaded}});
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("table1"), std::string::npos) << st.ToString();
}

// name -> (size, mtime, bytes) of every file in `dir`, and "." -> the directory's mtime.
using Snapshot = std::map<std::string, std::string>;

Snapshot FilesOf(const std::string& dir) {
  Snapshot files;
  const auto stamp = [](const fs::path& p) {
    return std::to_string(fs::last_write_time(p).time_since_epoch().count());
  };
  files["."] = stamp(dir);
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream f(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    files[e.path().filename().string()] =
        std::to_string(e.file_size()) + " " + stamp(e.path()) + " " + bytes;
  }
  return files;
}

TEST(ShardStorageTest, SavedShardHoldsOnlyTheDocumentedFiles) {
  const std::string root = FreshDir("files");
  auto table = TrainedTable(AdagradTable(1, 16), 1, 300);
  const auto dirs = SaveAll(table, root);
  const std::regex allowed("CURRENT|IDENTITY|MANIFEST-[0-9]+|OPTIONS-[0-9]+|[0-9]+\\.sst");
  int sst = 0;
  for (const auto& e : fs::directory_iterator(dirs[0])) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(std::regex_match(name, allowed)) << "unexpected file " << name;
    EXPECT_TRUE(e.is_regular_file()) << name;
    sst += e.path().extension() == ".sst" ? 1 : 0;
  }
  EXPECT_GE(sst, 1);
}

TEST(ShardStorageTest, LoadingTwiceCreatesOrChangesNoFile) {
  const std::string root = FreshDir("readonly");
  auto table = TrainedTable(AdagradTable(1, 16), 1, 300);
  const auto dirs = SaveAll(table, root);
  const Snapshot before = FilesOf(dirs[0]);
  for (int i = 0; i < 2; ++i) {
    EmbeddingShard loaded(AdagradTable(1, 16));
    const Status st = LoadShards(dirs, nullptr, {{&loaded}});
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(loaded.num_rows(), table[0]->num_rows());
  }
  const Snapshot after = FilesOf(dirs[0]);
  EXPECT_EQ(after.size(), before.size());
  for (const auto& [name, entry] : before) {
    ASSERT_EQ(after.count(name), 1u) << name << " disappeared";
    EXPECT_TRUE(after.at(name) == entry) << name << " changed";
  }
  for (const auto& [name, entry] : after) EXPECT_EQ(before.count(name), 1u) << name << " appeared";
}

TEST(ShardStorageTest, SaveRefusesAnExistingDirectory) {
  const std::string root = FreshDir("exists");
  EmbeddingShard table(AdagradTable(1, 4));
  EXPECT_EQ(SaveShard(root, {&table}).code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace attnps::ps
