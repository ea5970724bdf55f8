// Task: what a training job computes, plugged into the one training loop (worker/trainer.h).
//
// The loop owns everything that is the same for every model: the reader thread, the staleness
// pipeline of pulls and pushes, the matched empty steps, the dense allreduce and optimizer,
// checkpoints, resume, progress and the metrics file. A task owns what is not: reading its
// samples, turning them into keys per table and into model inputs, the model and its loss (the
// input gradients become the rows' gradients), evaluation into a metrics record, and prediction.
// The CTR task (worker/ctr_task.h) is the first; a retrieval task implements the same interface.
//
// Call order, on one thread (the trainer's): the loop reads batches through the task's
// SampleSource (on its reader thread), then for each step calls Index, pulls the rows of
// batch->keys, calls TrainStep, and pushes batch->grads.
// Errors: Status naming the file and line, or the setting; never a crash on bad input.
#ifndef ATTNPS_WORKER_TASK_H_
#define ATTNPS_WORKER_TASK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/status.h"
#include "worker/metrics/metrics.h"
#include "worker/models/dense_model.h"
#include "worker/sample_stream.h"
#include "worker/sparse_pipeline.h"

namespace attnps::worker {

// Seconds of a TrainStep that were not the model's: for the step timings.
struct StepSplit {
  double gather = 0;   // pulled rows into model inputs
  double scatter = 0;  // input gradients onto the unique keys
};

// One step's samples as the task batches them, with their embedding traffic (SparseBatch).
struct TaskBatch : SparseBatch {
  int num_samples = 0;
};

// This worker's training samples, in batches, resumable at a StreamPosition. Used by the loop's
// reader thread only (one thread at a time).
class SampleSource {
 public:
  virtual ~SampleSource() = default;
  // A batch of up to n samples of the current epoch (num_samples set, keys not yet); fewer, maybe
  // none (an empty batch), at the epoch's end, and then *epoch_end = true.
  virtual Status Read(int n, std::unique_ptr<TaskBatch>* batch, bool* epoch_end) = 0;
  virtual Status Seek(const StreamPosition& position) = 0;
  // The position of the next sample.
  virtual StreamPosition position() const = 0;
};

// Pulls the rows of batch->keys of every table (all at once) into batch->rows, at the current
// step; for evaluation and prediction, outside the training pipeline.
using RowPuller = std::function<Status(SparseBatch* batch)>;

class Task {
 public:
  virtual ~Task() = default;

  // The sparse tables the task's batches use, in the order of SparseBatch::keys.
  virtual const std::vector<SparseTable>& tables() const = 0;
  // The dense model every worker replicates (the task owns it).
  virtual models::DenseModel* model() = 0;
  // The file whose lines are the training samples (the loop counts them for progress).
  virtual const std::string& train_file() const = 0;

  // This worker's (worker_index of num_workers) training samples.
  virtual Status OpenTrainSource(int worker_index, int num_workers,
                                 std::unique_ptr<SampleSource>* source) = 0;
  // Fills batch->keys (unique per table) and the task's indices into them; batch->step = step.
  virtual void Index(uint64_t step, TaskBatch* batch) = 0;
  // With batch->rows pulled: forward, loss, backward. Accumulates the dense gradients of
  // loss_scale * loss into model()->grads() and sets batch->grads to sparse_scale * d(loss) /
  // d(row) per unique key. *loss: the batch's loss; a non-finite loss returns OK with the
  // gradients unspecified (the loop stops the run as diverged). *split: the seconds spent on
  // other work than the model's (left at 0 when the task does not measure them).
  virtual Status TrainStep(TaskBatch* batch, float loss_scale, float sparse_scale, double* loss,
                           StepSplit* split) = 0;

  // Evaluation, split across workers: each scores its share of the test data (worker_index of
  // num_workers) into `partial`; MergeEvaluation turns every worker's partial (in worker order)
  // into the metrics of the whole test data, the same as one worker scoring all of it.
  virtual Status EvaluateShard(const RowPuller& pull, int worker_index, int num_workers,
                               std::string* partial) = 0;
  // Fills record->samples and the metrics (not step, epoch, split, time_s).
  virtual Status MergeEvaluation(const std::vector<std::string>& partials,
                                 metrics::Record* record) = 0;
  // " auc=0.8123 gauc=0.7911 logloss=0.4410": the metrics of `record` the config switches on.
  virtual std::string MetricsText(const metrics::Record& record, int digits) const = 0;

  // Scores the samples of in_path into out_path, output line i for input line i; *rows: the
  // lines scored. Writes nothing on error.
  virtual Status Predict(const RowPuller& pull, const std::string& in_path,
                         const std::string& out_path, int64_t* rows) = 0;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_TASK_H_
