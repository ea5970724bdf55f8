#include "worker/config/job_config.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace attnps::config {
namespace {

// The repository root, from this file's path (CMake passes absolute source paths).
std::string SourceRoot() {
  const std::string file = __FILE__;
  const std::string suffix = "tests/worker/config/job_config_test.cc";
  if (file.size() >= suffix.size() &&
      file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return file.substr(0, file.size() - suffix.size());
  }
  return "./";
}

std::vector<std::string> ExampleConfigs() {
  std::vector<std::string> paths;
  const std::string dir = SourceRoot() + "launch/";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return paths;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 6 && name.compare(name.size() - 6, 6, ".pbtxt") == 0) {
      paths.push_back(dir + name);
    }
  }
  closedir(d);
  return paths;
}

// A small valid config; tests break one field at a time.
constexpr char kValid[] = R"pb(
  data { train_path: "train.tsv" test_path: "test.tsv" }
  tables { name: "item" dim: 18 }
  tables { name: "cate" dim: 18 }
  features { item_table: "item" cate_table: "cate" }
  model { din {} }
)pb";

JobConfig ValidConfig() {
  JobConfig config;
  const Status s = ParseJobConfig(kValid, "valid.pbtxt", &config);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return config;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// ---- loading and parse errors ------------------------------------------------------------------

TEST(JobConfigTest, EveryExampleConfigLoadsAndValidates) {
  const std::vector<std::string> paths = ExampleConfigs();
  ASSERT_GE(paths.size(), 4u) << "no launch/*.pbtxt found under " << SourceRoot();
  for (const std::string& path : paths) {
    JobConfig config;
    const Status s = LoadJobConfig(path, &config);
    EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  }
}

TEST(JobConfigTest, DinMl100kMirrorsTheTorchPeer) {
  JobConfig c;
  const Status s = LoadJobConfig(SourceRoot() + "launch/din_ml100k.pbtxt", &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ItemDim(c), 36);
  EXPECT_EQ(c.features().user_table(), "");
  EXPECT_EQ(FindTable(c, "item")->optimizer().kind(), SparseOptimizerConfig::ADAM);
  EXPECT_FLOAT_EQ(FindTable(c, "item")->optimizer().learning_rate(), 1e-3f);
  ASSERT_TRUE(c.model().has_din());
  EXPECT_EQ(AttentionHidden(c.model().din()), (std::vector<int>{80, 40}));
  EXPECT_EQ(c.model().din().attention_activation(), SIGMOID);
  EXPECT_EQ(c.model().din().attention_normalization(), DinModel::NONE);
  EXPECT_EQ(MlpHidden(c.model().mlp()), (std::vector<int>{200, 80}));
  EXPECT_EQ(c.model().mlp().activation(), DICE);
  EXPECT_EQ(c.dense_optimizer().kind(), DenseOptimizerConfig::ADAM);
  EXPECT_EQ(c.train().batch_size(), 128);
  EXPECT_EQ(c.data().max_history(), 50);
  EXPECT_EQ(c.train().epochs(), 1);
}

TEST(JobConfigTest, UnsetFieldsReadAsDefaults) {
  const JobConfig c = ValidConfig();
  EXPECT_EQ(c.data().max_history(), 50);
  EXPECT_DOUBLE_EQ(c.data().max_bad_fraction(), 0.001);
  EXPECT_EQ(c.data().shuffle_buffer(), 0);
  EXPECT_EQ(c.data().prefetch_batches(), 4);
  EXPECT_EQ(c.train().batch_size(), 128);
  EXPECT_EQ(c.train().epochs(), 1);
  EXPECT_EQ(c.train().seed(), 1u);
  EXPECT_DOUBLE_EQ(c.train().progress_seconds(), 5);
  EXPECT_EQ(c.train().eval_batch_size(), 1024);
  EXPECT_EQ(c.ps().servers(), 1);
  EXPECT_EQ(c.checkpoint().keep_last(), 3);
  EXPECT_TRUE(c.checkpoint().save_at_end());
  EXPECT_TRUE(c.metrics().auc() && c.metrics().gauc() && c.metrics().logloss());
  EXPECT_FLOAT_EQ(c.dense_optimizer().learning_rate(), 1e-3f);
  EXPECT_FLOAT_EQ(c.model().mlp().dice_epsilon(), 1e-9f);
  EXPECT_FLOAT_EQ(c.model().mlp().dice_momentum(), 0.99f);
  EXPECT_FLOAT_EQ(c.model().din().softmax_scale(), 1.0f);
  EXPECT_EQ(c.model().din().attention_activation(), SIGMOID);
  EXPECT_FALSE(c.train().has_batch_size());  // presence: left out, not set to the default
}

TEST(JobConfigTest, TableDefaultsMirrorPsTableConfig) {
  JobConfig c = ValidConfig();
  const ps::TableConfig got = ToPsTables(c)[0];
  const ps::TableConfig want;
  EXPECT_EQ(got.dim, 18);  // set in kValid; the default is checked on a bare message below
  EXPECT_EQ(TableConfig().dim(), want.dim);
  EXPECT_EQ(got.seed, want.seed);
  EXPECT_EQ(got.initializer.kind, want.initializer.kind);
  EXPECT_EQ(got.initializer.low, want.initializer.low);
  EXPECT_EQ(got.initializer.high, want.initializer.high);
  EXPECT_EQ(got.initializer.stddev, want.initializer.stddev);
  EXPECT_EQ(got.optimizer.kind, want.optimizer.kind);
  EXPECT_EQ(got.optimizer.learning_rate, want.optimizer.learning_rate);
  EXPECT_EQ(got.optimizer.initial_accumulator, want.optimizer.initial_accumulator);
  EXPECT_EQ(got.optimizer.epsilon, want.optimizer.epsilon);
  EXPECT_EQ(got.optimizer.beta1, want.optimizer.beta1);
  EXPECT_EQ(got.optimizer.beta2, want.optimizer.beta2);
  EXPECT_EQ(got.optimizer.ftrl_alpha, want.optimizer.ftrl_alpha);
  EXPECT_EQ(got.optimizer.ftrl_beta, want.optimizer.ftrl_beta);
  EXPECT_EQ(got.optimizer.ftrl_l1, want.optimizer.ftrl_l1);
  EXPECT_EQ(got.optimizer.ftrl_l2, want.optimizer.ftrl_l2);
  EXPECT_EQ(got.admission.min_count, want.admission.min_count);
  EXPECT_EQ(got.admission.unadmitted_value, want.admission.unadmitted_value);
  EXPECT_EQ(got.eviction.ttl_steps, want.eviction.ttl_steps);
  EXPECT_EQ(got.eviction.max_rows, want.eviction.max_rows);
}

TEST(JobConfigTest, UnknownFieldFailsWithFileLineColumn) {
  JobConfig c;
  const std::string text = "data { train_path: \"x\" }\ntrain {\n    bach_size: 256\n}\n";
  const Status s = ParseJobConfig(text, "job.pbtxt", &c);
  ASSERT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(StartsWith(s.message(), "job.pbtxt:3:5: ")) << s.message();
  EXPECT_NE(s.message().find("bach_size"), std::string::npos) << s.message();
}

TEST(JobConfigTest, MistypedValueFailsWithFileLineColumn) {
  JobConfig c;
  const Status s = ParseJobConfig("train {\n  batch_size: \"big\"\n}\n", "job.pbtxt", &c);
  ASSERT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(StartsWith(s.message(), "job.pbtxt:2:15: ")) << s.message();
}

TEST(JobConfigTest, BadEnumValueFailsWithFileLineColumn) {
  JobConfig c;
  const Status s = ParseJobConfig("model {\n  mlp { activation: GELU }\n}\n", "job.pbtxt", &c);
  ASSERT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(StartsWith(s.message(), "job.pbtxt:2:21: ")) << s.message();
  EXPECT_NE(s.message().find("GELU"), std::string::npos) << s.message();
}

TEST(JobConfigTest, TwoModelKindsFail) {
  JobConfig c;
  const Status s = ParseJobConfig("model { base {} din {} }", "job.pbtxt", &c);
  ASSERT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(StartsWith(s.message(), "job.pbtxt:1:17: ")) << s.message();
}

TEST(JobConfigTest, RepeatedSingularFieldFailsAtTheRepetition) {
  JobConfig c;
  const Status s = ParseJobConfig("train { epochs: 1\n  epochs: 2 }", "job.pbtxt", &c);
  ASSERT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(StartsWith(s.message(), "job.pbtxt:2:3: ")) << s.message();
}

TEST(JobConfigTest, ColumnsCountTabsAsProtobufDoes) {
  JobConfig c;
  // A tab advances to column 9; a field named like a prefix of another is matched as a word.
  const Status s = ParseJobConfig("train { epochs: 1\n\tepoch: 2 }", "job.pbtxt", &c);
  EXPECT_TRUE(StartsWith(s.message(), "job.pbtxt:2:9: ")) << s.message();
}

TEST(JobConfigTest, LoadReportsMissingFileAndPrefixesErrorsWithThePath) {
  JobConfig c;
  const Status missing = LoadJobConfig("/nonexistent/job.pbtxt", &c);
  EXPECT_EQ(missing.code(), Status::Code::kNotFound);
  EXPECT_NE(missing.message().find("/nonexistent/job.pbtxt"), std::string::npos);

  const std::string path = WriteTemp("bad.pbtxt", "\n\ntrain { epochs: x }\n");
  const Status bad = LoadJobConfig(path, &c);
  EXPECT_TRUE(StartsWith(bad.message(), path + ":3:17: ")) << bad.message();

  const std::string invalid = WriteTemp("invalid.pbtxt", "train { epochs: 1 }\n");
  const Status semantic = LoadJobConfig(invalid, &c);
  EXPECT_TRUE(StartsWith(semantic.message(), invalid + ": ")) << semantic.message();
  EXPECT_NE(semantic.message().find("data.train_path: must be set"), std::string::npos)
      << semantic.message();
  std::remove(path.c_str());
  std::remove(invalid.c_str());
}

TEST(JobConfigTest, LoadRefusesADirectoryNamingIt) {
  const std::string dir = ::testing::TempDir() + std::to_string(::getpid()) + "_config_dir";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
  JobConfig c;
  const Status s = LoadJobConfig(dir, &c);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find(dir + ": is a directory, not a config file"), std::string::npos)
      << s.message();
  ::rmdir(dir.c_str());
}

TEST(JobConfigTest, LoadReportsAnUnreadableFileWithTheReason) {
  const std::string path = WriteTemp("unreadable.pbtxt", kValid);
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  if (std::ifstream(path).good()) {  // root reads it anyway
    std::remove(path.c_str());
    GTEST_SKIP() << "running with permission to read a mode-000 file";
  }
  JobConfig c;
  const Status s = LoadJobConfig(path, &c);
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_NE(s.message().find(path + ": cannot open: " + std::strerror(EACCES)), std::string::npos)
      << s.message();
  std::remove(path.c_str());
}

TEST(JobConfigTest, LoadAppliesOverridesBeforeValidating) {
  std::string text = kValid;
  const std::string train_path = "train_path: \"train.tsv\"";
  text.erase(text.find(train_path), train_path.size());
  const std::string path = WriteTemp("partial.pbtxt", text);
  JobConfig c;
  const Status without = LoadJobConfig(path, &c);
  EXPECT_NE(without.message().find("data.train_path: must be set"), std::string::npos)
      << without.message();
  const Status s = LoadJobConfig(path, {"data.train_path=/x", "train.batch_size=7"}, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.data().train_path(), "/x");
  EXPECT_EQ(c.train().batch_size(), 7);
  EXPECT_FALSE(LoadJobConfig(path, {"data.train_path=/x", "train.batch_size=0"}, &c).ok());
  std::remove(path.c_str());
}

TEST(JobConfigTest, ToTextRoundTrips) {
  JobConfig c;
  ASSERT_TRUE(LoadJobConfig(SourceRoot() + "launch/din_synthetic.pbtxt", &c).ok());
  JobConfig back;
  const Status s = ParseJobConfig(ToText(c), "text", &back);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(back.SerializeAsString(), c.SerializeAsString());
}

// ---- validation ---------------------------------------------------------------------------------

struct BrokenCase {
  const char* name;
  std::function<void(JobConfig*)> breaker;
  const char* expected;  // a substring of the error
};

TEST(ValidateJobConfigTest, ValidConfigPasses) {
  EXPECT_TRUE(ValidateJobConfig(ValidConfig()).ok());
}

TEST(ValidateJobConfigTest, EachRuleNamesItsFieldPath) {
  const std::vector<BrokenCase> cases = {
      {"train_path", [](JobConfig* c) { c->mutable_data()->clear_train_path(); },
       "data.train_path: must be set"},
      {"max_history", [](JobConfig* c) { c->mutable_data()->set_max_history(0); },
       "data.max_history: must be > 0, got 0"},
      {"bad_fraction", [](JobConfig* c) { c->mutable_data()->set_max_bad_fraction(1.5); },
       "data.max_bad_fraction: must be in [0, 1], got 1.5"},
      {"shuffle", [](JobConfig* c) { c->mutable_data()->set_shuffle_buffer(-1); },
       "data.shuffle_buffer: must be >= 0, got -1"},
      {"prefetch", [](JobConfig* c) { c->mutable_data()->set_prefetch_batches(0); },
       "data.prefetch_batches: must be > 0"},
      {"no_tables", [](JobConfig* c) { c->clear_tables(); },
       "tables: at least one table is required"},
      {"dim", [](JobConfig* c) { c->mutable_tables(1)->set_dim(0); },
       "tables[1].dim: must be > 0, got 0"},
      {"name", [](JobConfig* c) { c->mutable_tables(1)->clear_name(); },
       "tables[1].name: must be set"},
      {"duplicate", [](JobConfig* c) { c->mutable_tables(1)->set_name("item"); },
       "tables[1].name: duplicate table name \"item\" (also tables[0])"},
      {"uniform",
       [](JobConfig* c) {
         auto* init = c->mutable_tables(0)->mutable_initializer();
         init->set_kind(InitializerConfig::UNIFORM);
         init->set_low(0.1f);
         init->set_high(0.1f);
       },
       "tables[0].initializer.low: must be < high for UNIFORM"},
      {"stddev", [](JobConfig* c) { c->mutable_tables(0)->mutable_initializer()->set_stddev(0); },
       "tables[0].initializer.stddev: must be > 0"},
      {"sparse_lr",
       [](JobConfig* c) { c->mutable_tables(0)->mutable_optimizer()->set_learning_rate(-1); },
       "tables[0].optimizer.learning_rate: must be > 0, got -1"},
      {"sparse_beta1",
       [](JobConfig* c) {
         auto* opt = c->mutable_tables(0)->mutable_optimizer();
         opt->set_kind(SparseOptimizerConfig::ADAM);
         opt->set_beta1(1.0f);
       },
       "tables[0].optimizer.beta1: must be in [0, 1), got 1"},
      {"ftrl_l1",
       [](JobConfig* c) {
         auto* opt = c->mutable_tables(0)->mutable_optimizer();
         opt->set_kind(SparseOptimizerConfig::FTRL);
         opt->set_ftrl_l1(-0.5f);
       },
       "tables[0].optimizer.ftrl_l1: must be >= 0, got -0.5"},
      {"min_count",
       [](JobConfig* c) { c->mutable_tables(0)->mutable_admission()->set_min_count(0); },
       "tables[0].admission.min_count: must be > 0, got 0"},
      {"item_table", [](JobConfig* c) { c->mutable_features()->set_item_table("itm"); },
       "features.item_table: no table named \"itm\" (tables: item, cate)"},
      {"cate_table", [](JobConfig* c) { c->mutable_features()->set_cate_table(""); },
       "features.cate_table: must name a table (tables: item, cate)"},
      {"user_table", [](JobConfig* c) { c->mutable_features()->set_user_table("usr"); },
       "features.user_table: no table named \"usr\""},
      {"model_kind", [](JobConfig* c) { c->mutable_model()->clear_kind(); },
       "model.kind: not set; choose one of: base, din"},
      {"mlp_hidden",
       [](JobConfig* c) {
         c->mutable_model()->mutable_mlp()->add_hidden(64);
         c->mutable_model()->mutable_mlp()->add_hidden(0);
       },
       "model.mlp.hidden[1]: must be > 0, got 0"},
      {"dice_momentum",
       [](JobConfig* c) { c->mutable_model()->mutable_mlp()->set_dice_momentum(1.0f); },
       "model.mlp.dice_momentum: must be in [0, 1), got 1"},
      {"attention_hidden",
       [](JobConfig* c) { c->mutable_model()->mutable_din()->add_attention_hidden(-3); },
       "model.din.attention_hidden[0]: must be > 0, got -3"},
      {"softmax_scale",
       [](JobConfig* c) {
         auto* din = c->mutable_model()->mutable_din();
         din->set_attention_normalization(DinModel::SOFTMAX);
         din->set_softmax_scale(0);
       },
       "model.din.softmax_scale: must be > 0, got 0"},
      {"heads",
       [](JobConfig* c) {
         c->mutable_model()->mutable_din()->mutable_multi_head_target_attention()->set_heads(5);
       },
       "model.din.multi_head_target_attention.heads: 5 does not divide the item dim 36 "
       "(item.dim + cate.dim)"},
      {"senet",
       [](JobConfig* c) {
         c->mutable_model()->mutable_din()->mutable_senet()->set_reduction_ratio(-1);
       },
       "model.din.senet.reduction_ratio: must be >= 0, got -1"},
      {"poso_slot",
       [](JobConfig* c) {
         c->mutable_model()->mutable_blocks()->mutable_poso()->set_slot("activity");
       },
       "model.blocks.poso.slot: no context slot named \"activity\" (there are no context slots"},
      {"scorer_heads",
       [](JobConfig* c) {
         auto* scorer = c->mutable_model()->mutable_blocks()->mutable_scorer();
         scorer->set_kind(config::TargetScorerConfig::MULTI_HEAD);
         scorer->set_heads(5);
       },
       "model.blocks.scorer.heads: 5 does not divide the item dim 36 (item.dim + cate.dim)"},
      {"dense_lr", [](JobConfig* c) { c->mutable_dense_optimizer()->set_learning_rate(0); },
       "dense_optimizer.learning_rate: must be > 0, got 0"},
      {"clip", [](JobConfig* c) { c->mutable_dense_optimizer()->set_clip_global_norm(-1); },
       "dense_optimizer.clip_global_norm: must be >= 0, got -1"},
      {"batch_size", [](JobConfig* c) { c->mutable_train()->set_batch_size(0); },
       "train.batch_size: must be > 0, got 0"},
      {"epochs", [](JobConfig* c) { c->mutable_train()->set_epochs(0); },
       "train.epochs: must be > 0, got 0"},
      {"staleness", [](JobConfig* c) { c->mutable_train()->set_staleness(-1); },
       "train.staleness: must be >= 0, got -1"},
      {"threads", [](JobConfig* c) { c->mutable_train()->set_threads(-2); },
       "train.threads: must be >= 0, got -2"},
      {"eval_batch", [](JobConfig* c) { c->mutable_train()->set_eval_batch_size(0); },
       "train.eval_batch_size: must be > 0, got 0"},
      {"eval_without_test",
       [](JobConfig* c) {
         c->mutable_train()->set_eval_every_steps(100);
         c->mutable_data()->clear_test_path();
       },
       "train.eval_every_steps: is 100 but data.test_path is not set"},
      {"servers", [](JobConfig* c) { c->mutable_ps()->set_servers(0); },
       "ps.servers: must be > 0, got 0"},
      {"shard_threads", [](JobConfig* c) { c->mutable_ps()->set_shard_threads(0); },
       "ps.shard_threads: must be > 0, got 0"},
      {"ckpt_dir", [](JobConfig* c) { c->mutable_checkpoint()->set_every_steps(500); },
       "checkpoint.dir: must be set when checkpoint.every_steps or every_minutes is"},
      {"keep_last", [](JobConfig* c) { c->mutable_checkpoint()->set_keep_last(-1); },
       "checkpoint.keep_last: must be >= 0, got -1"},
      // Upper bounds.
      {"max_history_big", [](JobConfig* c) { c->mutable_data()->set_max_history(20000); },
       "data.max_history: must be <= 16384, got 20000"},
      {"prefetch_big", [](JobConfig* c) { c->mutable_data()->set_prefetch_batches(5000); },
       "data.prefetch_batches: must be <= 1024, got 5000"},
      {"attention_hidden_big",
       [](JobConfig* c) { c->mutable_model()->mutable_din()->add_attention_hidden(20000); },
       "model.din.attention_hidden[0]: must be <= 16384, got 20000"},
      {"heads_big",
       [](JobConfig* c) {
         c->mutable_model()->mutable_din()->mutable_multi_head_target_attention()->set_heads(512);
       },
       "model.din.multi_head_target_attention.heads: must be <= 256, got 512"},
      {"senet_big",
       [](JobConfig* c) {
         c->mutable_model()->mutable_din()->mutable_senet()->set_reduction_ratio(5000);
       },
       "model.din.senet.reduction_ratio: must be <= 1024, got 5000"},
      {"batch_big", [](JobConfig* c) { c->mutable_train()->set_batch_size(2000000); },
       "train.batch_size: must be <= 1048576, got 2000000"},
      {"eval_batch_big", [](JobConfig* c) { c->mutable_train()->set_eval_batch_size(2000000); },
       "train.eval_batch_size: must be <= 1048576, got 2000000"},
      {"threads_big", [](JobConfig* c) { c->mutable_train()->set_threads(5000); },
       "train.threads: must be <= 1024, got 5000"},
      {"servers_big", [](JobConfig* c) { c->mutable_ps()->set_servers(10000); },
       "ps.servers: must be <= 4096, got 10000"},
      {"shard_threads_big", [](JobConfig* c) { c->mutable_ps()->set_shard_threads(1000); },
       "ps.shard_threads: must be <= 256, got 1000"},
      {"ftrl_alpha_big",
       [](JobConfig* c) {
         auto* opt = c->mutable_tables(0)->mutable_optimizer();
         opt->set_kind(SparseOptimizerConfig::FTRL);
         opt->set_ftrl_alpha(100);
       },
       "tables[0].optimizer.ftrl_alpha: must be <= 10, got 100"},
      {"sparse_epsilon_big",
       [](JobConfig* c) { c->mutable_tables(0)->mutable_optimizer()->set_epsilon(5); },
       "tables[0].optimizer.epsilon: must be <= 1, got 5"},
      {"stddev_big",
       [](JobConfig* c) { c->mutable_tables(0)->mutable_initializer()->set_stddev(1e6f); },
       "tables[0].initializer.stddev: must be <= 10, got 1000000"},
      {"uniform_high_inf",
       [](JobConfig* c) {
         auto* init = c->mutable_tables(0)->mutable_initializer();
         init->set_kind(InitializerConfig::UNIFORM);
         init->set_high(INFINITY);
       },
       "tables[0].initializer.high: must be in [-10, 10], got inf"},
      {"weight_decay_big", [](JobConfig* c) { c->mutable_dense_optimizer()->set_weight_decay(2); },
       "dense_optimizer.weight_decay: must be <= 1, got 2"},
      {"dense_epsilon_nan",
       [](JobConfig* c) { c->mutable_dense_optimizer()->set_epsilon(std::nanf("")); },
       "dense_optimizer.epsilon: must be > 0, got nan"},
      {"dice_epsilon_inf",
       [](JobConfig* c) { c->mutable_model()->mutable_mlp()->set_dice_epsilon(INFINITY); },
       "model.mlp.dice_epsilon: must be <= 1, got inf"},
      {"softmax_scale_big",
       [](JobConfig* c) {
         auto* din = c->mutable_model()->mutable_din();
         din->set_attention_normalization(DinModel::SOFTMAX);
         din->set_softmax_scale(1e6f);
       },
       "model.din.softmax_scale: must be <= 1000, got 1000000"},
      // Finiteness of every float, also where no range applies or the kind does not use it.
      {"clip_inf",
       [](JobConfig* c) { c->mutable_dense_optimizer()->set_clip_global_norm(INFINITY); },
       "dense_optimizer.clip_global_norm: must be finite, got inf"},
      {"unused_ftrl_l2_inf",
       [](JobConfig* c) { c->mutable_tables(1)->mutable_optimizer()->set_ftrl_l2(INFINITY); },
       "tables[1].optimizer.ftrl_l2: must be finite, got inf"},
      {"progress_inf", [](JobConfig* c) { c->mutable_train()->set_progress_seconds(INFINITY); },
       "train.progress_seconds: must be finite, got inf"},
      {"dien_negatives_need_item_cates", [](JobConfig* c) { c->mutable_model()->mutable_dien(); },
       "data.item_cates_path: DIEN's auxiliary loss (model.dien.aux_loss_weight > 0) draws"},
      {"dien_alpha",
       [](JobConfig* c) { c->mutable_model()->mutable_dien()->set_aux_loss_weight(-1); },
       "model.dien.aux_loss_weight: must be >= 0, got -1"},
      {"dien_attention_hidden",
       [](JobConfig* c) { c->mutable_model()->mutable_dien()->add_attention_hidden(80); },
       "model.dien.attention_hidden: the DIN activation unit has exactly two hidden layers"},
      // Products that size one allocation.
      {"batch_times_history",
       [](JobConfig* c) {
         c->mutable_train()->set_batch_size(1 << 20);
         c->mutable_data()->set_max_history(16384);
       },
       "train.batch_size * data.max_history * row width: 1048576 * 16384 * 80 = "},
      {"eval_batch_times_history",
       [](JobConfig* c) {
         c->mutable_train()->set_eval_batch_size(1 << 20);
         c->mutable_data()->set_max_history(1000);
       },
       "train.eval_batch_size * data.max_history * row width: 1048576 * 1000 * 80 = "},
      {"batch_times_layer",
       [](JobConfig* c) {
         c->mutable_data()->set_max_history(1);
         c->mutable_train()->set_batch_size(1 << 20);
         c->mutable_model()->mutable_mlp()->add_hidden(16384);
       },
       "train.batch_size * layer width: 1048576 * 16384 = 17179869184 floats, more than 2^31"},
      {"dense_parameters",
       [](JobConfig* c) {
         for (int i = 0; i < 10; ++i) c->mutable_model()->mutable_mlp()->add_hidden(16384);
       },
       "model: the dense parameters (layer sizes in model.mlp.hidden and model.din) total ~"},
  };
  for (const BrokenCase& bc : cases) {
    JobConfig c = ValidConfig();
    bc.breaker(&c);
    const Status s = ValidateJobConfig(c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << bc.name;
    EXPECT_NE(s.message().find(bc.expected), std::string::npos)
        << bc.name << ": got \"" << s.message() << "\", want it to contain \"" << bc.expected
        << "\"";
  }
}

TEST(ValidateJobConfigTest, NaNFailsRangeChecks) {
  JobConfig c = ValidConfig();
  c.mutable_dense_optimizer()->set_learning_rate(std::nanf(""));
  const Status s = ValidateJobConfig(c);
  EXPECT_NE(s.message().find("dense_optimizer.learning_rate: must be > 0, got nan"),
            std::string::npos)
      << s.message();
}

// One broken field; the error must name it (and nothing else need be wrong).
std::string ErrorWith(const std::function<void(JobConfig*)>& breaker) {
  JobConfig c = ValidConfig();
  breaker(&c);
  const Status s = ValidateJobConfig(c);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  return s.message();
}

TEST(ValidateJobConfigTest, HugeTableDimIsAnErrorNamingTheField) {
  const std::string msg = ErrorWith([](JobConfig* c) { c->mutable_tables(0)->set_dim(100000000); });
  EXPECT_NE(msg.find("tables[0].dim: must be <= 4096, got 100000000"), std::string::npos) << msg;
}

TEST(ValidateJobConfigTest, HugeMlpLayerIsAnErrorNamingTheField) {
  const std::string msg =
      ErrorWith([](JobConfig* c) { c->mutable_model()->mutable_mlp()->add_hidden(100000000); });
  EXPECT_NE(msg.find("model.mlp.hidden[0]: must be <= 16384, got 100000000"), std::string::npos)
      << msg;
}

TEST(ValidateJobConfigTest, InfiniteDenseLearningRateIsAnError) {
  const std::string msg =
      ErrorWith([](JobConfig* c) { c->mutable_dense_optimizer()->set_learning_rate(INFINITY); });
  EXPECT_EQ(msg, "dense_optimizer.learning_rate: must be <= 10, got inf");
}

TEST(ValidateJobConfigTest, AbsurdDenseLearningRateIsAnError) {
  const std::string msg =
      ErrorWith([](JobConfig* c) { c->mutable_dense_optimizer()->set_learning_rate(1e30f); });
  EXPECT_EQ(msg, "dense_optimizer.learning_rate: must be <= 10, got 1e+30");
}

TEST(ValidateJobConfigTest, NaNSparseLearningRateIsAnError) {
  const std::string msg = ErrorWith([](JobConfig* c) {
    c->mutable_tables(0)->mutable_optimizer()->set_learning_rate(std::nanf(""));
  });
  EXPECT_EQ(msg, "tables[0].optimizer.learning_rate: must be > 0, got nan");
}

TEST(ValidateJobConfigTest, ValuesAtTheLimitsPass) {
  JobConfig c = ValidConfig();
  c.mutable_tables(0)->set_dim(4096);
  c.mutable_tables(1)->set_dim(4096);
  c.mutable_model()->mutable_mlp()->add_hidden(16384);
  c.mutable_model()->mutable_din()->add_attention_hidden(16384);
  c.mutable_model()->mutable_din()->add_attention_hidden(16384);
  c.mutable_model()->mutable_din()->mutable_multi_head_target_attention()->set_heads(256);
  c.mutable_model()->mutable_din()->mutable_senet()->set_reduction_ratio(1024);
  c.mutable_tables(0)->mutable_optimizer()->set_learning_rate(10);
  c.mutable_dense_optimizer()->set_learning_rate(10);
  c.mutable_dense_optimizer()->set_weight_decay(1);
  c.mutable_data()->set_max_history(16384);
  c.mutable_data()->set_prefetch_batches(1024);
  c.mutable_train()->set_batch_size(1);
  c.mutable_train()->set_eval_batch_size(1);
  c.mutable_train()->set_threads(1024);
  c.mutable_ps()->set_servers(4096);
  c.mutable_ps()->set_shard_threads(256);
  const Status s = ValidateJobConfig(c);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(ValidateJobConfigTest, AnOutOfRangeFactorIsReportedOnceNotAsAProduct) {
  const std::string msg = ErrorWith([](JobConfig* c) {
    c->mutable_tables(0)->set_dim(100000000);
    c->mutable_train()->set_batch_size(1 << 20);
  });
  EXPECT_EQ(msg, "tables[0].dim: must be <= 4096, got 100000000");
}

TEST(ValidateJobConfigTest, ReportsEveryProblemAtOnce) {
  JobConfig c = ValidConfig();
  c.mutable_train()->set_batch_size(0);
  c.mutable_ps()->set_servers(0);
  const Status s = ValidateJobConfig(c);
  EXPECT_EQ(s.message(), "train.batch_size: must be > 0, got 0; ps.servers: must be > 0, got 0");
}

// ---- translation and accessors ------------------------------------------------------------------

TEST(ToDenseOptimizerOptionsTest, MapsEachKindWithItsSettings) {
  JobConfig c = ValidConfig();
  DenseOptimizerConfig* d = c.mutable_dense_optimizer();
  d->set_kind(DenseOptimizerConfig::ADAM);
  d->set_learning_rate(0.02f);
  d->set_beta2(0.99f);
  d->set_weight_decay_kind(DenseOptimizerConfig::DECOUPLED);
  DenseOptimizerOptions o = ToDenseOptimizerOptions(*d);
  EXPECT_EQ(o.kind, DenseOptimizerKind::kAdam);
  EXPECT_FLOAT_EQ(o.learning_rate, 0.02f);
  EXPECT_FLOAT_EQ(o.adam.beta2, 0.99f);
  EXPECT_EQ(o.adam.weight_decay_kind, WeightDecayKind::kDecoupled);
  d->set_kind(DenseOptimizerConfig::SGD);
  d->set_momentum(0.9f);
  d->set_nesterov(true);
  o = ToDenseOptimizerOptions(*d);
  EXPECT_EQ(o.kind, DenseOptimizerKind::kSgd);
  EXPECT_EQ(o.sgd.momentum_kind, MomentumKind::kNesterov);
  d->set_kind(DenseOptimizerConfig::ADAGRAD);
  d->set_initial_accumulator(0.3f);
  o = ToDenseOptimizerOptions(*d);
  EXPECT_EQ(o.kind, DenseOptimizerKind::kAdagrad);
  EXPECT_FLOAT_EQ(o.adagrad.initial_accumulator_value, 0.3f);
}

TEST(ToPsTablesTest, MapsEveryFieldAndNumbersTablesFromOne) {
  JobConfig c = ValidConfig();
  TableConfig* t = c.mutable_tables(1);
  t->set_seed(99);
  t->mutable_initializer()->set_kind(InitializerConfig::UNIFORM);
  t->mutable_initializer()->set_low(-0.5f);
  t->mutable_initializer()->set_high(0.25f);
  t->mutable_initializer()->set_stddev(0.3f);
  SparseOptimizerConfig* opt = t->mutable_optimizer();
  opt->set_kind(SparseOptimizerConfig::FTRL);
  opt->set_learning_rate(0.11f);
  opt->set_initial_accumulator(0.12f);
  opt->set_epsilon(0.13f);
  opt->set_beta1(0.14f);
  opt->set_beta2(0.15f);
  opt->set_ftrl_alpha(0.16f);
  opt->set_ftrl_beta(0.17f);
  opt->set_ftrl_l1(0.18f);
  opt->set_ftrl_l2(0.19f);
  t->mutable_admission()->set_min_count(5);
  t->mutable_admission()->set_unadmitted_value(AdmissionConfig::ZEROS);
  t->mutable_eviction()->set_ttl_steps(1000);
  t->mutable_eviction()->set_max_rows(123456789012ull);
  ASSERT_TRUE(ValidateJobConfig(c).ok());

  const std::vector<ps::TableConfig> tables = ToPsTables(c);
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0].name, "item");
  EXPECT_EQ(tables[0].id, 1u);
  const ps::TableConfig& p = tables[1];
  EXPECT_EQ(p.name, "cate");
  EXPECT_EQ(p.id, 2u);
  EXPECT_EQ(p.dim, 18);
  EXPECT_EQ(p.seed, 99u);
  EXPECT_EQ(p.initializer.kind, ps::InitializerKind::kUniform);
  EXPECT_EQ(p.initializer.low, -0.5f);
  EXPECT_EQ(p.initializer.high, 0.25f);
  EXPECT_EQ(p.initializer.stddev, 0.3f);
  EXPECT_EQ(p.optimizer.kind, ps::SparseOptimizerKind::kFtrl);
  EXPECT_EQ(p.optimizer.learning_rate, 0.11f);
  EXPECT_EQ(p.optimizer.initial_accumulator, 0.12f);
  EXPECT_EQ(p.optimizer.epsilon, 0.13f);
  EXPECT_EQ(p.optimizer.beta1, 0.14f);
  EXPECT_EQ(p.optimizer.beta2, 0.15f);
  EXPECT_EQ(p.optimizer.ftrl_alpha, 0.16f);
  EXPECT_EQ(p.optimizer.ftrl_beta, 0.17f);
  EXPECT_EQ(p.optimizer.ftrl_l1, 0.18f);
  EXPECT_EQ(p.optimizer.ftrl_l2, 0.19f);
  EXPECT_EQ(p.admission.min_count, 5u);
  EXPECT_EQ(p.admission.unadmitted_value, ps::UnadmittedValue::kZeros);
  EXPECT_EQ(p.eviction.ttl_steps, 1000u);
  EXPECT_EQ(p.eviction.max_rows, 123456789012ull);
}

TEST(ToPsTablesTest, MapsEveryEnumValue) {
  JobConfig c = ValidConfig();
  const std::pair<InitializerConfig::Kind, ps::InitializerKind> inits[] = {
      {InitializerConfig::ZEROS, ps::InitializerKind::kZeros},
      {InitializerConfig::UNIFORM, ps::InitializerKind::kUniform},
      {InitializerConfig::TRUNCATED_NORMAL, ps::InitializerKind::kTruncatedNormal}};
  for (const auto& [from, to] : inits) {
    c.mutable_tables(0)->mutable_initializer()->set_kind(from);
    EXPECT_EQ(ToPsTables(c)[0].initializer.kind, to);
  }
  const std::pair<SparseOptimizerConfig::Kind, ps::SparseOptimizerKind> opts[] = {
      {SparseOptimizerConfig::SGD, ps::SparseOptimizerKind::kSgd},
      {SparseOptimizerConfig::ADAGRAD, ps::SparseOptimizerKind::kAdagrad},
      {SparseOptimizerConfig::ADAM, ps::SparseOptimizerKind::kAdam},
      {SparseOptimizerConfig::FTRL, ps::SparseOptimizerKind::kFtrl}};
  for (const auto& [from, to] : opts) {
    c.mutable_tables(0)->mutable_optimizer()->set_kind(from);
    EXPECT_EQ(ToPsTables(c)[0].optimizer.kind, to);
  }
  c.mutable_tables(0)->mutable_admission()->set_unadmitted_value(AdmissionConfig::INITIALIZER);
  EXPECT_EQ(ToPsTables(c)[0].admission.unadmitted_value, ps::UnadmittedValue::kInitializer);
}

TEST(AccessorsTest, DefaultsForEmptyLayerLists) {
  const JobConfig c = ValidConfig();
  EXPECT_EQ(MlpHidden(c.model().mlp()), (std::vector<int>{200, 80}));
  EXPECT_EQ(AttentionHidden(c.model().din()), (std::vector<int>{80, 40}));
  MlpConfig mlp;
  mlp.add_hidden(64);
  EXPECT_EQ(MlpHidden(mlp), (std::vector<int>{64}));
  EXPECT_EQ(ItemDim(c), 36);
  EXPECT_EQ(FindTable(c, "cate")->dim(), 18);
  EXPECT_EQ(FindTable(c, "nope"), nullptr);
}

// ---- overrides ----------------------------------------------------------------------------------

TEST(ApplyOverridesTest, SetsScalarsStringsEnumsAndLists) {
  JobConfig c = ValidConfig();
  const Status s = ApplyOverrides(
      {"train.batch_size=256", "data.train_path=/x/train.tsv", "train.max_steps=0x10",
       "dense_optimizer.learning_rate=5e-4", "checkpoint.save_at_end=false",
       "model.din.attention_normalization=SOFTMAX", "model.mlp.hidden=256,128,64",
       "tables[1].dim=8", "tables[item].optimizer.kind=FTRL", "data.max_bad_fraction=0.5",
       "tables[0].eviction.max_rows=18446744073709551615"},
      &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.train().batch_size(), 256);
  EXPECT_EQ(c.data().train_path(), "/x/train.tsv");
  EXPECT_EQ(c.train().max_steps(), 16);
  EXPECT_FLOAT_EQ(c.dense_optimizer().learning_rate(), 5e-4f);
  EXPECT_FALSE(c.checkpoint().save_at_end());
  EXPECT_EQ(c.model().din().attention_normalization(), DinModel::SOFTMAX);
  EXPECT_EQ(MlpHidden(c.model().mlp()), (std::vector<int>{256, 128, 64}));
  EXPECT_EQ(c.tables(1).dim(), 8);
  EXPECT_EQ(c.tables(0).optimizer().kind(), SparseOptimizerConfig::FTRL);
  EXPECT_DOUBLE_EQ(c.data().max_bad_fraction(), 0.5);
  EXPECT_EQ(c.tables(0).eviction().max_rows(), 18446744073709551615ull);
  EXPECT_TRUE(ValidateJobConfig(c).ok());
}

TEST(ApplyOverridesTest, ReplacesMessagesAndSwitchesTheModelKind) {
  JobConfig c = ValidConfig();
  ASSERT_TRUE(ApplyOverrides({"model.base="}, &c).ok());
  EXPECT_TRUE(c.model().has_base());
  EXPECT_FALSE(c.model().has_din());
  ASSERT_TRUE(ApplyOverrides({"model.din=attention_hidden: [32] softmax_scale: 2"}, &c).ok());
  EXPECT_EQ(AttentionHidden(c.model().din()), (std::vector<int>{32}));
  EXPECT_FLOAT_EQ(c.model().din().softmax_scale(), 2.0f);
  ASSERT_TRUE(ApplyOverrides({"tables[0]=name: \"item\" dim: 4"}, &c).ok());
  EXPECT_EQ(c.tables(0).dim(), 4);
  ASSERT_TRUE(ApplyOverrides({"model.mlp.hidden=1,2", "model.mlp.hidden[0]=7"}, &c).ok());
  EXPECT_EQ(MlpHidden(c.model().mlp()), (std::vector<int>{7, 2}));
  ASSERT_TRUE(ApplyOverrides({"model.mlp.hidden="}, &c).ok());
  EXPECT_EQ(c.model().mlp().hidden_size(), 0);
}

TEST(ApplyOverridesTest, RejectsUnknownPathsAndBadValuesNamingThem) {
  const struct {
    const char* override_text;
    const char* expected;
  } cases[] = {
      {"train.bach_size=2",
       "override \"train.bach_size=2\": no field \"bach_size\" in attnps.config.TrainConfig"},
      {"trian.epochs=2", "no field \"trian\" in attnps.config.JobConfig"},
      {"train.batch_size=abc", "not an integer: \"abc\""},
      {"train.batch_size=99999999999", "integer out of range: 99999999999"},
      {"tables[0].admission.min_count=-1", "not an unsigned integer: \"-1\""},
      {"train.progress_seconds=fast", "not a number: \"fast\""},
      {"checkpoint.save_at_end=yes", "not a bool (true, false): \"yes\""},
      {"model.mlp.activation=GELU", "no value \"GELU\" in enum Activation"},
      {"tables[2].dim=1", "tables[2]: index out of range (2 elements)"},
      {"tables[user].dim=1", "tables[user]: no such element"},
      {"tables.dim=1", "tables: repeated; choose an element with tables[i]"},
      {"train.batch_size.x=1", "batch_size: not a message"},
      {"train[0].epochs=1", "train: not a repeated field"},
      {"train.epochs", "expected field.path=value"},
      {"model.din=bogus: 1", "not a valid DinModel text-format body"},
      {"train..epochs=1", "empty field name in the path"},
  };
  for (const auto& tc : cases) {
    JobConfig c = ValidConfig();
    const Status s = ApplyOverrides({tc.override_text}, &c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << tc.override_text;
    EXPECT_NE(s.message().find(tc.expected), std::string::npos)
        << tc.override_text << ": got \"" << s.message() << "\"";
    EXPECT_TRUE(StartsWith(s.message(), std::string("override \"") + tc.override_text + "\": "))
        << s.message();
  }
}

}  // namespace
}  // namespace attnps::config
