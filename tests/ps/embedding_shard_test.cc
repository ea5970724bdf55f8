#include "ps/embedding_shard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "ps/sharding.h"

namespace attnps::ps {
namespace {

TableConfig SmallTable(int dim = 4) {
  TableConfig c;
  c.name = "items";
  c.id = 3;
  c.dim = dim;
  c.seed = 42;
  c.optimizer.kind = SparseOptimizerKind::kSgd;
  c.optimizer.learning_rate = 0.5f;
  return c;
}

std::vector<float> PullOne(EmbeddingShard* shard, uint64_t key, uint64_t step = 1) {
  std::vector<float> out(shard->dim());
  shard->Pull(&key, 1, step, out.data());
  return out;
}

TEST(InitializerTest, ValuesIdenticalWhateverTheShardCount) {
  const TableConfig config = SmallTable(8);
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 200; ++k) keys.push_back(k * 7919 + 13);
  EmbeddingShard single(config);
  std::vector<float> want(keys.size() * config.dim);
  single.Pull(keys.data(), static_cast<int64_t>(keys.size()), 1, want.data());
  for (int shards : {2, 3, 5}) {
    std::vector<std::unique_ptr<EmbeddingShard>> table;
    for (int s = 0; s < shards; ++s) table.push_back(std::make_unique<EmbeddingShard>(config));
    for (size_t i = 0; i < keys.size(); ++i) {
      std::vector<float> got = PullOne(table[ShardOf(keys[i], shards)].get(), keys[i]);
      for (int j = 0; j < config.dim; ++j) ASSERT_EQ(got[j], want[i * config.dim + j]);
    }
  }
}

TEST(InitializerTest, UniformStaysInRangeAndDiffersPerKeyAndTable) {
  TableConfig c = SmallTable(16);
  c.initializer.kind = InitializerKind::kUniform;
  c.initializer.low = -0.2f;
  c.initializer.high = 0.3f;
  EmbeddingShard a(c);
  TableConfig other = c;
  other.id = 4;
  EmbeddingShard b(other);
  double sum = 0;
  for (uint64_t k = 0; k < 500; ++k) {
    for (float v : PullOne(&a, k)) {
      ASSERT_GE(v, -0.2f);
      ASSERT_LT(v, 0.3f);
      sum += v;
    }
  }
  EXPECT_NEAR(sum / (500 * 16), 0.05, 0.01);
  EXPECT_NE(PullOne(&a, 1), PullOne(&a, 2));
  EXPECT_NE(PullOne(&a, 1), PullOne(&b, 1));
}

TEST(InitializerTest, TruncatedNormalWithinTwoStddev) {
  TableConfig c = SmallTable(32);
  c.initializer.kind = InitializerKind::kTruncatedNormal;
  c.initializer.stddev = 0.1f;
  EmbeddingShard shard(c);
  double sum = 0, sq = 0;
  const int keys = 1000;
  for (uint64_t k = 0; k < keys; ++k) {
    for (float v : PullOne(&shard, k)) {
      ASSERT_LE(std::fabs(v), 0.2f);
      sum += v;
      sq += v * v;
    }
  }
  const double n = keys * 32.0;
  EXPECT_NEAR(sum / n, 0.0, 0.005);
  // The variance of N(0, 1) truncated at +-2 is 0.774.
  EXPECT_NEAR(std::sqrt(sq / n), 0.1 * std::sqrt(0.774), 0.004);
}

TEST(EmbeddingShardTest, PushAppliesOptimizerToExistingRowsOnly) {
  EmbeddingShard shard(SmallTable());
  const std::vector<float> before = PullOne(&shard, 5);
  const uint64_t keys[2] = {5, 6};  // 6 was never pulled: no row
  const std::vector<float> grads(8, 1.0f);
  EXPECT_EQ(shard.Push(keys, 2, grads.data(), 9), 1);
  const std::vector<float> after = PullOne(&shard, 5);
  for (int j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(after[j], before[j] - 0.5f);
  EXPECT_EQ(shard.LastUpdate(5), 9u);
  EXPECT_EQ(shard.Find(6), nullptr);
}

TEST(AdmissionTest, KeyGetsARowAtItsMinCountthPull) {
  TableConfig c = SmallTable();
  c.admission.min_count = 3;
  EmbeddingShard shard(c);
  EmbeddingShard reference(SmallTable());
  const std::vector<float> initial = PullOne(&reference, 77);
  EXPECT_EQ(PullOne(&shard, 77), initial);  // seen once: initializer value, nothing stored
  EXPECT_EQ(shard.num_rows(), 0);
  EXPECT_EQ(shard.num_pending(), 1);
  PullOne(&shard, 77);
  EXPECT_EQ(shard.num_rows(), 0);
  const float g[4] = {1, 1, 1, 1};
  const uint64_t key = 77;
  EXPECT_EQ(shard.Push(&key, 1, g, 2), 0);  // not admitted: gradient dropped
  EXPECT_EQ(PullOne(&shard, 77), initial);  // third sighting: admitted
  EXPECT_EQ(shard.num_rows(), 1);
  EXPECT_EQ(shard.num_pending(), 0);
}

TEST(AdmissionTest, UnadmittedKeysCanReadZeros) {
  TableConfig c = SmallTable();
  c.admission.min_count = 2;
  c.admission.unadmitted_value = UnadmittedValue::kZeros;
  EmbeddingShard shard(c);
  EXPECT_EQ(PullOne(&shard, 1), std::vector<float>(4, 0.0f));
}

TEST(EvictionTest, TtlRemovesRowsNotUpdatedRecently) {
  TableConfig c = SmallTable();
  c.eviction.ttl_steps = 10;
  EmbeddingShard shard(c);
  const float g[4] = {0, 0, 0, 0};
  for (uint64_t key = 0; key < 4; ++key) {
    PullOne(&shard, key, 0);
    shard.Push(&key, 1, g, key * 10);  // last updates 0, 10, 20, 30
  }
  EXPECT_EQ(shard.Evict(30), 2);  // 0 and 10 are more than 10 steps old; 20 is exactly 10: kept
  EXPECT_EQ(shard.Find(0), nullptr);
  EXPECT_EQ(shard.Find(1), nullptr);
  EXPECT_NE(shard.Find(2), nullptr);
  EXPECT_NE(shard.Find(3), nullptr);
  EXPECT_EQ(shard.Evict(31), 1);
  EXPECT_EQ(shard.Find(2), nullptr);
}

TEST(EvictionTest, MaxRowsRemovesLeastRecentlyUpdatedFirst) {
  TableConfig c = SmallTable();
  c.eviction.max_rows = 3;
  EmbeddingShard shard(c);
  const float g[4] = {0, 0, 0, 0};
  const uint64_t order[5] = {4, 0, 3, 1, 2};  // update steps 1..5
  for (int i = 0; i < 5; ++i) {
    PullOne(&shard, order[i], 0);
    shard.Push(&order[i], 1, g, i + 1);
  }
  EXPECT_EQ(shard.Evict(6), 2);
  EXPECT_EQ(shard.num_rows(), 3);
  EXPECT_EQ(shard.Find(4), nullptr);
  EXPECT_EQ(shard.Find(0), nullptr);
  // Freed slots are reused and the survivors are intact.
  PullOne(&shard, 100, 7);
  EXPECT_EQ(shard.num_rows(), 4);
  EXPECT_EQ(shard.LastUpdate(2), 5u);
}

}  // namespace
}  // namespace attnps::ps
