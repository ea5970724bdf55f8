#include "worker/metrics/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace attnps::metrics {
namespace {

// O(n^2) reference: the fraction of (positive, negative) pairs ranked correctly, ties count 1/2.
double BruteForceAuc(const std::vector<float>& labels, const std::vector<float>& scores) {
  double correct = 0, pairs = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0.5f) continue;
    for (size_t j = 0; j < labels.size(); ++j) {
      if (labels[j] >= 0.5f) continue;
      pairs += 1;
      correct += scores[i] > scores[j] ? 1.0 : scores[i] == scores[j] ? 0.5 : 0.0;
    }
  }
  return pairs > 0 ? correct / pairs : kNaN;
}

TEST(AucTest, MatchesPairwiseBruteForceWithTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 300);
    const int levels = 1 + static_cast<int>(rng() % 20);  // few levels: many ties
    std::vector<float> labels(n), scores(n);
    for (int i = 0; i < n; ++i) {
      labels[i] = static_cast<float>(rng() % 2);
      scores[i] = static_cast<float>(rng() % levels) * 0.25f - 1.0f;
    }
    const double expected = BruteForceAuc(labels, scores);
    const double got = Auc(labels, scores);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << "trial " << trial;
    } else {
      EXPECT_NEAR(got, expected, 1e-12) << "trial " << trial << " n " << n;
    }
  }
}

TEST(AucTest, KnownValues) {
  EXPECT_DOUBLE_EQ(Auc({0, 0, 1, 1}, {0.1f, 0.4f, 0.35f, 0.8f}), 0.75);  // sklearn's example
  EXPECT_DOUBLE_EQ(Auc({0, 1}, {0.2f, 0.9f}), 1.0);
  EXPECT_DOUBLE_EQ(Auc({1, 0}, {0.2f, 0.9f}), 0.0);
  EXPECT_DOUBLE_EQ(Auc({1, 0, 1, 0}, {0.5f, 0.5f, 0.5f, 0.5f}), 0.5);
}

TEST(AucTest, NaNForOneClassEmptyOrNaNScore) {
  EXPECT_TRUE(std::isnan(Auc({1, 1, 1}, {0.1f, 0.2f, 0.3f})));
  EXPECT_TRUE(std::isnan(Auc({0, 0}, {0.1f, 0.2f})));
  EXPECT_TRUE(std::isnan(Auc({}, {})));
  EXPECT_TRUE(std::isnan(Auc({0, 1}, {0.1f, std::nanf("")})));
}

TEST(GaucTest, HandComputedUserWeightedMean) {
  // user 1: 4 samples, AUC 0.75; user 2: 2 samples, AUC 0; user 3: one class, skipped.
  const std::vector<uint64_t> users = {1, 2, 1, 3, 1, 2, 1, 3};
  const std::vector<float> labels = {0, 1, 0, 1, 1, 0, 1, 1};
  const std::vector<float> scores = {0.1f, 0.2f, 0.4f, 0.5f, 0.35f, 0.9f, 0.8f, 0.1f};
  EXPECT_NEAR(Gauc(users, labels, scores), (4 * 0.75 + 2 * 0.0) / 6, 1e-12);
}

TEST(GaucTest, EqualsAucForASingleUser) {
  const std::vector<float> labels = {0, 0, 1, 1, 0, 1};
  const std::vector<float> scores = {0.3f, 0.3f, 0.3f, 0.9f, 0.1f, 0.2f};
  EXPECT_DOUBLE_EQ(Gauc(std::vector<uint64_t>(6, 42), labels, scores), Auc(labels, scores));
}

TEST(GaucTest, NaNWhenNoUserHasBothLabels) {
  EXPECT_TRUE(std::isnan(Gauc({1, 2}, {0, 1}, {0.5f, 0.5f})));
}

TEST(LogLossTest, KnownValuesAndClipping) {
  EXPECT_NEAR(LogLoss({1, 0}, {0.8f, 0.3f}), -(std::log(0.8) + std::log(0.7)) / 2, 1e-7);
  // p = 0 for a positive is clipped to 1e-7: -log(1e-7).
  EXPECT_NEAR(LogLoss({1}, {0.0f}), -std::log(1e-7), 1e-6);
  EXPECT_NEAR(LogLoss({0}, {1.0f}), -std::log(1e-7), 1e-3);
  EXPECT_TRUE(std::isnan(LogLoss({}, {})));
}

TEST(LogLossTest, FromLogitsMatchesProbabilitiesAndIsStable) {
  const std::vector<float> labels = {1, 0, 1, 0};
  const std::vector<float> logits = {2.0f, -1.0f, -0.5f, 0.25f};
  std::vector<float> probs;
  for (float x : logits) probs.push_back(static_cast<float>(1 / (1 + std::exp(-double{x}))));
  EXPECT_NEAR(LogLossFromLogits(labels, logits), LogLoss(labels, probs), 1e-6);
  EXPECT_NEAR(LogLossFromLogits({1}, {-1000.0f}), 1000.0, 1e-9);  // no overflow, no clipping
  EXPECT_NEAR(LogLossFromLogits({0}, {-1000.0f}), 0.0, 1e-12);
  EXPECT_NEAR(LogLossFromLogits({1}, {0.0f}), std::log(2.0), 1e-12);
}

TEST(CtrEvaluatorTest, ComputesAllMetricsAcrossBatches) {
  CtrEvaluator eval;
  const float labels[] = {1, 0, 1, 0};
  const float logits[] = {2.0f, -1.0f, 0.0f, 0.5f};
  const uint64_t users[] = {7, 7, 8, 8};
  eval.Add(labels, logits, users, 2);
  eval.Add(labels + 2, logits + 2, users + 2, 2);
  const CtrResult r = eval.Compute();
  EXPECT_EQ(r.samples, 4);
  EXPECT_DOUBLE_EQ(r.auc, Auc({1, 0, 1, 0}, {2.0f, -1.0f, 0.0f, 0.5f}));
  EXPECT_DOUBLE_EQ(r.gauc, (2 * 1.0 + 2 * 0.0) / 4);
  EXPECT_NEAR(r.logloss, LogLossFromLogits({1, 0, 1, 0}, {2.0f, -1.0f, 0.0f, 0.5f}), 1e-12);
  EXPECT_DOUBLE_EQ(r.positive_rate, 0.5);
  double mean = 0;
  for (float x : logits) mean += 1 / (1 + std::exp(-double{x})) / 4;
  EXPECT_NEAR(r.mean_prediction, mean, 1e-12);
}

TEST(CtrEvaluatorTest, MergeEqualsAddingEverythingToOne) {
  const float labels[] = {1, 0, 0, 1, 1, 0};
  const float logits[] = {0.3f, 0.1f, 0.9f, 0.2f, 0.7f, 0.6f};
  const uint64_t users[] = {1, 1, 2, 2, 3, 3};
  CtrEvaluator all, a, b;
  all.Add(labels, logits, users, 6);
  a.Add(labels, logits, users, 4);
  b.Add(labels + 4, logits + 4, users + 4, 2);
  a.Merge(b);
  const CtrResult x = all.Compute(), y = a.Compute();
  EXPECT_EQ(x.samples, y.samples);
  EXPECT_DOUBLE_EQ(x.auc, y.auc);
  EXPECT_DOUBLE_EQ(x.gauc, y.gauc);
  EXPECT_DOUBLE_EQ(x.logloss, y.logloss);
  a.Clear();
  EXPECT_EQ(a.Compute().samples, 0);
  EXPECT_TRUE(std::isnan(a.Compute().auc));
}

TEST(CtrEvaluatorTest, GaucIsNaNWithoutUsers) {
  CtrEvaluator eval;
  const float labels[] = {1, 0};
  const float logits[] = {1.0f, -1.0f};
  eval.Add(labels, logits, nullptr, 2);
  const CtrResult r = eval.Compute();
  EXPECT_DOUBLE_EQ(r.auc, 1.0);
  EXPECT_TRUE(std::isnan(r.gauc));
}

TEST(MetricsJsonLineTest, FormatsTheDocumentedExample) {
  Record r;
  r.step = 120;
  r.epoch = 1;
  r.split = "test";
  r.samples = 1886;
  r.auc = 0.8031;
  r.gauc = 0.7712;
  r.logloss = 0.5123;
  r.time_s = 12.5;
  EXPECT_EQ(MetricsJsonLine(r),
            R"({"step":120,"epoch":1,"split":"test","samples":1886,"auc":0.8031,)"
            R"("gauc":0.7712,"logloss":0.5123,"time_s":12.5})");
}

TEST(MetricsJsonLineTest, WritesNaNAndInfinityAsNullAndEscapesStrings) {
  Record r;
  r.split = "a\"b\\c\n";
  r.gauc = std::numeric_limits<double>::infinity();
  r.extra = {{"loss", 0.25}, {"samples_per_s", kNaN}};
  EXPECT_EQ(MetricsJsonLine(r),
            R"({"step":0,"epoch":0,"split":"a\"b\\c\u000a","samples":0,"auc":null,)"
            R"("gauc":null,"logloss":null,"time_s":0,"loss":0.25,"samples_per_s":null})");
}

TEST(MetricsJsonLineTest, MakeRecordCopiesTheResult) {
  CtrResult result;
  result.auc = 0.5;
  result.gauc = 0.25;
  result.logloss = 0.125;
  result.samples = 10;
  const Record r = MakeRecord(3, 2, "train", result, 1.5);
  EXPECT_EQ(MetricsJsonLine(r),
            R"({"step":3,"epoch":2,"split":"train","samples":10,"auc":0.5,"gauc":0.25,)"
            R"("logloss":0.125,"time_s":1.5})");
}

TEST(AppendJsonLineTest, AppendsLinesAndReportsBadPaths) {
  const std::string path =
      ::testing::TempDir() + "metrics_test_" + std::to_string(::getpid()) + ".jsonl";
  std::remove(path.c_str());
  ASSERT_TRUE(AppendJsonLine(path, R"({"a":1})").ok());
  ASSERT_TRUE(AppendJsonLine(path, R"({"a":2})").ok());
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  EXPECT_EQ(contents.str(), "{\"a\":1}\n{\"a\":2}\n");
  std::remove(path.c_str());

  const Status bad = AppendJsonLine("/nonexistent_dir_attnps/m.jsonl", "{}");
  EXPECT_EQ(bad.code(), Status::Code::kIoError);
  EXPECT_NE(bad.message().find("/nonexistent_dir_attnps/m.jsonl"), std::string::npos)
      << bad.message();
}

TEST(CtrEvaluatorTest, SerializedShardsMergeToTheWholeResult) {
  const float labels[] = {1, 0, 1, 0, 1, 1};
  const float logits[] = {2.0f, -1.0f, 0.5f, 0.7f, -0.3f, 1.1f};
  const uint64_t users[] = {1, 1, 2, 2, 3, 3};
  CtrEvaluator whole, a, b, merged;
  whole.Add(labels, logits, users, 6);
  a.Add(labels, logits, users, 4);
  b.Add(labels + 4, logits + 4, users + 4, 2);
  ASSERT_TRUE(merged.AppendSerialized(a.Serialize()));
  ASSERT_TRUE(merged.AppendSerialized(b.Serialize()));
  const CtrResult x = whole.Compute(), y = merged.Compute();
  EXPECT_EQ(x.auc, y.auc);
  EXPECT_EQ(x.gauc, y.gauc);
  EXPECT_DOUBLE_EQ(x.logloss, y.logloss);
  EXPECT_FALSE(merged.AppendSerialized(a.Serialize().substr(0, 20))) << "truncated";
  EXPECT_EQ(merged.size(), 6u);
  CtrEvaluator no_users;
  no_users.Add(labels, logits, nullptr, 6);
  CtrEvaluator back;
  ASSERT_TRUE(back.AppendSerialized(no_users.Serialize()));
  EXPECT_TRUE(back.users().empty());
}

}  // namespace
}  // namespace attnps::metrics
