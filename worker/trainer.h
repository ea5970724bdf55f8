// Trainer: the one training loop. One worker's part of a training job (reader thread, pulls
// under the staleness bound, the task's step, pushes, dense allreduce and optimizer step), its
// evaluation and prediction, and the job's checkpoints. What is specific to a task (its samples,
// keys, model inputs, loss, metrics, prediction) is the Task's (worker/task.h); the task of a job
// is chosen from its config in one place (MakeTask in trainer.cc): today CTR.
//
// All workers run the same steps: a worker whose data is used up runs empty steps (zero
// gradients) until every worker's epoch is over, so the collective calls stay matched. Worker 0
// prints progress and writes checkpoints' dense state and manifest; every worker evaluates its
// share of the test split; metrics are appended as JSON lines to metrics_out.
// Errors: bad data, I/O and checkpoint problems return Status with the file named. Init touches no
// other rank, so the workers can agree on its outcome before any collective call (attnps_main).
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
#include "worker/config/job_config.h"
#include "worker/device.h"
#include "worker/metrics/metrics.h"
#include "worker/metrics/tensorboard.h"
#include "worker/models/dense_model.h"
#include "worker/sample_stream.h"
#include "worker/sparse_pipeline.h"
#include "worker/step_timings.h"
#include "worker/task.h"

namespace attnps::worker {

enum class JobKind { kTrain, kEval, kPredict };

struct TrainerOptions {
  JobKind kind = JobKind::kTrain;
  bool resume = false;      // train: continue from <checkpoint.dir>/LATEST (or checkpoint_step)
  bool overwrite = false;   // train: delete the checkpoints already in checkpoint.dir
  std::string metrics_out;  // overrides metrics.out_path when non-empty
  // train: worker 0 also writes each metrics record as TensorBoard scalars (tags
  // <split>/<field>) to an event file there; "" = none.
  std::string tensorboard_dir;
  std::string checkpoint_step;  // a step directory instead of LATEST (eval, predict, resume)
  std::string predict_input, predict_output;  // predict: checked at Init
};

class Trainer {
 public:
  // The task of the config (MakeTask in trainer.cc: CTR today).
  Trainer(ps::JobRuntime* runtime, config::JobConfig config, TrainerOptions options);
  // A task of the caller's (a program or test linking attnps); the config's tables, data paths,
  // train, checkpoint and metrics settings apply to it as to any task.
  Trainer(ps::JobRuntime* runtime, config::JobConfig config, TrainerOptions options,
          std::unique_ptr<Task> task);
  ~Trainer();

  // Builds the model and optimizer and checks everything the job will need before it starts:
  // every path it reads or writes, the checkpoint directory (train: locked for the life of the
  // trainer, and refused when it already holds checkpoints unless resuming or overwriting), and
  // the checkpoint to load (resume, eval, predict): verified file by file (worker 0) and its
  // config compared with this job's. Makes no call to other ranks.
  Status Init();
  // Collective over the workers, right after Init: `init` is this worker's Init status. On
  // return *stopped_together says whether the job stops here on every worker (some worker's Init
  // failed: the result is that failure, or Unavailable on the others); otherwise the result is OK,
  // or an error of this worker alone that must end the job. The checkpoint to load is the one
  // worker 0 found (it reads LATEST under the directory lock); a worker that read another adopts
  // it.
  Status AgreeToStart(const Status& init, bool* stopped_together);
  // Trains (after loading the checkpoint verified by Init when resuming).
  Status Train();
  // Loads the checkpoint verified by Init, for eval/predict.
  Status LoadForInference();
  // Collective over the workers: each scores its share of the test split (CTR: line i goes to
  // worker i % workers) and every worker gets the metrics of all of them merged, the same as one
  // worker scoring the whole file would compute (record->samples and the metrics).
  Status Evaluate(metrics::Record* record);
  // Worker 0: the task's prediction for every line of in_path (CTR: sigmoid(logit), "nan" for a
  // blank or malformed line, reported with file:line), output line i for input line i. Fails,
  // writing nothing, past data.max_bad_fraction malformed lines. *rows: the lines scored.
  Status Predict(const std::string& in_path, const std::string& out_path, int64_t* rows);

  // " auc=0.8123 gauc=0.7911 logloss=0.4410": the metrics switched on in config.metrics.
  std::string MetricsText(const metrics::Record& r, int digits) const;

  int64_t step() const { return step_; }
  models::DenseModel* model() { return task_->model(); }

 private:
  class Reader;
  struct StepResult {
    double loss = 0;
    int samples = 0;
    StepSplit split;
  };

  // The task's step on a batch whose rows were pulled; bookkeeping of the step.
  Status RunStep(TaskBatch* batch, StepResult* result);
  Status PushStep(std::unique_ptr<SparseBatch> batch);
  // Pulls the rows of every table of `batch` at the current step (evaluation, prediction).
  Status PullRows(SparseBatch* batch);
  // Allreduce of the dense gradients, then the dense optimizer (each timed from *mark).
  Status DenseUpdate(double* mark);
  // Adds the client's traffic since the last call (this step's) to the timings.
  void CountTraffic();
  // Adds the time since *mark to `phase` (progress and record timings) and moves *mark to now.
  void Time(StepPhase phase, double* mark);
  // The task's step since *mark: gather and scatter as the task measured them, the rest compute.
  void TimeStep(const StepSplit& split, double* mark);
  // Collective: every worker's non-trainable state (Dice moving averages, each worker's from its
  // own batches) becomes their mean, before an evaluation or a checkpoint, so that evaluation
  // uses the state a checkpoint of this step holds. Nothing happens with one worker.
  Status AverageBuffers();
  // The error that stops a run whose loss or gradients became NaN or infinite.
  Status Diverged(const std::string& what) const;
  Status FillPipeline(bool* epoch_over);
  Status EvaluateAndLog(const std::string& split);
  Status CheckPaths();
  Status CheckCheckpointDir();
  Status TakeOverCheckpointDir();
  Status VerifyCheckpointToLoad();
  Status SaveCheckpoint();
  Status WriteCheckpointFiles(const std::string& step_dir);
  // Loads the verified checkpoint: the servers' rows, the dense state, step and epoch (the reader
  // position was read at Init).
  Status LoadCheckpoint();
  Status ReadReaderPosition();
  Status CheckReaderSettings(const config::JobConfig& saved) const;
  // *value summed over the workers (collective, exact).
  // Element-wise sums over the workers (a collective: every worker calls it).
  Status SumOverWorkers(std::vector<uint64_t>* values);
  // After the last push: the chief prints, per server, the bytes and messages every worker sent
  // it beside what the server counted receiving (a collective).
  Status ReportTraffic();
  std::vector<DenseBlock> DenseBlocks();
  void Progress(double loss, bool force);
  bool IsChief() const { return runtime_->worker_index() == 0; }

  ps::JobRuntime* runtime_;
  config::JobConfig config_;       // for the checkpoints' manifest and the comparison on load
  config::TrainLoopOptions opts_;  // the loop's settings, from config_
  TrainerOptions options_;
  std::unique_ptr<WorkerDevice> device_;
  std::unique_ptr<Task> task_;  // made at construction; task_status_ says how that went
  Status task_status_;
  std::unique_ptr<DenseOptimizer> optimizer_;
  std::unique_ptr<SparsePipeline> pipeline_;
  std::unique_ptr<Reader> reader_;
  std::unique_ptr<DirectoryLock> lock_;  // train with checkpoints: held for the whole job
  std::string load_dir_;                 // the verified step directory to load, or ""
  config::CheckpointManifest load_manifest_;
  int64_t last_saved_step_ = -1;          // the step of the checkpoint written or loaded last
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
  double train_seconds_ = 0;                   // in training steps (no evaluation, no checkpoints)
  StepTimings progress_timings_;               // since the last progress line
  std::vector<ps::PeerTraffic> traffic_seen_;  // the client's traffic at the last step's end
  StepTimings record_timings_;                 // since the last metrics record
  std::unique_ptr<metrics::TensorBoardWriter> tensorboard_;  // chief, with tensorboard_dir
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_TRAINER_H_
