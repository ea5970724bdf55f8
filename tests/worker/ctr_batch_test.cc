// Feature slots: keys are deduped per table across every slot that shares it, gathered rows are
// the pulled rows of each slot's ids, and scattered gradients sum onto each unique key.
#include "worker/ctr_batch.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>

#include "worker/config/job_config.h"
#include "worker/ctr_task.h"

namespace attnps::worker {
namespace {

// Items and a tag list share the item table; two user-profile slots have a table each.
constexpr char kSlots[] = R"(
  data { train_path: "x" max_history: 4 }
  tables { name: "item" dim: 3 }
  tables { name: "cate" dim: 2 }
  tables { name: "age" dim: 2 }
  tables { name: "gender" dim: 1 }
  features {
    slots { name: "item" table: "item" column: 3 }
    slots { name: "cate" table: "cate" column: 4 }
    slots { name: "hist_items" table: "item" kind: SEQUENCE column: 5 }
    slots { name: "hist_cates" table: "cate" kind: SEQUENCE column: 6 }
    slots { name: "age" table: "age" column: 7 }
    slots { name: "gender" table: "gender" column: 8 }
    slots { name: "tags" table: "item" kind: SEQUENCE column: 9 }
  }
  model { din {} }
)";

config::JobConfig Parse(const std::string& text) {
  config::JobConfig c;
  const Status st = config::ParseJobConfig(text, "test", &c);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return c;
}

std::vector<data::CtrSample> RandomSamples(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<data::CtrSample> out(n);
  for (data::CtrSample& s : out) {
    s.label = static_cast<float>(rng() % 2);
    s.user = 1 + rng() % 5;
    s.item = 1 + rng() % 8;
    s.cate = 1 + rng() % 3;
    for (int t = 0, len = static_cast<int>(rng() % 6); t < len; ++t) {
      s.hist_items.push_back(1 + rng() % 8);
      s.hist_cates.push_back(1 + rng() % 3);
    }
    std::vector<uint64_t> tags;
    for (int t = 0, len = static_cast<int>(rng() % 3); t < len; ++t) tags.push_back(1 + rng() % 8);
    s.extra = {{1 + rng() % 7}, {1 + rng() % 2}, tags};
  }
  return out;
}

// A row per (table, key) that identifies it: row[d] = 100 * table + key + 0.1 * d.
float RowValue(int table, uint64_t key, int d) {
  return 100.0f * table + static_cast<float>(key) + 0.1f * d;
}

TEST(CtrBatchTest, KeysAreDedupedPerTableAcrossTheSlotsThatShareIt) {
  const CtrLayout layout = MakeCtrLayout(Parse(kSlots));
  ASSERT_EQ(layout.tables.size(), 4u);  // item, cate, age, gender: in order of first use
  EXPECT_EQ(layout.tables[0].id, 1u);
  EXPECT_EQ(layout.context.size(), 3u);
  EXPECT_EQ(layout.user_dim(), 2 + 1 + 3);
  CtrBatcher batcher(layout);
  const std::vector<data::CtrSample> samples = RandomSamples(64, 7);
  CtrBatch batch;
  batcher.Index(samples, 3, &batch);
  EXPECT_EQ(batch.num_samples, 64);
  std::set<uint64_t> want_items, want_ages;
  for (const data::CtrSample& s : samples) {
    want_items.insert(s.item);
    const size_t first = s.hist_items.size() > 4 ? s.hist_items.size() - 4 : 0;
    want_items.insert(s.hist_items.begin() + first, s.hist_items.end());
    want_items.insert(s.extra[2].begin(), s.extra[2].end());  // the tags share the item table
    want_ages.insert(s.extra[0][0]);
  }
  const std::set<uint64_t> items(batch.keys[0].begin(), batch.keys[0].end());
  EXPECT_EQ(items.size(), batch.keys[0].size()) << "a key is pulled once per batch";
  EXPECT_EQ(items, want_items);
  EXPECT_EQ(std::set<uint64_t>(batch.keys[2].begin(), batch.keys[2].end()), want_ages);
  EXPECT_EQ(batch.keys[2].size(), want_ages.size());
}

TEST(CtrBatchTest, GatherReadsEachSlotsRowsAndScatterSumsOntoUniqueKeys) {
  const CtrLayout layout = MakeCtrLayout(Parse(kSlots));
  CtrBatcher batcher(layout);
  const std::vector<data::CtrSample> samples = RandomSamples(16, 9);
  CtrBatch batch;
  batcher.Index(samples, 0, &batch);
  batch.rows.resize(layout.tables.size());
  for (size_t t = 0; t < layout.tables.size(); ++t) {
    const int dim = layout.tables[t].dim;
    for (uint64_t key : batch.keys[t]) {
      for (int d = 0; d < dim; ++d) batch.rows[t].push_back(RowValue(t, key, d));
    }
  }
  models::CtrInputs in;
  batcher.Gather(batch, &in);
  const int U = layout.user_dim();
  for (int b = 0; b < 16; ++b) {
    const data::CtrSample& s = samples[b];
    EXPECT_EQ(in.target.data()[b * 5 + 0], RowValue(0, s.item, 0));
    EXPECT_EQ(in.target.data()[b * 5 + 3], RowValue(1, s.cate, 0));
    const float* u = in.user.data() + b * U;
    EXPECT_EQ(u[0], RowValue(2, s.extra[0][0], 0));
    EXPECT_EQ(u[1], RowValue(2, s.extra[0][0], 1));
    EXPECT_EQ(u[2], RowValue(3, s.extra[1][0], 0));
    for (int d = 0; d < 3; ++d) {
      float tags = 0;
      for (uint64_t tag : s.extra[2]) tags += RowValue(0, tag, d);
      EXPECT_FLOAT_EQ(u[3 + d], tags) << "a SEQUENCE context slot is the sum of its rows";
    }
  }
  // Gradients of ones: each key's gradient is scale times the number of its uses in the batch.
  models::CtrInputGrads g;
  g.target = Tensor::Filled(in.target.shape(), 1.0f);
  g.history = Tensor::Filled(in.history.shape(), 1.0f);
  g.user = Tensor::Filled(in.user.shape(), 1.0f);
  batcher.Scatter(g, 2.0f, &batch);
  std::map<uint64_t, int> item_uses, gender_uses;
  for (const data::CtrSample& s : samples) {
    ++item_uses[s.item];
    const size_t first = s.hist_items.size() > 4 ? s.hist_items.size() - 4 : 0;
    for (size_t i = first; i < s.hist_items.size(); ++i) ++item_uses[s.hist_items[i]];
    for (uint64_t tag : s.extra[2]) ++item_uses[tag];
    ++gender_uses[s.extra[1][0]];
  }
  for (size_t k = 0; k < batch.keys[0].size(); ++k) {
    EXPECT_EQ(batch.grads[0][k * 3], 2.0f * item_uses[batch.keys[0][k]]) << batch.keys[0][k];
  }
  for (size_t k = 0; k < batch.keys[3].size(); ++k) {
    EXPECT_EQ(batch.grads[3][k], 2.0f * gender_uses[batch.keys[3][k]]);
  }
}

// DIEN's negatives: one per kept history position, from the pool, never the clicked item there,
// the same on a second Index of the same step (a resumed job) and different at another step;
// gathered like the history and scattered onto the item and cate keys.
TEST(CtrBatchTest, NegativesAreDrawnPerPositionReproduciblyAndScattered) {
  const CtrLayout layout = MakeCtrLayout(Parse(kSlots));
  CtrBatcher batcher(layout);
  std::vector<ItemCate> pool;
  for (uint64_t i = 1; i <= 8; ++i) pool.push_back({i, 10 + i});
  batcher.SetNegativePool(pool, 5);
  const std::vector<data::CtrSample> samples = RandomSamples(32, 11);
  CtrBatch a, again, later, eval;
  batcher.Index(samples, 7, &a, /*draw_negatives=*/true);
  std::vector<uint64_t> negs;
  for (int32_t k : a.neg_item) negs.push_back(a.keys[0][k]);
  batcher.Index(samples, 7, &again, true);
  batcher.Index(samples, 8, &later, true);
  batcher.Index(samples, 7, &eval, false);
  ASSERT_EQ(a.neg_item.size(), a.hist_item.size());
  EXPECT_TRUE(eval.neg_item.empty());
  std::vector<uint64_t> negs_again, negs_later;
  for (int32_t k : again.neg_item) negs_again.push_back(again.keys[0][k]);
  for (int32_t k : later.neg_item) negs_later.push_back(later.keys[0][k]);
  EXPECT_EQ(negs, negs_again);
  EXPECT_NE(negs, negs_later);
  for (size_t n = 0; n < a.hist_item.size(); ++n) {
    EXPECT_NE(a.keys[0][a.neg_item[n]], a.keys[0][a.hist_item[n]]) << "position " << n;
    EXPECT_EQ(a.keys[1][a.neg_cate[n]], 10 + a.keys[0][a.neg_item[n]]) << "the item's category";
  }
  a.rows.resize(layout.tables.size());
  for (size_t t = 0; t < layout.tables.size(); ++t) {
    for (uint64_t key : a.keys[t]) {
      for (int d = 0; d < layout.tables[t].dim; ++d) a.rows[t].push_back(RowValue(t, key, d));
    }
  }
  models::CtrInputs in;
  batcher.Gather(a, &in);
  ASSERT_EQ(in.negatives.shape(), in.history.shape());
  for (size_t n = 0; n < a.neg_item.size(); ++n) {
    EXPECT_EQ(in.negatives.data()[n * 5], RowValue(0, a.keys[0][a.neg_item[n]], 0));
    EXPECT_EQ(in.negatives.data()[n * 5 + 3], RowValue(1, a.keys[1][a.neg_cate[n]], 0));
  }
  models::CtrInputGrads g;
  g.target = Tensor::Zeros(in.target.shape());
  g.history = Tensor::Zeros(in.history.shape());
  g.user = Tensor::Zeros(in.user.shape());
  g.negatives = Tensor::Filled(in.negatives.shape(), 1.0f);
  batcher.Scatter(g, 1.0f, &a);
  std::map<uint64_t, int> draws;
  for (uint64_t item : negs) ++draws[item];
  for (size_t k = 0; k < a.keys[0].size(); ++k) {
    EXPECT_EQ(a.grads[0][k * 3], static_cast<float>(draws[a.keys[0][k]])) << a.keys[0][k];
  }
}

// DIEN reads its negatives' pool at start: a malformed line is refused naming the file and line.
TEST(CtrTaskTest, ABadItemCatesLineIsRefusedNamingFileAndLine) {
  const std::string path = ::testing::TempDir() + "bad_item_cates.tsv";
  std::ofstream(path) << "1\t2\n3 4\n";
  std::string text = kSlots;
  text.replace(text.find("model { din {} }"), 16, "model { dien {} }");
  text.replace(text.find("max_history: 4"), 14, "max_history: 4 item_cates_path: \"" + path + "\"");
  std::unique_ptr<CtrTask> task;
  const Status s = CtrTask::Create(Parse(text), &task);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("data.item_cates_path " + path + ":2: expected"), std::string::npos)
      << s.message();
}

TEST(CtrBatchTest, TheLegacyFeatureFieldsMeanTheSameSlots) {
  const config::JobConfig legacy = Parse(R"(
    data { train_path: "x" }
    tables { name: "item" dim: 3 } tables { name: "cate" dim: 2 } tables { name: "user" dim: 4 }
    features { item_table: "item" cate_table: "cate" user_table: "user" }
    model { base {} })");
  const CtrLayout layout = MakeCtrLayout(legacy);
  ASSERT_EQ(layout.tables.size(), 3u);
  EXPECT_EQ(layout.hist_items.table, layout.target_item.table);
  ASSERT_EQ(layout.context.size(), 1u);
  EXPECT_EQ(layout.context[0].column, config::kUserColumn);
  EXPECT_EQ(layout.user_dim(), 4);
  EXPECT_EQ(layout.extra_columns, 0);
}

TEST(CtrBatchTest, SlotConfigErrorsNameTheField) {
  const std::string base = R"(
    data { train_path: "x" }
    tables { name: "item" dim: 3 } tables { name: "cate" dim: 2 } tables { name: "age" dim: 2 }
    model { base {} }
    features {
      slots { name: "item" table: "item" column: 3 }
      slots { name: "cate" table: "cate" column: 4 }
      slots { name: "hist_items" table: "item" kind: SEQUENCE column: 5 }
  )";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"}", "features.slots: no slot reads column 6 (hist_cates)"},
      {R"(slots { name: "hist_cates" table: "item" kind: SEQUENCE column: 6 } })",
       "features.slots[3].table: \"item\": the history slot \"hist_cates\" must look up the table "
       "of the target slot \"cate\""},
      {R"(slots { name: "hist_cates" table: "cate" column: 6 } })",
       "features.slots[3].kind: column 6 (hist_cates) is a SEQUENCE"},
      {R"(slots { name: "hist_cates" table: "cate" kind: SEQUENCE column: 6 }
          slots { name: "age" table: "agee" column: 7 } })",
       "features.slots[4].table: no table named \"agee\""},
      {R"(slots { name: "hist_cates" table: "cate" kind: SEQUENCE column: 6 }
          slots { name: "item" table: "age" column: 1 } })",
       "features.slots[4].name: duplicate slot name \"item\""},
      {R"(slots { name: "hist_cates" table: "cate" kind: SEQUENCE column: 6 }
          slots { name: "age" table: "age" column: 1 } })",
       "features.slots[4].column: must be 2 (user), 3..6 (target and history) or 7..70"},
      {R"(slots { name: "hist_cates" table: "cate" kind: SEQUENCE column: 6 }
          item_table: "item" })",
       "features.item_table: set together with features.slots"},
  };
  for (const auto& [tail, want] : cases) {
    config::JobConfig c;
    const Status st = config::ParseJobConfig(base + tail, "test", &c);
    EXPECT_NE(st.message().find(want), std::string::npos) << st.ToString() << "\nwant: " << want;
  }
  config::JobConfig c;
  ASSERT_TRUE(config::ParseJobConfigText(base + R"(
      slots { name: "hist_cates" table: "cate" kind: SEQUENCE column: 6 }
      slots { name: "age" table: "age" column: 9 } })",
                                         "test", &c)
                  .ok());
  EXPECT_TRUE(config::ValidateJobConfig(c).ok());
  EXPECT_EQ(config::ExtraColumns(c), 3);  // -1: as many as the slots read
  c.mutable_data()->set_extra_columns(2);
  const Status st = config::ValidateJobConfig(c);
  EXPECT_NE(st.message().find("data.extra_columns: 2, but slot \"age\" reads column 9"),
            std::string::npos)
      << st.ToString();
}

}  // namespace
}  // namespace attnps::worker
