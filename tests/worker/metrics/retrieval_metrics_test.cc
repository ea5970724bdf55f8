#include "worker/metrics/retrieval_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace attnps::metrics {
namespace {

std::vector<uint64_t> Items(const std::vector<ScoredItem>& list) {
  std::vector<uint64_t> out;
  for (const ScoredItem& s : list) out.push_back(s.item);
  return out;
}

TEST(RetrievalMetricsTest, RecallNdcgHitRateByHand) {
  RetrievalSums sums;
  // Hits at ranks 1 and 3 of 4; three distinct targets (7 twice).
  AddRankedUser({5, 3, 9, 1}, {3, 1, 7, 7}, 4, &sums);
  const double dcg = 1 / std::log2(3.0) + 1 / std::log2(5.0);
  const double idcg = 1 + 1 / std::log2(3.0) + 1 / std::log2(4.0);
  EXPECT_DOUBLE_EQ(sums.users, 1);
  EXPECT_DOUBLE_EQ(sums.Recall(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(sums.Ndcg(), dcg / idcg);
  EXPECT_DOUBLE_EQ(sums.HitRate(), 1);
  // Cut at 2: one hit; the ideal has min(3, 2) hits.
  RetrievalSums two;
  AddRankedUser({5, 3, 9, 1}, {3, 1, 7}, 2, &two);
  EXPECT_DOUBLE_EQ(two.Recall(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(two.Ndcg(), (1 / std::log2(3.0)) / (1 + 1 / std::log2(3.0)));
  // A miss, a perfect list, and a user without targets (not counted): the sums add.
  AddRankedUser({8, 9}, {1}, 2, &sums);
  AddRankedUser({1, 2, 3}, {2, 1}, 3, &sums);
  AddRankedUser({1, 2, 3}, {}, 3, &sums);
  EXPECT_DOUBLE_EQ(sums.users, 3);
  EXPECT_DOUBLE_EQ(sums.HitRate(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(sums.Recall(), (2.0 / 3 + 0 + 1) / 3);
  EXPECT_DOUBLE_EQ(sums.Ndcg(), (dcg / idcg + 0 + 1) / 3);
  RetrievalSums merged;
  merged.Add(sums);
  merged.Add(two);
  EXPECT_DOUBLE_EQ(merged.users, 4);
  EXPECT_TRUE(std::isnan(RetrievalSums().Recall()));
}

TEST(RetrievalMetricsTest, SampledRankCountsTiesAgainstTheTarget) {
  RetrievalSums sums;
  AddSampledUser(0.5f, {0.1f, 0.9f, 0.2f}, 10, &sums);  // rank 1
  EXPECT_DOUBLE_EQ(sums.HitRate(), 1);
  EXPECT_DOUBLE_EQ(sums.Ndcg(), 1 / std::log2(3.0));
  AddSampledUser(0.5f, {0.5f, 0.5f}, 2, &sums);  // rank 2: not in the top 2
  EXPECT_DOUBLE_EQ(sums.HitRate(), 0.5);
  AddSampledUser(std::nanf(""), {0.1f}, 10, &sums);  // a NaN target ranks last: rank 1
  EXPECT_DOUBLE_EQ(sums.hits, 2);
  RetrievalSums top;
  AddSampledUser(2.0f, {1.0f, 0.0f}, 1, &top);
  EXPECT_DOUBLE_EQ(top.Ndcg(), 1);
}

TEST(RetrievalMetricsTest, MergeKeepsEachItemsBestScore) {
  const std::vector<std::vector<ScoredItem>> lists = {{{4, 0.9f}, {2, 0.5f}, {7, 0.1f}},
                                                      {{2, 0.8f}, {9, 0.7f}, {4, 0.2f}}};
  EXPECT_EQ(Items(MergeByScore(lists, 3)), (std::vector<uint64_t>{4, 2, 9}));
  const std::vector<ScoredItem> all = MergeByScore(lists, 10);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_FLOAT_EQ(all[1].score, 0.8f);
  EXPECT_TRUE(MergeByScore(lists, 0).empty());
}

TEST(RetrievalMetricsTest, GreedyDiversityTradesScoreForNewCategories) {
  // Items 1..4 in category 1 with high scores, 5 and 6 in category 2.
  const std::vector<uint64_t> cate = {0, 1, 1, 1, 1, 2, 2};
  const std::vector<std::vector<ScoredItem>> lists = {{{1, 1.0f}, {2, 0.9f}, {3, 0.8f}, {4, 0.7f}},
                                                      {{5, 0.5f}, {6, 0.4f}}};
  EXPECT_EQ(Items(GreedyDiverse(lists, cate, 0.0, 3)), Items(MergeByScore(lists, 3)));
  // lambda 0.3: after item 1, item 2 is worth 0.6 and item 5 0.5; after 1, 2: item 3 is worth 0.2.
  EXPECT_EQ(Items(GreedyDiverse(lists, cate, 0.3, 3)), (std::vector<uint64_t>{1, 2, 5}));
  EXPECT_EQ(Items(GreedyDiverse(lists, cate, 1.0, 3)), (std::vector<uint64_t>{1, 5, 2}));
  EXPECT_EQ(GreedyDiverse(lists, cate, 1.0, 10).size(), 6u);
}

}  // namespace
}  // namespace attnps::metrics
