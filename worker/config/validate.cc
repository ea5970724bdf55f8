// ValidateJobConfig: semantic checks of a parsed JobConfig. Each failed check adds
// "<field path>: <problem>" to a list; all of them are reported at once.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "worker/config/job_config.h"

namespace attnps::config {
namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// Accumulates problems; the checks are written so that NaN fails them (`!(x > 0)`).
class Problems {
 public:
  void Add(const std::string& path, const std::string& problem) {
    list_.push_back(path + ": " + problem);
  }
  void Positive(const std::string& path, double v) {
    if (!(v > 0)) Add(path, "must be > 0, got " + Num(v));
  }
  void NonNegative(const std::string& path, double v) {
    if (!(v >= 0)) Add(path, "must be >= 0, got " + Num(v));
  }
  // lo <= v < hi.
  void InHalfOpen(const std::string& path, double v, double lo, double hi) {
    if (!(v >= lo && v < hi)) {
      Add(path, "must be in [" + Num(lo) + ", " + Num(hi) + "), got " + Num(v));
    }
  }
  void InClosed(const std::string& path, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) {
      Add(path, "must be in [" + Num(lo) + ", " + Num(hi) + "], got " + Num(v));
    }
  }
  void NotEmpty(const std::string& path, const std::string& v) {
    if (v.empty()) Add(path, "must be set");
  }
  template <typename Repeated>
  void AllPositive(const std::string& path, const Repeated& values) {
    for (int i = 0; i < values.size(); ++i) {
      Positive(path + "[" + std::to_string(i) + "]", values.Get(i));
    }
  }

  Status ToStatus() const {
    if (list_.empty()) return Status::Ok();
    std::string msg;
    for (const std::string& p : list_) msg += (msg.empty() ? "" : "; ") + p;
    return Status::InvalidArgument(msg);
  }

 private:
  std::vector<std::string> list_;
};

void CheckData(const DataConfig& data, Problems* p) {
  p->NotEmpty("data.train_path", data.train_path());
  p->Positive("data.max_history", data.max_history());
  p->InClosed("data.max_bad_fraction", data.max_bad_fraction(), 0, 1);
  p->NonNegative("data.shuffle_buffer", data.shuffle_buffer());
  p->Positive("data.prefetch_batches", data.prefetch_batches());
}

void CheckInitializer(const std::string& path, const InitializerConfig& init, Problems* p) {
  if (init.kind() == InitializerConfig::UNIFORM && !(init.low() < init.high())) {
    p->Add(path + ".low",
           "must be < high for UNIFORM, got low " + Num(init.low()) + ", high " + Num(init.high()));
  }
  if (init.kind() == InitializerConfig::TRUNCATED_NORMAL) {
    p->Positive(path + ".stddev", init.stddev());
  }
}

void CheckSparseOptimizer(const std::string& path, const SparseOptimizerConfig& opt, Problems* p) {
  p->Positive(path + ".learning_rate", opt.learning_rate());
  switch (opt.kind()) {
    case SparseOptimizerConfig::SGD:
      break;
    case SparseOptimizerConfig::ADAGRAD:
      p->NonNegative(path + ".initial_accumulator", opt.initial_accumulator());
      p->Positive(path + ".epsilon", opt.epsilon());
      break;
    case SparseOptimizerConfig::ADAM:
      p->InHalfOpen(path + ".beta1", opt.beta1(), 0, 1);
      p->InHalfOpen(path + ".beta2", opt.beta2(), 0, 1);
      p->Positive(path + ".epsilon", opt.epsilon());
      break;
    case SparseOptimizerConfig::FTRL:
      p->Positive(path + ".ftrl_alpha", opt.ftrl_alpha());
      p->NonNegative(path + ".ftrl_beta", opt.ftrl_beta());
      p->NonNegative(path + ".ftrl_l1", opt.ftrl_l1());
      p->NonNegative(path + ".ftrl_l2", opt.ftrl_l2());
      break;
  }
}

void CheckTables(const JobConfig& config, Problems* p) {
  if (config.tables_size() == 0) p->Add("tables", "at least one table is required");
  std::map<std::string, int> first_index;
  for (int i = 0; i < config.tables_size(); ++i) {
    const TableConfig& t = config.tables(i);
    const std::string path = "tables[" + std::to_string(i) + "]";
    p->NotEmpty(path + ".name", t.name());
    if (!t.name().empty()) {
      auto [it, inserted] = first_index.emplace(t.name(), i);
      if (!inserted) {
        p->Add(path + ".name", "duplicate table name " + Quote(t.name()) + " (also tables[" +
                                   std::to_string(it->second) + "])");
      }
    }
    p->Positive(path + ".dim", t.dim());
    CheckInitializer(path + ".initializer", t.initializer(), p);
    CheckSparseOptimizer(path + ".optimizer", t.optimizer(), p);
    p->Positive(path + ".admission.min_count", t.admission().min_count());
  }
}

std::string TableNames(const JobConfig& config) {
  std::string names;
  for (const TableConfig& t : config.tables()) names += (names.empty() ? "" : ", ") + t.name();
  return names;
}

// A feature's table reference: set when `required`, and naming an existing table when set.
void CheckTableRef(const JobConfig& config, const std::string& path, const std::string& name,
                   bool required, Problems* p) {
  if (name.empty()) {
    if (required) p->Add(path, "must name a table (tables: " + TableNames(config) + ")");
    return;
  }
  if (FindTable(config, name) == nullptr) {
    p->Add(path, "no table named " + Quote(name) + " (tables: " + TableNames(config) + ")");
  }
}

void CheckFeatures(const JobConfig& config, Problems* p) {
  const FeaturesConfig& f = config.features();
  CheckTableRef(config, "features.user_table", f.user_table(), /*required=*/false, p);
  CheckTableRef(config, "features.item_table", f.item_table(), /*required=*/true, p);
  CheckTableRef(config, "features.cate_table", f.cate_table(), /*required=*/true, p);
}

void CheckMlp(const MlpConfig& mlp, Problems* p) {
  p->AllPositive("model.mlp.hidden", mlp.hidden());
  if (mlp.activation() == DICE) {
    p->Positive("model.mlp.dice_epsilon", mlp.dice_epsilon());
    p->InHalfOpen("model.mlp.dice_momentum", mlp.dice_momentum(), 0, 1);
  }
}

// The item dim D, or 0 when a feature table is missing (reported by CheckFeatures).
int ItemDimOrZero(const JobConfig& config) {
  const TableConfig* item = FindTable(config, config.features().item_table());
  const TableConfig* cate = FindTable(config, config.features().cate_table());
  return item != nullptr && cate != nullptr ? item->dim() + cate->dim() : 0;
}

void CheckDin(const JobConfig& config, Problems* p) {
  const DinModel& din = config.model().din();
  p->AllPositive("model.din.attention_hidden", din.attention_hidden());
  if (din.attention_normalization() == DinModel::SOFTMAX) {
    p->Positive("model.din.softmax_scale", din.softmax_scale());
  }
  const int heads = din.multi_head_target_attention().heads();
  const std::string heads_path = "model.din.multi_head_target_attention.heads";
  p->NonNegative(heads_path, heads);
  const int item_dim = ItemDimOrZero(config);
  if (heads > 0 && item_dim > 0 && item_dim % heads != 0) {
    p->Add(heads_path, std::to_string(heads) + " does not divide the item dim " +
                           std::to_string(item_dim) + " (" + config.features().item_table() +
                           ".dim + " + config.features().cate_table() + ".dim)");
  }
  p->NonNegative("model.din.senet.reduction_ratio", din.senet().reduction_ratio());
}

void CheckModel(const JobConfig& config, Problems* p) {
  CheckMlp(config.model().mlp(), p);
  switch (config.model().kind_case()) {
    case ModelConfig::KIND_NOT_SET:
      p->Add("model.kind", "not set; choose one of: base, din");
      break;
    case ModelConfig::kBase:
      break;
    case ModelConfig::kDin:
      CheckDin(config, p);
      break;
  }
}

void CheckDenseOptimizer(const DenseOptimizerConfig& opt, Problems* p) {
  p->Positive("dense_optimizer.learning_rate", opt.learning_rate());
  p->NonNegative("dense_optimizer.clip_global_norm", opt.clip_global_norm());
  p->NonNegative("dense_optimizer.weight_decay", opt.weight_decay());
  switch (opt.kind()) {
    case DenseOptimizerConfig::SGD:
      p->InHalfOpen("dense_optimizer.momentum", opt.momentum(), 0, 1);
      break;
    case DenseOptimizerConfig::ADAM:
      p->InHalfOpen("dense_optimizer.beta1", opt.beta1(), 0, 1);
      p->InHalfOpen("dense_optimizer.beta2", opt.beta2(), 0, 1);
      p->Positive("dense_optimizer.epsilon", opt.epsilon());
      break;
    case DenseOptimizerConfig::ADAGRAD:
      p->NonNegative("dense_optimizer.initial_accumulator", opt.initial_accumulator());
      p->Positive("dense_optimizer.epsilon", opt.epsilon());
      break;
  }
}

void CheckTrain(const JobConfig& config, Problems* p) {
  const TrainConfig& t = config.train();
  p->Positive("train.batch_size", t.batch_size());
  p->Positive("train.epochs", t.epochs());
  p->NonNegative("train.max_steps", t.max_steps());
  p->NonNegative("train.staleness", t.staleness());
  p->NonNegative("train.threads", t.threads());
  p->NonNegative("train.progress_seconds", t.progress_seconds());
  p->NonNegative("train.eval_every_steps", t.eval_every_steps());
  p->Positive("train.eval_batch_size", t.eval_batch_size());
  if (t.eval_every_steps() > 0 && config.data().test_path().empty()) {
    p->Add("train.eval_every_steps",
           "is " + std::to_string(t.eval_every_steps()) + " but data.test_path is not set");
  }
}

void CheckPs(const PsConfig& ps, Problems* p) {
  p->Positive("ps.servers", ps.servers());
  p->Positive("ps.shard_threads", ps.shard_threads());
}

void CheckCheckpoint(const CheckpointConfig& c, Problems* p) {
  p->NonNegative("checkpoint.every_steps", c.every_steps());
  p->NonNegative("checkpoint.every_minutes", c.every_minutes());
  p->NonNegative("checkpoint.keep_last", c.keep_last());
  if (c.dir().empty() && (c.every_steps() > 0 || c.every_minutes() > 0)) {
    p->Add("checkpoint.dir", "must be set when checkpoint.every_steps or every_minutes is");
  }
}

}  // namespace

Status ValidateJobConfig(const JobConfig& config) {
  Problems p;
  CheckData(config.data(), &p);
  CheckTables(config, &p);
  CheckFeatures(config, &p);
  CheckModel(config, &p);
  CheckDenseOptimizer(config.dense_optimizer(), &p);
  CheckTrain(config, &p);
  CheckPs(config.ps(), &p);
  CheckCheckpoint(config.checkpoint(), &p);
  return p.ToStatus();
}

}  // namespace attnps::config
