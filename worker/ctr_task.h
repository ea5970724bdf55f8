// CtrTask: click-through-rate prediction on the canonical CTR files (worker/data/sample.h), the
// first Task of the training loop.
//
// Samples become keys per table through the feature slots (CtrBatcher); the model is the CTR
// model kind of config.model (worker/models/ctr_model.h) and computes its own loss (BCE by
// default); evaluation gives AUC, GAUC and logloss (config.metrics switches them); prediction
// writes sigmoid(logit) per line. Thread-safety: see Task.
#ifndef ATTNPS_WORKER_CTR_TASK_H_
#define ATTNPS_WORKER_CTR_TASK_H_

#include <memory>
#include <string>
#include <vector>

#include "proto/job_config.pb.h"
#include "worker/ctr_batch.h"
#include "worker/models/ctr_model.h"
#include "worker/task.h"

namespace attnps::worker {

class CtrTask final : public Task {
 public:
  // The task of a validated config, its model initialized from train.seed. InvalidArgument
  // naming the field for model settings the model kind refuses.
  static Status Create(const config::JobConfig& config, std::unique_ptr<CtrTask>* out);

  const std::vector<SparseTable>& tables() const override { return batcher_.layout().tables; }
  models::DenseModel* model() override { return model_.get(); }
  const std::string& train_file() const override { return config_.data().train_path(); }
  Status OpenTrainSource(int worker_index, int num_workers,
                         std::unique_ptr<SampleSource>* source) override;
  void Index(uint64_t step, TaskBatch* batch) override;
  Status TrainStep(TaskBatch* batch, float loss_scale, float sparse_scale, double* loss,
                   StepSplit* split) override;
  Status EvaluateShard(const RowPuller& pull, int worker_index, int num_workers,
                       std::string* partial) override;
  Status MergeEvaluation(const std::vector<std::string>& partials,
                         metrics::Record* record) override;
  std::string MetricsText(const metrics::Record& record, int digits) const override;
  // Every line of in_path, "nan" for a blank or malformed one (reported with file:line). Fails,
  // writing nothing, past data.max_bad_fraction malformed lines.
  Status Predict(const RowPuller& pull, const std::string& in_path, const std::string& out_path,
                 int64_t* rows) override;

 private:
  CtrTask(const config::JobConfig& config, CtrLayout layout);
  data::CtrReaderOptions ReaderOptions(int worker_index, int num_workers) const;
  // Pulls the rows of a batch, runs the model in inference mode, and feeds the evaluator.
  Status ScoreBatch(const RowPuller& pull, std::vector<data::CtrSample> samples, Tensor* logits,
                    metrics::CtrEvaluator* evaluator);

  config::JobConfig config_;
  CtrBatcher batcher_;  // training, evaluation and prediction batches (keeps no batch's state)
  std::unique_ptr<models::CtrModel> model_;
  models::CtrInputs inputs_, score_inputs_;
  models::CtrInputGrads input_grads_;
  Tensor logits_, labels_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_CTR_TASK_H_
