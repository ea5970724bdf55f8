#include "worker/ctr_task.h"

#include <glog/logging.h>

#include <chrono>
#include <cstdio>
#include <tuple>
#include <utility>

#include "ops/loss.h"
#include "worker/checkpoint.h"
#include "worker/config/job_config.h"
#include "worker/data/text.h"
#include "worker/stream_source.h"

namespace attnps::worker {
namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void ResizeLike(const Tensor& like, Tensor* t) {
  if (like.empty()) {
    *t = Tensor();
  } else {
    t->EnsureCapacity(like.shape());
  }
  if (!t->empty()) t->SetZero();
}

models::CtrModelDims ModelDims(const CtrLayout& layout, const config::JobConfig& config) {
  models::CtrModelDims dims;
  dims.item_dim = layout.item_dim();
  dims.cate_dim = layout.cate_dim();
  dims.user_dim = layout.user_dim();
  dims.max_history = layout.max_history;
  for (const CtrSlot& s : layout.context) dims.context.push_back({s.name, s.dim});
  for (const config::FeatureSlot& s : config::CtrSlots(config)) {
    if (s.column() == config::kTargetItemColumn)
      dims.d_source = s.table() + ".dim + " + dims.d_source;
    if (s.column() == config::kTargetCateColumn) dims.d_source += s.table() + ".dim";
  }
  return dims;
}

}  // namespace

CtrTask::CtrTask(const config::JobConfig& config, CtrLayout layout)
    : config_(config), batcher_(std::move(layout)) {}

Status CtrTask::Create(const config::JobConfig& config, std::unique_ptr<CtrTask>* out) {
  CtrLayout layout = MakeCtrLayout(config);
  std::unique_ptr<CtrTask> task(new CtrTask(config, layout));
  ATTNPS_RETURN_IF_ERROR(models::MakeCtrModel(config.model(), ModelDims(layout, config),
                                              config.train().seed(), &task->model_));
  if (task->model_->wants_negatives()) {
    std::vector<ItemCate> pool;
    ATTNPS_RETURN_IF_ERROR(ReadItemCates(config.data().item_cates_path(),
                                         "the negatives of DIEN's auxiliary loss are drawn from it",
                                         &pool));
    task->batcher_.SetNegativePool(std::move(pool), config.train().seed());
  }
  *out = std::move(task);
  return Status::Ok();
}

data::CtrReaderOptions CtrTask::ReaderOptions(int worker_index, int num_workers) const {
  data::CtrReaderOptions options;
  options.worker_index = worker_index;
  options.num_workers = num_workers;
  options.max_history = config_.data().max_history();
  options.max_bad_fraction = config_.data().max_bad_fraction();
  options.extra_columns = batcher_.layout().extra_columns;
  return options;
}

Status CtrTask::OpenTrainSource(int worker_index, int num_workers,
                                std::unique_ptr<SampleSource>* source) {
  auto ctr = std::make_unique<StreamSource<CtrBatch>>();
  ATTNPS_RETURN_IF_ERROR(ctr->Open(config_.data().train_path(),
                                   ReaderOptions(worker_index, num_workers),
                                   config_.data().shuffle_buffer(), config_.train().seed()));
  *source = std::move(ctr);
  return Status::Ok();
}

void CtrTask::Index(uint64_t step, TaskBatch* batch) {
  auto* ctr = static_cast<CtrBatch*>(batch);
  batcher_.Index(std::move(ctr->samples), step, ctr, /*draw_negatives=*/true);
}

Status CtrTask::TrainStep(TaskBatch* batch, float loss_scale, float sparse_scale, double* loss,
                          StepSplit* split) {
  auto* ctr = static_cast<CtrBatch*>(batch);
  const double t0 = Seconds();
  batcher_.Gather(*ctr, &inputs_);
  BatchLabels(*ctr, &labels_);
  ResizeLike(inputs_.target, &input_grads_.target);
  ResizeLike(inputs_.history, &input_grads_.history);
  ResizeLike(inputs_.user, &input_grads_.user);
  ResizeLike(inputs_.negatives, &input_grads_.negatives);
  // The loss is the mean over all workers' batches (loss_scale): the dense gradients summed by
  // the allreduce are then their average; sparse_scale turns that back into this batch's mean.
  const double t1 = Seconds();
  split->gather = t1 - t0;
  *loss = model_->TrainStep(inputs_, labels_, loss_scale, &logits_, &input_grads_);
  if (!std::isfinite(*loss)) return Status::Ok();
  const double t2 = Seconds();
  batcher_.Scatter(input_grads_, sparse_scale, ctr);
  split->scatter = Seconds() - t2;
  return Status::Ok();
}

Status CtrTask::ScoreBatch(const RowPuller& pull, std::vector<data::CtrSample> samples,
                           Tensor* logits, metrics::CtrEvaluator* evaluator) {
  CtrBatch batch;
  batcher_.Index(std::move(samples), 0, &batch);
  ATTNPS_RETURN_IF_ERROR(pull(&batch));
  batcher_.Gather(batch, &score_inputs_);
  model_->Forward(score_inputs_, /*training=*/false, logits);
  if (evaluator != nullptr) {
    Tensor labels;
    BatchLabels(batch, &labels);
    std::vector<uint64_t> users(batch.num_samples);
    for (int b = 0; b < batch.num_samples; ++b) users[b] = batch.samples[b].user;
    evaluator->Add(labels.data(), logits->data(), users.data(), batch.num_samples);
  }
  return Status::Ok();
}

// This worker's share of the test lines (line i goes to worker i % workers).
Status CtrTask::EvaluateShard(const RowPuller& pull, int worker_index, int num_workers,
                              std::string* partial) {
  data::CtrFileReader reader;
  ATTNPS_RETURN_IF_ERROR(
      reader.Open(config_.data().test_path(), ReaderOptions(worker_index, num_workers)));
  metrics::CtrEvaluator evaluator;
  Tensor logits;
  const int batch_size = config_.train().eval_batch_size();
  for (bool eof = false; !eof;) {
    std::vector<data::CtrSample> samples;
    data::CtrSample s;
    while (static_cast<int>(samples.size()) < batch_size) {
      ATTNPS_RETURN_IF_ERROR(reader.Next(&s, &eof));
      if (eof) break;
      samples.push_back(std::move(s));
    }
    if (samples.empty()) break;
    ATTNPS_RETURN_IF_ERROR(ScoreBatch(pull, std::move(samples), &logits, &evaluator));
  }
  *partial = evaluator.Serialize();
  return Status::Ok();
}

Status CtrTask::MergeEvaluation(const std::vector<std::string>& partials, metrics::Record* record) {
  metrics::CtrEvaluator merged;
  for (size_t w = 0; w < partials.size(); ++w) {
    if (!merged.AppendSerialized(partials[w])) {
      return Status::Corruption("evaluation results of worker " + std::to_string(w) +
                                " do not parse");
    }
  }
  const metrics::CtrResult r = merged.Compute();
  const auto& m = config_.metrics();  // the metrics switched off are not reported
  record->samples = r.samples;
  record->auc = m.auc() ? r.auc : metrics::kNaN;
  record->gauc = m.gauc() ? r.gauc : metrics::kNaN;
  record->logloss = m.logloss() ? r.logloss : metrics::kNaN;
  return Status::Ok();
}

std::string CtrTask::MetricsText(const metrics::Record& r, int digits) const {
  const auto& m = config_.metrics();
  std::string out;
  char text[64];
  for (const auto& [name, value, on] :
       {std::tuple<const char*, double, bool>{"auc", r.auc, m.auc()},
        {"gauc", r.gauc, m.gauc()},
        {"logloss", r.logloss, m.logloss()}}) {
    if (!on) continue;
    std::snprintf(text, sizeof(text), " %s=%.*f", name, digits, value);
    out += text;
  }
  return out;
}

Status CtrTask::Predict(const RowPuller& pull, const std::string& in_path,
                        const std::string& out_path, int64_t* rows) {
  data::CtrFileReader reader;
  ATTNPS_RETURN_IF_ERROR(reader.Open(in_path, ReaderOptions(0, 1)));
  std::string out;
  Tensor logits, probs;
  const int batch_size = config_.train().eval_batch_size();
  int64_t total = 0, unscored = 0;
  for (bool eof = false; !eof;) {
    // slots[i]: the batch row of the chunk's i-th line, or -1 for a line that has no score.
    std::vector<data::CtrSample> samples;
    std::vector<int> slots;
    data::CtrSample s;
    while (static_cast<int>(samples.size()) < batch_size) {
      bool parsed = false;
      std::string why;
      ATTNPS_RETURN_IF_ERROR(reader.NextLine(&s, &parsed, &why, &eof));
      if (eof) break;
      unscored += parsed ? 0 : 1;  // the reader reports the malformed ones with file:line
      slots.push_back(parsed ? static_cast<int>(samples.size()) : -1);
      if (parsed) samples.push_back(std::move(s));
    }
    if (slots.empty()) break;
    if (!samples.empty()) {
      const int n = static_cast<int>(samples.size());
      ATTNPS_RETURN_IF_ERROR(ScoreBatch(pull, std::move(samples), &logits, nullptr));
      total += n;
    }
    if (out_path.empty()) continue;
    probs.EnsureShape(logits.shape());
    if (!logits.empty()) SigmoidProbabilities(logits, &probs);
    char line[32];
    for (int slot : slots) {
      if (slot < 0) {
        out += "nan\n";
      } else {
        out.append(line, std::snprintf(line, sizeof(line), "%.6g\n", probs.data()[slot]));
      }
    }
  }
  if (unscored > 0) {
    std::printf("[attnps] %s: %lld blank or malformed line(s) written as nan\n", in_path.c_str(),
                static_cast<long long>(unscored));
  }
  if (rows != nullptr) *rows = total;
  return out_path.empty() ? Status::Ok() : WriteFileAtomically(out_path, out);
}

}  // namespace attnps::worker
