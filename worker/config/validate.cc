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
#include "worker/config/problems.h"
#include "worker/models/ctr_model.h"
#include "worker/models/retrieval_model.h"

namespace attnps::config {
namespace {

constexpr int kMaxTableDim = 4096;         // tables[i].dim (the wire allows 65536)
constexpr int kMaxBatchSize = 1 << 20;     // train.batch_size, train.eval_batch_size
constexpr int kMaxHistory = 16384;         // data.max_history
constexpr int kMaxPrefetchBatches = 1024;  // data.prefetch_batches
constexpr int kMaxServers = 4096;          // ps.servers
constexpr int kMaxShardThreads = 256;      // ps.shard_threads
constexpr int kMaxThreads = 1024;          // train.threads
constexpr double kMaxLearningRate = 10;    // every learning rate and ftrl_alpha
constexpr double kMaxWeightDecay = 1;      // dense_optimizer.weight_decay
constexpr double kMaxInitValue = 10;       // |initializer.low|, |.high|, .stddev

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

std::string ColumnName(int column) {
  static const char* const kNames[] = {"label",       "user",       "target_item",
                                       "target_cate", "hist_items", "hist_cates"};
  if (column >= 1 && column < kFirstExtraColumn) return kNames[column - 1];
  return "extra " + std::to_string(column - kFirstExtraColumn + 1);
}

// features.slots: names, tables, columns, kinds; one slot for each of columns 3..6, the history
// slots on the target slots' tables.
void CheckSlots(const JobConfig& config, Problems* p) {
  const FeaturesConfig& f = config.features();
  for (const char* legacy : {"user_table", "item_table", "cate_table"}) {
    const auto* field = f.GetDescriptor()->FindFieldByName(legacy);
    if (f.GetReflection()->HasField(f, field)) {
      p->Add(std::string("features.") + legacy,
             "set together with features.slots: declare every feature in features.slots");
    }
  }
  std::map<std::string, int> names;
  std::map<int, int> by_column;  // columns 3..6 -> slot index
  for (int i = 0; i < f.slots_size(); ++i) {
    const FeatureSlot& s = f.slots(i);
    const std::string path = "features.slots[" + std::to_string(i) + "]";
    p->NotEmpty(path + ".name", s.name());
    if (!s.name().empty() && !names.emplace(s.name(), i).second) {
      p->Add(path + ".name", "duplicate slot name " + Quote(s.name()) + " (also features.slots[" +
                                 std::to_string(names[s.name()]) + "])");
    }
    CheckTableRef(config, path + ".table", s.table(), /*required=*/true, p);
    const int c = s.column();
    if (c < kUserColumn || c >= kFirstExtraColumn + kMaxExtraColumns) {
      p->Add(path + ".column", "must be 2 (user), 3..6 (target and history) or 7.." +
                                   std::to_string(kFirstExtraColumn + kMaxExtraColumns - 1) +
                                   " (extra columns), got " + std::to_string(c));
      continue;
    }
    const bool history = c == kHistItemsColumn || c == kHistCatesColumn;
    if ((c == kTargetItemColumn || c == kTargetCateColumn || history) &&
        (s.kind() == FeatureSlot::SEQUENCE) != history) {
      p->Add(path + ".kind", "column " + std::to_string(c) + " (" + ColumnName(c) + ") is " +
                                 (history ? "a SEQUENCE" : "a SINGLE id"));
    }
    if (c >= kTargetItemColumn && c <= kHistCatesColumn) {
      auto [it, inserted] = by_column.emplace(c, i);
      if (!inserted) {
        p->Add(path + ".column", std::to_string(c) + " (" + ColumnName(c) +
                                     ") is read by features.slots[" + std::to_string(it->second) +
                                     "] too");
      }
    }
  }
  for (int c = kTargetItemColumn; c <= kHistCatesColumn; ++c) {
    if (by_column.count(c) == 0) {
      p->Add("features.slots", "no slot reads column " + std::to_string(c) + " (" + ColumnName(c) +
                                   "), which every CTR model needs");
    }
  }
  for (int c : {kHistItemsColumn, kHistCatesColumn}) {
    const int target = c - 2;
    if (by_column.count(c) == 0 || by_column.count(target) == 0) continue;
    const FeatureSlot& h = f.slots(by_column[c]);
    const FeatureSlot& t = f.slots(by_column[target]);
    if (h.table() != t.table()) {
      p->Add("features.slots[" + std::to_string(by_column[c]) + "].table",
             Quote(h.table()) + ": the history slot " + Quote(h.name()) +
                 " must look up the table of the target slot " + Quote(t.name()) + " (" +
                 Quote(t.table()) + "), so that target and history positions compare");
    }
  }
}

void CheckFeatures(const JobConfig& config, Problems* p) {
  const FeaturesConfig& f = config.features();
  if (f.slots_size() > 0) {
    CheckSlots(config, p);
  } else {
    CheckTableRef(config, "features.user_table", f.user_table(), /*required=*/false, p);
    CheckTableRef(config, "features.item_table", f.item_table(), /*required=*/true, p);
    CheckTableRef(config, "features.cate_table", f.cate_table(), /*required=*/true, p);
  }
  const int extra = config.data().extra_columns();
  if (extra != -1) p->NonNegativeAtMost("data.extra_columns", extra, kMaxExtraColumns);
  for (const FeatureSlot& s : CtrSlots(config)) {
    if (extra >= 0 && s.column() >= kFirstExtraColumn + extra &&
        !p->Reported("data.extra_columns")) {
      p->Add("data.extra_columns", std::to_string(extra) + ", but slot " + Quote(s.name()) +
                                       " reads column " + std::to_string(s.column()) +
                                       " (the lines would have " + std::to_string(6 + extra) +
                                       " fields)");
    }
  }
}

// The dim of the table named `name`, or 0 when there is none or its dim is out of range (then
// reported by CheckFeatures or CheckTables).
int64_t ValidDim(const JobConfig& config, const std::string& name) {
  const TableConfig* t = name.empty() ? nullptr : FindTable(config, name);
  return t != nullptr && t->dim() > 0 && t->dim() <= kMaxTableDim ? t->dim() : 0;
}

// The model's input dims from the feature slots; a dim is 0 when unknown (a problem reported
// elsewhere), and *known says whether all of them are.
models::CtrModelDims ModelDims(const JobConfig& config, bool* known) {
  models::CtrModelDims dims;
  *known = true;
  std::string item_table, cate_table;
  for (const FeatureSlot& s : CtrSlots(config)) {
    const int dim = static_cast<int>(ValidDim(config, s.table()));
    *known = *known && dim > 0;
    if (s.column() == kTargetItemColumn) {
      dims.item_dim = dim;
      item_table = s.table();
    } else if (s.column() == kTargetCateColumn) {
      dims.cate_dim = dim;
      cate_table = s.table();
    } else if (s.column() != kHistItemsColumn && s.column() != kHistCatesColumn) {
      dims.user_dim += dim;
      dims.context.push_back({s.name(), dim});
    }
  }
  *known = *known && dims.item_dim > 0 && dims.cate_dim > 0;
  dims.max_history = config.data().max_history();
  dims.d_source = item_table + ".dim + " + cate_table + ".dim";
  return dims;
}

void CheckModel(const JobConfig& config, Problems* p, models::CtrModelSizes* sizes) {
  bool known = false;
  const models::CtrModelDims dims = ModelDims(config, &known);
  models::CheckCtrModelConfig(config.model(), dims, p, known ? sizes : nullptr);
  if (config.model().has_dien() && config.model().dien().aux_loss_weight() > 0 &&
      config.data().item_cates_path().empty()) {
    p->Add("data.item_cates_path",
           "DIEN's auxiliary loss (model.dien.aux_loss_weight > 0) draws its negative items from "
           "the item -> category file; set it, or set model.dien.aux_loss_weight: 0");
  }
}

// The retrieval task's settings (a retrieval model kind): its tables, corpus and evaluation.
void CheckRetrieval(const JobConfig& config, Problems* p) {
  const RetrievalConfig& r = config.retrieval();
  if (config.features().slots_size() > 0) {
    p->Add("features.slots",
           "retrieval jobs read item ids only (features.item_table); remove "
           "the slots");
  }
  CheckTableRef(config, "features.item_table", config.features().item_table(), true, p);
  CheckTableRef(config, "retrieval.output_table", r.output_table(), true, p);
  const int64_t d = ValidDim(config, config.features().item_table());
  const int64_t out = ValidDim(config, r.output_table());
  if (!p->Reported("retrieval.output_table") && !p->Reported("features.item_table")) {
    if (r.output_table() == config.features().item_table()) {
      if (r.output_bias()) {
        p->Add("retrieval.output_bias",
               "needs an output table of its own (dim + 1); retrieval.output_table is the input "
               "table " +
                   Quote(r.output_table()));
      }
    } else if (d > 0 && out > 0 && out != d + (r.output_bias() ? 1 : 0)) {
      p->Add("retrieval.output_table",
             Quote(r.output_table()) + " has dim " + std::to_string(out) + "; it must be " +
                 std::to_string(d + (r.output_bias() ? 1 : 0)) + " (the item dim" +
                 (r.output_bias() ? " + 1 for retrieval.output_bias)" : ")"));
    }
  }
  p->NotEmpty("data.item_cates_path", config.data().item_cates_path());
  p->PositiveAtMost("retrieval.min_history", r.min_history(), kMaxHistory);
  p->InHalfOpen("retrieval.valid_fraction", r.valid_fraction(), 0, 1);
  p->InHalfOpen("retrieval.test_fraction", r.test_fraction(), 0, 1);
  if (r.valid_fraction() + r.test_fraction() >= 1) {
    p->Add("retrieval.test_fraction", "valid_fraction + test_fraction must be below 1");
  }
  p->PositiveAtMost("retrieval.num_negatives", r.num_negatives(), 1 << 20);
  p->AllPositiveAtMost("retrieval.topk", r.topk(), 10000);
  p->NonNegative("retrieval.diversity_lambda", r.diversity_lambda());
  if (!(r.history_fraction() > 0 && r.history_fraction() < 1)) {
    p->Add("retrieval.history_fraction", "must be in (0, 1), got " + Num(r.history_fraction()));
  }
  p->PositiveAtMost("retrieval.sampled_candidates", r.sampled_candidates(), 1 << 20);
  const RetrievalIndexConfig& ix = r.serving_index();
  p->PositiveAtMost("retrieval.serving_index.topk", ix.topk(), 10000);
  p->PositiveAtMost("retrieval.serving_index.hnsw_m", ix.hnsw_m(), 1024);
  p->PositiveAtMost("retrieval.serving_index.hnsw_ef_search", ix.hnsw_ef_search(), 1 << 20);
  p->NonNegativeAtMost("retrieval.serving_index.ivf_lists", ix.ivf_lists(), 1 << 24);
  p->PositiveAtMost("retrieval.serving_index.ivf_probe", ix.ivf_probe(), 1 << 24);
  models::RetrievalModelDims dims;
  dims.item_dim = static_cast<int>(d);
  dims.max_history = config.data().max_history();
  models::CheckRetrievalModelConfig(config.model(), dims, p);
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

using Matrix = models::CtrModelSizes::Matrix;

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

RowWidths Widths(const models::CtrModelSizes& sizes) {
  RowWidths w;
  w.per_position = sizes.per_position;
  for (const Matrix& m : sizes.weights) w.per_sample = std::max({w.per_sample, m.rows, m.cols});
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

void CheckSizes(const JobConfig& config, const models::CtrModelSizes& sizes, Problems* p) {
  if (sizes.weights.empty()) return;  // the model settings were not valid: reported already
  CheckWeights(sizes.weights, p);
  const RowWidths w = Widths(sizes);
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
  if (models::IsRetrievalModel(config.model())) {
    CheckRetrieval(config, &p);
  } else {
    if (config.has_retrieval()) {
      p.Add("retrieval",
            "set, but model selects a CTR kind; the retrieval task needs one of "
            "model.most_popular, youtube_dnn, comirec_sa, comirec_dr, self_attention");
    }
    CheckFeatures(config, &p);
    models::CtrModelSizes sizes;
    CheckModel(config, &p, &sizes);
    CheckSizes(config, sizes, &p);
  }
  CheckDenseOptimizer(config.dense_optimizer(), &p);
  CheckTrain(config, &p);
  CheckPs(config.ps(), &p);
  CheckCheckpoint(config.checkpoint(), &p);
  CheckFinite(config, "", &p);
  return p.ToStatus();
}

}  // namespace attnps::config
