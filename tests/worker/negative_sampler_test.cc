#include "worker/negative_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace attnps::worker {
namespace {

TEST(RankByCountTest, MostFrequentFirstTiesBySmallerIdUnseenLast) {
  // counts by id: 1 -> 3, 2 -> 0, 3 -> 7, 4 -> 3, 5 -> 1
  EXPECT_EQ(RankByCount({0, 3, 0, 7, 3, 1}), (std::vector<uint64_t>{3, 1, 4, 5, 2}));
  EXPECT_TRUE(RankByCount({}).empty());
}

TEST(NegativeSamplerTest, ProbabilitiesSumToOne) {
  for (auto d : {NegativeDistribution::kUniform, NegativeDistribution::kLogUniform}) {
    std::vector<uint64_t> items;
    for (uint64_t i = 1; i <= 1000; ++i) items.push_back(i);
    NegativeSampler sampler(d, items);
    double sum = 0;
    for (int64_t r = 0; r < sampler.size(); ++r) sum += sampler.Probability(r);
    EXPECT_NEAR(sum, 1.0, 1e-9);
  }
}

// Each rank's frequency over 400,000 draws against its Q, within 5 binomial std, and the log-Q
// the sampler reports against log(S * Q).
TEST(NegativeSamplerTest, DrawFrequenciesMatchTheDistribution) {
  const std::vector<uint64_t> ranked = {40, 7, 13, 2, 99, 5, 61, 8, 30, 11};
  for (auto d : {NegativeDistribution::kUniform, NegativeDistribution::kLogUniform}) {
    NegativeSampler sampler(d, ranked);
    std::vector<double> hits(ranked.size(), 0);
    std::vector<uint64_t> ids;
    std::vector<float> log_q;
    const int s = 100, steps = 4000;
    for (int step = 0; step < steps; ++step) {
      sampler.Draw(/*seed=*/5, step, s, &ids, &log_q);
      ASSERT_EQ(ids.size(), static_cast<size_t>(s));
      for (int j = 0; j < s; ++j) {
        const auto it = std::find(ranked.begin(), ranked.end(), ids[j]);
        ASSERT_NE(it, ranked.end()) << ids[j];
        const int64_t r = it - ranked.begin();
        hits[r] += 1;
        EXPECT_NEAR(log_q[j], std::log(s * sampler.Probability(r)), 1e-5);
        EXPECT_FLOAT_EQ(log_q[j], sampler.LogExpectedCount(ids[j], s));
      }
    }
    const double n = static_cast<double>(s) * steps;
    for (size_t r = 0; r < ranked.size(); ++r) {
      const double p = sampler.Probability(static_cast<int64_t>(r));
      EXPECT_NEAR(hits[r], n * p, 5 * std::sqrt(n * p * (1 - p))) << "rank " << r;
    }
  }
}

TEST(NegativeSamplerTest, LogUniformFavoursPopularRanks) {
  std::vector<uint64_t> items;
  for (uint64_t i = 1; i <= 100000; ++i) items.push_back(i);
  NegativeSampler sampler(NegativeDistribution::kLogUniform, items);
  EXPECT_GT(sampler.Probability(0), 100 * sampler.Probability(10000));
  EXPECT_NEAR(sampler.Probability(0), std::log(2.0) / std::log(100001.0), 1e-12);
  // An item outside the corpus gets the rarest rank's correction.
  EXPECT_FLOAT_EQ(sampler.LogExpectedCount(123456789, 10), sampler.LogExpectedCount(100000, 10));
}

TEST(NegativeSamplerTest, DrawsAreAFunctionOfSeedAndStep) {
  std::vector<uint64_t> items;
  for (uint64_t i = 1; i <= 5000; ++i) items.push_back(i);
  NegativeSampler sampler(NegativeDistribution::kUniform, items);
  std::vector<uint64_t> a, b;
  std::vector<float> qa, qb;
  sampler.Draw(1, 7, 64, &a, &qa);
  sampler.Draw(1, 7, 64, &b, &qb);
  EXPECT_EQ(a, b);
  sampler.Draw(1, 8, 64, &b, &qb);
  EXPECT_NE(a, b);
  sampler.Draw(2, 7, 64, &b, &qb);
  EXPECT_NE(a, b);
  sampler.Draw(1, 7, 0, &b, &qb);
  EXPECT_TRUE(b.empty());
}

}  // namespace
}  // namespace attnps::worker
