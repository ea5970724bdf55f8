// Trainer: one worker's part of a CTR training job (reader thread, pulls under the staleness
// bound, forward/backward, pushes, dense allreduce and optimizer step), its evaluation and
// prediction, and the job's checkpoints.
//
// All workers run the same steps: a worker whose data is used up runs empty steps (zero
// gradients) until every worker's epoch is over, so the collective calls stay matched. Worker 0
// prints progress, evaluates the test split (AUC, GAUC, logloss) and writes checkpoints'
// dense state and manifest; metrics are appended as JSON lines to metrics_out.
// Errors: bad data, I/O and checkpoint problems return Status with the file named.
#ifndef ATTNPS_WORKER_TRAINER_H_
#define ATTNPS_WORKER_TRAINER_H_

#include <deque>
#include <memory>
#include <string>

#include "ops/optimizer.h"
#include "ops/status.h"
#include "proto/job_config.pb.h"
#include "ps/job_runtime.h"
#include "worker/checkpoint.h"
#include "worker/ctr_batch.h"
#include "worker/metrics/metrics.h"
#include "worker/models/ctr_model.h"
#include "worker/sample_stream.h"
#include "worker/sparse_pipeline.h"

namespace attnps::worker {

struct TrainerOptions {
  bool resume = false;          // continue from <checkpoint.dir>/LATEST
  std::string metrics_out;      // overrides metrics.out_path when non-empty
  std::string checkpoint_step;  // eval/predict: a step directory instead of LATEST
};

class Trainer {
 public:
  Trainer(ps::JobRuntime* runtime, config::JobConfig config, TrainerOptions options);
  ~Trainer();

  // Builds the model and optimizer; loads the checkpoint when resuming.
  Status Init();
  Status Train();
  // Loads the checkpoint (LATEST or options.checkpoint_step) for eval/predict.
  Status LoadForInference();
  // Worker 0: scores the test split.
  Status Evaluate(metrics::CtrResult* result);
  // Worker 0: writes sigmoid(logit) of every line of a CTR file to out_path, one per line.
  Status Predict(const std::string& in_path, const std::string& out_path, int64_t* rows);

  int64_t step() const { return step_; }
  models::CtrModel* model() { return model_.get(); }

 private:
  class Reader;
  struct StepResult {
    double loss = 0;
    int samples = 0;
  };

  Status RunStep(std::unique_ptr<CtrBatch> batch, StepResult* result);
  Status DenseUpdate();
  Status FillPipeline(bool* epoch_over);
  Status EvaluateAndLog(const std::string& split);
  // Scores a CTR file: probabilities to out_path (unless empty), logits to the evaluator (if any).
  Status Predict(const std::string& in_path, const std::string& out_path, int64_t* rows,
                 metrics::CtrEvaluator* evaluator);
  Status SaveCheckpoint();
  Status LoadCheckpoint(const std::string& step_dir, bool with_reader);
  std::vector<DenseBlock> DenseBlocks();
  void Progress(double loss, bool force);
  bool IsChief() const { return runtime_->worker_index() == 0; }

  ps::JobRuntime* runtime_;
  config::JobConfig config_;
  TrainerOptions options_;
  CtrLayout layout_;
  std::vector<SparseTable> tables_;
  std::unique_ptr<models::CtrModel> model_;
  std::unique_ptr<DenseOptimizer> optimizer_;
  std::unique_ptr<CtrBatcher> batcher_;
  std::unique_ptr<SparsePipeline> pipeline_;
  std::unique_ptr<Reader> reader_;
  std::deque<StreamPosition> positions_;  // after each submitted batch, in order
  StreamPosition consumed_;               // after the last batch pushed
  int64_t step_ = 0;
  int32_t epoch_ = 0;
  uint64_t samples_seen_ = 0;
  uint64_t samples_run_ = 0;        // this worker's samples since this process started
  uint64_t epoch_samples_ = 0;      // this worker's samples in the current epoch
  uint64_t samples_per_epoch_ = 0;  // all workers', from the file's line count
  double start_time_ = 0, last_progress_ = 0, last_checkpoint_time_ = 0;
  double loss_ema_ = -1;
  double train_seconds_ = 0;  // in training steps (no evaluation, no checkpoints)
  models::CtrInputs inputs_;
  models::CtrInputGrads input_grads_;
  Tensor logits_, dlogits_, labels_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_TRAINER_H_
