// The staleness bound of SparsePipeline, against a serial re-computation of SGD, over a local-mode
// job (in-process servers behind the real client and server loop).
#include "worker/sparse_pipeline.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "ps/job_runtime.h"

namespace attnps::worker {
namespace {

constexpr int kDim = 4;
constexpr float kLr = 0.5f;
constexpr int kSteps = 30;

std::unique_ptr<ps::JobRuntime> LocalJob(int servers) {
  ps::TableConfig t;
  t.name = "items";
  t.id = 1;
  t.dim = kDim;
  t.optimizer.kind = ps::SparseOptimizerKind::kSgd;
  t.optimizer.learning_rate = kLr;
  ps::RuntimeOptions options;
  options.servers = servers;
  options.tables = {t};
  std::unique_ptr<ps::JobRuntime> job;
  EXPECT_TRUE(ps::JobRuntime::CreateLocal(options, &job).ok());
  return job;
}

// Step s touches 12 of 20 keys; every key's gradient is a known function of (step, key).
std::unique_ptr<SparseBatch> Batch(uint64_t step) {
  auto b = std::make_unique<SparseBatch>();
  b->step = step;
  b->keys.resize(1);
  std::mt19937 rng(static_cast<unsigned>(step));
  std::vector<uint64_t> all(20);
  for (int i = 0; i < 20; ++i) all[i] = 1000 + i;
  std::shuffle(all.begin(), all.end(), rng);
  b->keys[0].assign(all.begin(), all.begin() + 12);
  return b;
}

float Grad(uint64_t step, uint64_t key, int d) { return 0.01f * ((step * 7 + key + d) % 11); }

void FillGrads(SparseBatch* b) {
  b->grads.assign(1, std::vector<float>(b->keys[0].size() * kDim));
  for (size_t i = 0; i < b->keys[0].size(); ++i) {
    for (int d = 0; d < kDim; ++d) b->grads[0][i * kDim + d] = Grad(b->step, b->keys[0][i], d);
  }
}

// Runs kSteps through the pipeline; for every pulled row, records how many of this key's earlier
// pushes it reflects (by matching the serial SGD history of the key).
std::vector<int> MissedPushes(int staleness, int servers, int* max_pulls_in_flight) {
  auto job = LocalJob(servers);
  SparsePipeline pipeline(job->client(), {{1, kDim}}, staleness);
  std::map<uint64_t, std::vector<std::vector<float>>> history;  // key -> value after each push
  std::map<uint64_t, std::vector<float>> initial;
  std::vector<int> missed;
  uint64_t submitted = 0;
  *max_pulls_in_flight = 0;
  for (uint64_t step = 0; step < kSteps; ++step) {
    // Submit one batch more than the bound lets pull, so that the bound is what holds it back.
    while (submitted < kSteps && submitted <= step + staleness + 1) {
      pipeline.Submit(Batch(submitted++));
    }
    *max_pulls_in_flight = std::max(*max_pulls_in_flight, pipeline.pulls_in_flight());
    std::unique_ptr<SparseBatch> b;
    EXPECT_TRUE(pipeline.Next(&b).ok());
    for (size_t i = 0; i < b->keys[0].size(); ++i) {
      const uint64_t key = b->keys[0][i];
      const std::vector<float> row(b->rows[0].begin() + i * kDim,
                                   b->rows[0].begin() + (i + 1) * kDim);
      if (!initial.count(key)) initial[key] = row;  // first pull: the initializer's value
      auto& h = history[key];
      int found = -1;  // newest history entry equal to the row
      for (int j = static_cast<int>(h.size()); j >= 0 && found < 0; --j) {
        if ((j == 0 ? initial[key] : h[j - 1]) == row) found = j;
      }
      missed.push_back(found < 0 ? 1000 : static_cast<int>(h.size()) - found);
    }
    FillGrads(b.get());
    // The serial result of this push, from the newest serial value.
    for (size_t i = 0; i < b->keys[0].size(); ++i) {
      const uint64_t key = b->keys[0][i];
      auto& h = history[key];
      std::vector<float> v = h.empty() ? initial[key] : h.back();
      for (int d = 0; d < kDim; ++d) v[d] -= kLr * b->grads[0][i * kDim + d];
      h.push_back(v);
    }
    EXPECT_TRUE(pipeline.Push(std::move(b)).ok());
  }
  EXPECT_TRUE(pipeline.Drain().ok());
  EXPECT_TRUE(job->Finish().ok());
  return missed;
}

TEST(SparsePipelineTest, StalenessZeroSeesEveryEarlierPush) {
  int in_flight = 0;
  for (int servers : {1, 2}) {
    for (int m : MissedPushes(0, servers, &in_flight)) EXPECT_EQ(m, 0);
    EXPECT_LE(in_flight, 1);
  }
}

TEST(SparsePipelineTest, StalenessTwoMissesAtMostTwoPushesAndPrefetches) {
  int in_flight = 0;
  int max_missed = 0;
  for (int m : MissedPushes(2, 2, &in_flight)) {
    EXPECT_LE(m, 2);
    max_missed = std::max(max_missed, m);
  }
  EXPECT_GE(in_flight, 2) << "later steps' pulls were not issued ahead";
}

TEST(SparsePipelineTest, StalenessOneNeverReadsOlderThanOneStep) {
  int in_flight = 0;
  for (int m : MissedPushes(1, 1, &in_flight)) EXPECT_LE(m, 1);
  EXPECT_GE(in_flight, 1);
}

TEST(SparsePipelineTest, AFailedPullIsReturnedNamingTheStep) {
  auto job = LocalJob(1);
  SparsePipeline pipeline(job->client(), {{1, kDim + 1}}, 0);  // wrong dim: the server refuses
  pipeline.Submit(Batch(5));
  std::unique_ptr<SparseBatch> b;
  const Status st = pipeline.Next(&b);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("pull of step 5"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace attnps::worker
