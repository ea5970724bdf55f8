// ValidateJobConfig: semantic checks of a parsed JobConfig. Each failed check adds
// "<field path>: <problem>" to a list; all of them are reported at once.
//
// Besides the per-field ranges, every setting has an upper bound (kMax* below, docs/config.md)
// and every float must be finite, so that an absurd value is a config error naming the field
// rather than a failed allocation or a NaN deep in training. Products that size one tensor
// (batch x history x row width, a weight matrix, all dense parameters) are bounded too.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "worker/config/job_config.h"

namespace attnps::config {
namespace {

constexpr int kMaxTableDim = 4096;         // tables[i].dim (the wire allows 65536)
constexpr int kMaxLayerSize = 16384;       // model.mlp.hidden[i], model.din.attention_hidden[i]
constexpr int kMaxHeads = 256;             // model.din.multi_head_target_attention.heads
constexpr int kMaxSenetRatio = 1024;       // model.din.senet.reduction_ratio
constexpr int kMaxBatchSize = 1 << 20;     // train.batch_size, train.eval_batch_size
constexpr int kMaxHistory = 16384;         // data.max_history
constexpr int kMaxPrefetchBatches = 1024;  // data.prefetch_batches
constexpr int kMaxServers = 4096;          // ps.servers
constexpr int kMaxShardThreads = 256;      // ps.shard_threads
constexpr int kMaxThreads = 1024;          // train.threads
constexpr double kMaxLearningRate = 10;    // every learning rate and ftrl_alpha
constexpr double kMaxEpsilon = 1;          // optimizer epsilons, model.mlp.dice_epsilon
constexpr double kMaxWeightDecay = 1;      // dense_optimizer.weight_decay
constexpr double kMaxInitValue = 10;       // |initializer.low|, |.high|, .stddev
constexpr double kMaxSoftmaxScale = 1000;  // model.din.softmax_scale
// Elements of one tensor (per-batch tensor, weight matrix) and of all dense parameters: 8 GiB of
// floats, and within int32 indexing.
constexpr double kMaxTensorFloats = 2147483648.0;  // 2^31

// Integers (exactly representable doubles) without an exponent, others as %g.
std::string Num(double v) {
  char buf[32];
  const bool integral = std::isfinite(v) && std::fabs(v) < 1e15 && v == std::floor(v);
  std::snprintf(buf, sizeof(buf), integral ? "%.0f" : "%g", v);
  return buf;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// Accumulates problems; the checks are written so that NaN fails them (`!(x > 0)`).
class Problems {
 public:
  void Add(const std::string& path, const std::string& problem) {
    list_.push_back(path + ": " + problem);
    reported_.insert(path);
  }
  bool Reported(const std::string& path) const { return reported_.count(path) > 0; }

  void Positive(const std::string& path, double v) {
    if (!(v > 0)) Add(path, "must be > 0, got " + Num(v));
  }
  void NonNegative(const std::string& path, double v) {
    if (!(v >= 0)) Add(path, "must be >= 0, got " + Num(v));
  }
  // v <= hi, reported only when no other check of `path` failed (NaN fails the lower bound).
  void AtMost(const std::string& path, double v, double hi) {
    if (v > hi && !Reported(path)) Add(path, "must be <= " + Num(hi) + ", got " + Num(v));
  }
  // 0 < v <= hi.
  void PositiveAtMost(const std::string& path, double v, double hi) {
    Positive(path, v);
    AtMost(path, v, hi);
  }
  // 0 <= v <= hi.
  void NonNegativeAtMost(const std::string& path, double v, double hi) {
    NonNegative(path, v);
    AtMost(path, v, hi);
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
  // Each element in (0, hi].
  template <typename Repeated>
  void AllPositiveAtMost(const std::string& path, const Repeated& values, double hi) {
    for (int i = 0; i < values.size(); ++i) {
      PositiveAtMost(path + "[" + std::to_string(i) + "]", values.Get(i), hi);
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
  std::set<std::string> reported_;
};

void CheckData(const DataConfig& data, Problems* p) {
  p->NotEmpty("data.train_path", data.train_path());
  p->PositiveAtMost("data.max_history", data.max_history(), kMaxHistory);
  p->InClosed("data.max_bad_fraction", data.max_bad_fraction(), 0, 1);
  p->NonNegative("data.shuffle_buffer", data.shuffle_buffer());
  p->PositiveAtMost("data.prefetch_batches", data.prefetch_batches(), kMaxPrefetchBatches);
}

void CheckInitializer(const std::string& path, const InitializerConfig& init, Problems* p) {
  if (init.kind() == InitializerConfig::UNIFORM) {
    p->InClosed(path + ".low", init.low(), -kMaxInitValue, kMaxInitValue);
    p->InClosed(path + ".high", init.high(), -kMaxInitValue, kMaxInitValue);
    if (!p->Reported(path + ".low") && !(init.low() < init.high())) {
      p->Add(path + ".low", "must be < high for UNIFORM, got low " + Num(init.low()) + ", high " +
                                Num(init.high()));
    }
  }
  if (init.kind() == InitializerConfig::TRUNCATED_NORMAL) {
    p->PositiveAtMost(path + ".stddev", init.stddev(), kMaxInitValue);
  }
}

void CheckSparseOptimizer(const std::string& path, const SparseOptimizerConfig& opt, Problems* p) {
  p->PositiveAtMost(path + ".learning_rate", opt.learning_rate(), kMaxLearningRate);
  switch (opt.kind()) {
    case SparseOptimizerConfig::SGD:
      break;
    case SparseOptimizerConfig::ADAGRAD:
      p->NonNegative(path + ".initial_accumulator", opt.initial_accumulator());
      p->PositiveAtMost(path + ".epsilon", opt.epsilon(), kMaxEpsilon);
      break;
    case SparseOptimizerConfig::ADAM:
      p->InHalfOpen(path + ".beta1", opt.beta1(), 0, 1);
      p->InHalfOpen(path + ".beta2", opt.beta2(), 0, 1);
      p->PositiveAtMost(path + ".epsilon", opt.epsilon(), kMaxEpsilon);
      break;
    case SparseOptimizerConfig::FTRL:
      p->PositiveAtMost(path + ".ftrl_alpha", opt.ftrl_alpha(), kMaxLearningRate);
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
    p->PositiveAtMost(path + ".dim", t.dim(), kMaxTableDim);
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
  p->AllPositiveAtMost("model.mlp.hidden", mlp.hidden(), kMaxLayerSize);
  if (mlp.activation() == DICE) {
    p->PositiveAtMost("model.mlp.dice_epsilon", mlp.dice_epsilon(), kMaxEpsilon);
    p->InHalfOpen("model.mlp.dice_momentum", mlp.dice_momentum(), 0, 1);
  }
}

// The dim of the table named `name`, or 0 when there is none or its dim is out of range (then
// reported by CheckFeatures or CheckTables).
int64_t ValidDim(const JobConfig& config, const std::string& name) {
  const TableConfig* t = name.empty() ? nullptr : FindTable(config, name);
  return t != nullptr && t->dim() > 0 && t->dim() <= kMaxTableDim ? t->dim() : 0;
}

// The item dim D, or 0 when a feature table is missing or its dim is out of range.
int64_t ItemDimOrZero(const JobConfig& config) {
  const int64_t item = ValidDim(config, config.features().item_table());
  const int64_t cate = ValidDim(config, config.features().cate_table());
  return item > 0 && cate > 0 ? item + cate : 0;
}

void CheckDin(const JobConfig& config, Problems* p) {
  const DinModel& din = config.model().din();
  p->AllPositiveAtMost("model.din.attention_hidden", din.attention_hidden(), kMaxLayerSize);
  if (din.attention_normalization() == DinModel::SOFTMAX) {
    p->PositiveAtMost("model.din.softmax_scale", din.softmax_scale(), kMaxSoftmaxScale);
  }
  const int heads = din.multi_head_target_attention().heads();
  const std::string heads_path = "model.din.multi_head_target_attention.heads";
  p->NonNegativeAtMost(heads_path, heads, kMaxHeads);
  const int64_t item_dim = ItemDimOrZero(config);
  if (heads > 0 && item_dim > 0 && item_dim % heads != 0) {
    p->Add(heads_path, std::to_string(heads) + " does not divide the item dim " +
                           std::to_string(item_dim) + " (" + config.features().item_table() +
                           ".dim + " + config.features().cate_table() + ".dim)");
  }
  p->NonNegativeAtMost("model.din.senet.reduction_ratio", din.senet().reduction_ratio(),
                       kMaxSenetRatio);
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
  p->PositiveAtMost("dense_optimizer.learning_rate", opt.learning_rate(), kMaxLearningRate);
  p->NonNegative("dense_optimizer.clip_global_norm", opt.clip_global_norm());
  p->NonNegativeAtMost("dense_optimizer.weight_decay", opt.weight_decay(), kMaxWeightDecay);
  switch (opt.kind()) {
    case DenseOptimizerConfig::SGD:
      p->InHalfOpen("dense_optimizer.momentum", opt.momentum(), 0, 1);
      break;
    case DenseOptimizerConfig::ADAM:
      p->InHalfOpen("dense_optimizer.beta1", opt.beta1(), 0, 1);
      p->InHalfOpen("dense_optimizer.beta2", opt.beta2(), 0, 1);
      p->PositiveAtMost("dense_optimizer.epsilon", opt.epsilon(), kMaxEpsilon);
      break;
    case DenseOptimizerConfig::ADAGRAD:
      p->NonNegative("dense_optimizer.initial_accumulator", opt.initial_accumulator());
      p->PositiveAtMost("dense_optimizer.epsilon", opt.epsilon(), kMaxEpsilon);
      break;
  }
}

void CheckTrain(const JobConfig& config, Problems* p) {
  const TrainConfig& t = config.train();
  p->PositiveAtMost("train.batch_size", t.batch_size(), kMaxBatchSize);
  p->Positive("train.epochs", t.epochs());
  p->NonNegative("train.max_steps", t.max_steps());
  p->NonNegative("train.staleness", t.staleness());
  p->NonNegativeAtMost("train.threads", t.threads(), kMaxThreads);
  p->NonNegative("train.progress_seconds", t.progress_seconds());
  p->NonNegative("train.eval_every_steps", t.eval_every_steps());
  p->PositiveAtMost("train.eval_batch_size", t.eval_batch_size(), kMaxBatchSize);
  if (t.eval_every_steps() > 0 && config.data().test_path().empty()) {
    p->Add("train.eval_every_steps",
           "is " + std::to_string(t.eval_every_steps()) + " but data.test_path is not set");
  }
}

void CheckPs(const PsConfig& ps, Problems* p) {
  p->PositiveAtMost("ps.servers", ps.servers(), kMaxServers);
  p->PositiveAtMost("ps.shard_threads", ps.shard_threads(), kMaxShardThreads);
}

void CheckCheckpoint(const CheckpointConfig& c, Problems* p) {
  p->NonNegative("checkpoint.every_steps", c.every_steps());
  p->NonNegative("checkpoint.every_minutes", c.every_minutes());
  p->NonNegative("checkpoint.keep_last", c.keep_last());
  if (c.dir().empty() && (c.every_steps() > 0 || c.every_minutes() > 0)) {
    p->Add("checkpoint.dir", "must be set when checkpoint.every_steps or every_minutes is");
  }
}

// ---- sizes: products of settings that size one allocation ------------------------------------
//
// Each product is checked only when its factors are valid on their own (else the factor is
// reported already), so every factor here is positive and bounded.

// `v` when 0 < v <= hi, else 0.
int64_t ValidOrZero(int64_t v, int64_t hi) { return v > 0 && v <= hi ? v : 0; }

// A layer list (mlp.hidden, attention_hidden) with the default applied, or empty when an entry
// is out of range.
template <typename Repeated>
std::vector<int64_t> ValidLayers(const Repeated& values, const int* defaults, int num_defaults) {
  std::vector<int64_t> out;
  if (values.size() == 0) return std::vector<int64_t>(defaults, defaults + num_defaults);
  for (int v : values) {
    if (ValidOrZero(v, kMaxLayerSize) == 0) return {};
    out.push_back(v);
  }
  return out;
}

struct Matrix {
  std::string path;  // the setting that sizes it
  int64_t rows, cols;
};

// The model's weight matrices, or empty when a factor is invalid.
std::vector<Matrix> WeightMatrices(const JobConfig& config) {
  const int64_t d = ItemDimOrZero(config);
  const std::string& user_table = config.features().user_table();
  const int64_t user = user_table.empty() ? 0 : ValidDim(config, user_table);
  const std::vector<int64_t> mlp =
      ValidLayers(config.model().mlp().hidden(), kDefaultMlpHidden, std::size(kDefaultMlpHidden));
  if (d == 0 || (!user_table.empty() && user == 0) || mlp.empty()) return {};
  std::vector<Matrix> out;
  int64_t in = user + 3 * d;  // [user, pooled, target, pooled * target]
  if (config.model().has_din()) {
    const DinModel& din = config.model().din();
    const std::vector<int64_t> att = ValidLayers(din.attention_hidden(), kDefaultAttentionHidden,
                                                 std::size(kDefaultAttentionHidden));
    if (att.empty()) return {};
    out.push_back({"model.din.attention_hidden[0]", 4 * d, att[0]});
    for (size_t l = 1; l < att.size(); ++l) {
      out.push_back({"model.din.attention_hidden[" + std::to_string(l) + "]", att[l - 1], att[l]});
    }
    const int64_t heads = din.multi_head_target_attention().heads();
    if (heads > 0) {
      out.insert(out.end(), 4, Matrix{"model.din.multi_head_target_attention.heads", d, d});
      in += d;
    }
  }
  for (size_t l = 0; l < mlp.size(); ++l) {
    out.push_back({"model.mlp.hidden[" + std::to_string(l) + "]", in, mlp[l]});
    in = mlp[l];
  }
  out.push_back({"model.mlp.hidden", in, 1});  // the output layer
  return out;
}

std::string Floats(double n) { return Num(n) + " floats, more than 2^31"; }

void CheckWeights(const std::vector<Matrix>& weights, Problems* p) {
  double total = 0;
  for (const Matrix& m : weights) {
    const double n = static_cast<double>(m.rows) * static_cast<double>(m.cols);
    total += n + static_cast<double>(m.cols);
    if (n > kMaxTensorFloats && !p->Reported(m.path)) {
      p->Add(m.path, "weight matrix " + Num(m.rows) + " x " + Num(m.cols) + " = " + Floats(n));
    }
  }
  if (total > kMaxTensorFloats) {
    p->Add("model", "the dense parameters (layer sizes in model.mlp.hidden and model.din) total ~" +
                        Floats(total));
  }
}

// The widest row of a per-batch tensor ([B, width]) and of a per-position one ([B, T, width]).
struct RowWidths {
  int64_t per_sample = 0, per_position = 0;
};

RowWidths Widths(const JobConfig& config, const std::vector<Matrix>& weights) {
  RowWidths w;
  const int64_t d = ItemDimOrZero(config);
  w.per_position = config.model().has_din() ? 2 * d : d;  // DIN's [k, q*k] rows
  for (const Matrix& m : weights) {
    w.per_sample = std::max({w.per_sample, m.rows, m.cols});
    if (m.path.rfind("model.din.attention_hidden", 0) == 0) {
      w.per_position = std::max(w.per_position, m.cols);
    }
  }
  return w;
}

// batch x history x width and batch x width, for train.batch_size or train.eval_batch_size.
void CheckBatch(const std::string& path, int batch_size, int64_t history, const RowWidths& w,
                Problems* p) {
  const double b = static_cast<double>(ValidOrZero(batch_size, kMaxBatchSize));
  if (b == 0 || history == 0 || w.per_sample == 0) return;
  const double per_position = b * static_cast<double>(history) * w.per_position;
  if (per_position > kMaxTensorFloats) {
    p->Add(path + " * data.max_history * row width",
           Num(b) + " * " + Num(history) + " * " + Num(w.per_position) + " = " +
               Floats(per_position) + " in one batch tensor");
  }
  const double per_sample = b * w.per_sample;
  if (per_sample > kMaxTensorFloats) {
    p->Add(path + " * layer width", Num(b) + " * " + Num(w.per_sample) + " = " +
                                        Floats(per_sample) + " in one batch tensor");
  }
}

void CheckSizes(const JobConfig& config, Problems* p) {
  const std::vector<Matrix> weights = WeightMatrices(config);
  if (weights.empty()) return;
  CheckWeights(weights, p);
  const RowWidths w = Widths(config, weights);
  const int64_t history = ValidOrZero(config.data().max_history(), kMaxHistory);
  CheckBatch("train.batch_size", config.train().batch_size(), history, w, p);
  CheckBatch("train.eval_batch_size", config.train().eval_batch_size(), history, w, p);
}

// ---- finiteness: every float or double field that is set --------------------------------------

void CheckFiniteScalar(const std::string& path, double v, Problems* p) {
  if (!std::isfinite(v) && !p->Reported(path)) p->Add(path, "must be finite, got " + Num(v));
}

void CheckFinite(const google::protobuf::Message& m, const std::string& prefix, Problems* p) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    const std::string path = prefix + f->name();
    const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string at = f->is_repeated() ? path + "[" + std::to_string(i) + "]" : path;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_FLOAT:
          CheckFiniteScalar(at, f->is_repeated() ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f),
                            p);
          break;
        case FieldDescriptor::CPPTYPE_DOUBLE:
          CheckFiniteScalar(
              at, f->is_repeated() ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f), p);
          break;
        case FieldDescriptor::CPPTYPE_MESSAGE:
          CheckFinite(f->is_repeated() ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f),
                      at + ".", p);
          break;
        default:
          break;
      }
    }
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
  CheckSizes(config, &p);
  CheckFinite(config, "", &p);
  return p.ToStatus();
}

}  // namespace attnps::config
