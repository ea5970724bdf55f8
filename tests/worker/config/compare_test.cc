// CompareStateConfig: which config differences keep a checkpoint loadable.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "worker/config/job_config.h"

namespace attnps::config {
namespace {

// A valid DIN config with every state setting left at its default where possible.
constexpr char kSaved[] = R"pb(
  data { train_path: "train.tsv" }
  tables { name: "item" dim: 8 }
  tables { name: "cate" dim: 16 }
  features { item_table: "item" cate_table: "cate" }
  model { din {} }
)pb";

JobConfig Parse(const std::string& text) {
  JobConfig config;
  const Status s = ParseJobConfig(text, "test", &config);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return config;
}

JobConfig Saved() { return Parse(kSaved); }

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(CompareStateConfigTest, IdenticalConfigsMatchWithNoChanges) {
  std::vector<std::string> changed;
  const Status s = CompareStateConfig(Saved(), Saved(), &changed);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(changed.empty());
}

TEST(CompareStateConfigTest, SwappedTableDimsAreMismatches) {
  JobConfig now = Saved();
  now.mutable_tables(0)->set_dim(16);
  now.mutable_tables(1)->set_dim(8);
  const Status s = CompareStateConfig(Saved(), now, nullptr);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(
      s.message(),
      "tables[0].dim: 8 in the checkpoint, 16 now; tables[1].dim: 16 in the checkpoint, 8 now");
}

TEST(CompareStateConfigTest, SwappedFeatureTablesAreMismatches) {
  JobConfig now = Saved();
  now.mutable_features()->set_item_table("cate");
  now.mutable_features()->set_cate_table("item");
  const Status s = CompareStateConfig(Saved(), now, nullptr);
  EXPECT_EQ(s.message(),
            "features.item_table: \"item\" in the checkpoint, \"cate\" now; "
            "features.cate_table: \"cate\" in the checkpoint, \"item\" now");
}

TEST(CompareStateConfigTest, AttentionNormalizationIsAMismatch) {
  JobConfig now = Saved();
  now.mutable_model()->mutable_din()->set_attention_normalization(DinModel::SOFTMAX);
  const Status s = CompareStateConfig(Saved(), now, nullptr);
  EXPECT_EQ(s.message(), "model.din.attention_normalization: NONE in the checkpoint, SOFTMAX now");
}

TEST(CompareStateConfigTest, ModelKindIsAMismatch) {
  JobConfig now = Saved();
  now.mutable_model()->mutable_base();
  ASSERT_FALSE(now.model().has_din());
  const Status s = CompareStateConfig(Saved(), now, nullptr);
  EXPECT_EQ(s.message(), "model.kind: din in the checkpoint, base now");
}

TEST(CompareStateConfigTest, LayerListsCompareWithTheirDefaults) {
  JobConfig now = Saved();
  now.mutable_model()->mutable_mlp()->add_hidden(256);
  now.mutable_model()->mutable_din()->add_attention_hidden(80);
  now.mutable_model()->mutable_din()->add_attention_hidden(40);  // the default, written out
  const Status s = CompareStateConfig(Saved(), now, nullptr);
  EXPECT_EQ(s.message(), "model.mlp.hidden: [200, 80] in the checkpoint, [256] now");
}

TEST(CompareStateConfigTest, UnsetFieldsEqualTheirDefaults) {
  const JobConfig now = Parse(R"pb(
    data { train_path: "train.tsv" max_history: 50 }
    tables {
      name: "item"
      dim: 8
      seed: 1
      initializer { kind: TRUNCATED_NORMAL low: -0.05 high: 0.05 stddev: 0.01 }
      optimizer { kind: ADAGRAD learning_rate: 0.01 initial_accumulator: 0.1 epsilon: 1e-8 }
      admission { min_count: 1 unadmitted_value: INITIALIZER }
      eviction { ttl_steps: 0 max_rows: 0 }
    }
    tables {
      name: "cate"
      dim: 16
      initializer {}
      optimizer {}
    }
    features { user_table: "" item_table: "item" cate_table: "cate" }
    model {
      mlp {
        hidden: [ 200, 80 ]
        activation: DICE
        dice_epsilon: 1e-9
        dice_momentum: 0.99
      }
      din {
        attention_hidden: [ 80, 40 ]
        attention_activation: SIGMOID
        attention_normalization: NONE
        softmax_scale: 1
        multi_head_target_attention { heads: 0 }
        senet {}
      }
    }
    dense_optimizer { kind: ADAM learning_rate: 1e-3 }
    train { batch_size: 128 epochs: 1 }
    ps { servers: 1 }
  )pb");
  std::vector<std::string> changed;
  const Status s = CompareStateConfig(Saved(), now, &changed);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(changed.empty()) << changed[0];
}

TEST(CompareStateConfigTest, LearningRatesEpochsAndServersMayChangeAndAreReported) {
  JobConfig saved = Saved();
  saved.mutable_tables(1)->mutable_optimizer()->set_kind(SparseOptimizerConfig::FTRL);
  JobConfig now = saved;
  now.mutable_data()->set_train_path("more.tsv");
  now.mutable_tables(0)->mutable_optimizer()->set_learning_rate(0.02f);
  now.mutable_tables(1)->mutable_optimizer()->set_ftrl_alpha(0.1f);
  now.mutable_dense_optimizer()->set_learning_rate(5e-4f);
  now.mutable_dense_optimizer()->set_clip_global_norm(5);
  now.mutable_train()->set_epochs(2);
  now.mutable_ps()->set_servers(4);
  now.mutable_checkpoint()->set_keep_last(0);
  std::vector<std::string> changed = {"earlier entry"};
  const Status s = CompareStateConfig(saved, now, &changed);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(changed, (std::vector<std::string>{
                         "earlier entry",
                         "data.train_path: \"train.tsv\" -> \"more.tsv\"",
                         "tables[0].optimizer.learning_rate: 0.01 -> 0.02",
                         "tables[1].optimizer.ftrl_alpha: 0.05 -> 0.1",
                         "dense_optimizer.learning_rate: 0.001 -> 0.0005",
                         "dense_optimizer.clip_global_norm: 0 -> 5",
                         "train.epochs: 1 -> 2",
                         "ps.servers: 1 -> 4",
                         "checkpoint.keep_last: 3 -> 0",
                     }));
}

TEST(CompareStateConfigTest, OptimizerKindsAndHyperparametersAreState) {
  JobConfig now = Saved();
  now.mutable_tables(0)->mutable_optimizer()->set_kind(SparseOptimizerConfig::ADAM);
  now.mutable_tables(1)->mutable_optimizer()->set_initial_accumulator(0.5f);
  now.mutable_dense_optimizer()->set_kind(DenseOptimizerConfig::SGD);
  now.mutable_dense_optimizer()->set_beta1(0.5f);  // allowed: reported, not a mismatch
  std::vector<std::string> changed;
  const Status s = CompareStateConfig(Saved(), now, &changed);
  EXPECT_EQ(s.message(),
            "tables[0].optimizer.kind: ADAGRAD in the checkpoint, ADAM now; "
            "tables[1].optimizer.initial_accumulator: 0.1 in the checkpoint, 0.5 now; "
            "dense_optimizer.kind: ADAM in the checkpoint, SGD now");
  EXPECT_EQ(changed, (std::vector<std::string>{"dense_optimizer.beta1: 0.9 -> 0.5"}));
}

TEST(CompareStateConfigTest, ReportsEveryMismatchIncludingTheTableCount) {
  JobConfig now = Saved();
  now.mutable_tables(0)->set_name("items");
  now.mutable_tables(1)->set_seed(7);
  now.mutable_tables(1)->mutable_eviction()->set_max_rows(1000);
  TableConfig* user = now.add_tables();
  user->set_name("user");
  now.mutable_features()->set_user_table("user");
  now.mutable_features()->set_item_table("items");
  now.mutable_model()->mutable_mlp()->set_activation(RELU);
  const Status s = CompareStateConfig(Saved(), now, nullptr);
  const std::string& m = s.message();
  EXPECT_TRUE(Contains(m, "tables: 2 in the checkpoint, 3 now")) << m;
  EXPECT_TRUE(Contains(m, "tables[0].name: \"item\" in the checkpoint, \"items\" now")) << m;
  EXPECT_TRUE(Contains(m, "tables[1].seed: 1 in the checkpoint, 7 now")) << m;
  EXPECT_TRUE(Contains(m, "tables[1].eviction.max_rows: 0 in the checkpoint, 1000 now")) << m;
  EXPECT_TRUE(Contains(m, "features.user_table: \"\" in the checkpoint, \"user\" now")) << m;
  EXPECT_TRUE(Contains(m, "features.item_table: \"item\" in the checkpoint, \"items\" now")) << m;
  EXPECT_TRUE(Contains(m, "model.mlp.activation: DICE in the checkpoint, RELU now")) << m;
}

TEST(CompareStateConfigTest, FloatsPrintAsTheirShortestText) {
  JobConfig now = Saved();
  now.mutable_tables(0)->mutable_initializer()->set_stddev(0.0100001f);
  const Status s = CompareStateConfig(Saved(), now, nullptr);
  EXPECT_EQ(s.message(), "tables[0].initializer.stddev: 0.01 in the checkpoint, 0.0100001 now");
}

}  // namespace
}  // namespace attnps::config
