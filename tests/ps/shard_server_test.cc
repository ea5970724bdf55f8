#include "ps/shard_server.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "ps/sharding.h"

namespace attnps::ps {
namespace {

namespace fs = std::filesystem;

std::vector<TableConfig> Tables() {
  TableConfig items;
  items.name = "items";
  items.id = 1;
  items.dim = 8;
  items.optimizer.kind = SparseOptimizerKind::kSgd;
  items.optimizer.learning_rate = 1.0f;
  TableConfig users = items;
  users.name = "users";
  users.id = 2;
  users.dim = 4;
  users.optimizer.kind = SparseOptimizerKind::kAdagrad;
  return {items, users};
}

std::vector<uint64_t> Keys(int n, uint64_t salt = 0) {
  std::vector<uint64_t> keys;
  for (int i = 0; i < n; ++i) keys.push_back(i * 2654435761ull + salt);
  return keys;
}

std::vector<float> Pull(ShardServer* server, uint32_t table, const std::vector<uint64_t>& keys) {
  std::vector<float> out(keys.size() * server->Dim(table));
  server->Pull(table, keys.data(), static_cast<int64_t>(keys.size()), 1, out.data());
  return out;
}

TEST(ShardServerTest, PullValuesIdenticalWhateverTheShardCount) {
  const auto keys = Keys(1000);
  ShardServer one(Tables(), 1);
  const auto want = Pull(&one, 1, keys);
  for (int shards : {2, 4, 7}) {
    ShardServer server(Tables(), shards);
    EXPECT_EQ(Pull(&server, 1, keys), want) << shards << " shards";
    EXPECT_EQ(server.NumRows(1), 1000);
    EXPECT_EQ(server.NumRows(2), 0);
  }
}

TEST(ShardServerTest, ConcurrentSgdPushesSumLikeSerialOnes) {
  ShardServer server(Tables(), 3);
  const auto keys = Keys(300);
  const auto initial = Pull(&server, 1, keys);
  const int threads = 4, rounds = 25;
  std::vector<std::thread> pushers;
  for (int t = 0; t < threads; ++t) {
    pushers.emplace_back([&] {
      const std::vector<float> grads(keys.size() * 8, 0.01f);
      for (int r = 0; r < rounds; ++r) {
        server.Push(1, keys.data(), static_cast<int64_t>(keys.size()), grads.data(), r + 1);
      }
    });
  }
  for (auto& t : pushers) t.join();
  const auto after = Pull(&server, 1, keys);
  for (size_t i = 0; i < after.size(); ++i) {
    ASSERT_NEAR(after[i], initial[i] - threads * rounds * 0.01f, 1e-4f) << "element " << i;
  }
}

TEST(ShardServerTest, SaveThenLoadIntoOtherServerAndShardCounts) {
  const fs::path root =
      fs::path(::testing::TempDir()) / ("server_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(root);
  ShardServer source(Tables(), 4);
  const auto keys = Keys(800, 9);
  Pull(&source, 1, keys);
  Pull(&source, 2, keys);
  const std::vector<float> grads(keys.size() * 4, 0.5f);
  source.Push(2, keys.data(), static_cast<int64_t>(keys.size()), grads.data(), 3);
  ASSERT_TRUE(source.Save(root.string(), 3).ok());
  std::vector<std::string> dirs;
  for (int s = 0; s < 4; ++s) dirs.push_back((root / ("shard-" + std::to_string(s))).string());

  // Two servers of two shards each split the keys by ServerOf.
  std::vector<std::unique_ptr<ShardServer>> servers;
  for (int r = 0; r < 2; ++r) {
    servers.push_back(std::make_unique<ShardServer>(Tables(), 2));
    const Status st = servers[r]->Load(dirs, [r](uint64_t key) { return ServerOf(key, 2) == r; });
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(servers[0]->NumRows(2) + servers[1]->NumRows(2), 800);
  for (uint32_t table : {1u, 2u}) {
    const auto want = Pull(&source, table, keys);
    const int dim = source.Dim(table);
    for (size_t i = 0; i < keys.size(); ++i) {
      ShardServer* owner = servers[ServerOf(keys[i], 2)].get();
      std::vector<float> got(dim);
      owner->Pull(table, &keys[i], 1, 4, got.data());
      for (int j = 0; j < dim; ++j) ASSERT_EQ(got[j], want[i * dim + j]) << "key " << keys[i];
    }
  }
  fs::remove_all(root);
}

TEST(ShardServerTest, SaveEvictsFirst) {
  const fs::path root =
      fs::path(::testing::TempDir()) / ("server_evict_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::vector<TableConfig> tables = Tables();
  tables[0].eviction.ttl_steps = 5;
  ShardServer server(tables, 2);
  const auto old_keys = Keys(50, 1), new_keys = Keys(30, 2);
  std::vector<float> out(50 * 8);
  server.Pull(1, old_keys.data(), 50, 1, out.data());
  server.Pull(1, new_keys.data(), 30, 20, out.data());
  ASSERT_TRUE(server.Save(root.string(), 22).ok());
  EXPECT_EQ(server.NumRows(1), 30);  // rows last touched at step 1 are older than 5 steps
  ShardServer loaded(tables, 1);
  ASSERT_TRUE(
      loaded.Load({(root / "shard-0").string(), (root / "shard-1").string()}, nullptr).ok());
  EXPECT_EQ(loaded.NumRows(1), 30);
  fs::remove_all(root);
}

TEST(ShardServerDeathTest, UnknownTableIsABug) {
  ShardServer server(Tables(), 1);
  const uint64_t key = 1;
  float out[8];
  EXPECT_DEATH(server.Pull(9, &key, 1, 0, out), "unknown table id 9");
}

}  // namespace
}  // namespace attnps::ps
