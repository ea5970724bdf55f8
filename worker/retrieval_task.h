// RetrievalTask: next-item retrieval on prepare's sequences.tsv (config.retrieval, a retrieval
// model kind), the second Task of the training loop. docs/retrieval.md.
//
// Training: the train users' examples (next-item, or encoder windows for a model that predicts
// every position) are written once to a file beside data.train_path, keyed by its content and
// the settings that cut it, and read through the loop's SampleStream. Tables: the input item
// rows (features.item_table, D) and the items' output embeddings (retrieval.output_table, D or
// D + 1 with a bias), or one table for both when they are the same (ComiRec's code). A batch pulls
// the history rows, and the output rows of its positives and of the S negatives shared by the batch
// (or of the whole corpus with FULL_SOFTMAX); the loss is the sampled softmax with the log-Q
// correction (ops/loss.h), each sample's user vector being the interest with the largest dot
// product with its positive. Evaluation: the eval users of data.test_path, split across workers
// (the i-th eval user to worker i % workers), scored by the ComiRec protocol (full corpus, the
// exact TopKIndex of the output rows) or the SASRec one (sampled candidates); the sums merge
// exactly. Prediction (`attnps retrieve`): each history line's top-N items
// (retrieval.serving_index). Thread-safety: see Task.
#ifndef ATTNPS_WORKER_RETRIEVAL_TASK_H_
#define ATTNPS_WORKER_RETRIEVAL_TASK_H_

#include <absl/container/flat_hash_map.h>

#include <memory>
#include <string>
#include <vector>

#include "ops/loss.h"
#include "proto/job_config.pb.h"
#include "worker/data/sample.h"
#include "worker/metrics/retrieval_metrics.h"
#include "worker/models/retrieval_model.h"
#include "worker/negative_sampler.h"
#include "worker/task.h"
#include "worker/topk_index.h"

namespace attnps::worker {

// One step's examples with their indices into the unique keys of each table.
struct RetrievalBatch : TaskBatch {
  std::vector<data::CtrSample> samples;
  std::vector<int32_t> history_offsets;  // [B + 1]
  std::vector<int32_t> hist_index;       // [N] into keys[0]
  std::vector<int32_t> pos_index;        // [Q] into keys[1]: Q = B, or N (every position)
  std::vector<int64_t> pos_ids;          // [Q]
  std::vector<int32_t> query_sample;     // [Q]: the sample of each query
  std::vector<int32_t> neg_index;        // [S'] into keys[1]
  std::vector<int64_t> neg_ids;          // [S']
  std::vector<float> log_q_pos, log_q_neg;
};

class RetrievalTask final : public Task {
 public:
  // Validated config with a retrieval model kind. Writes the training file when absent (every
  // worker may: the file is renamed into place complete). Errors name the file or setting.
  static Status Create(const config::JobConfig& config, std::unique_ptr<RetrievalTask>* out);

  const std::vector<SparseTable>& tables() const override { return tables_; }
  models::DenseModel* model() override;
  const std::string& train_file() const override { return train_file_; }
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
  // in_path: retrieval lines (user \t items \t cates); out_path: per input line "user \t
  // item:score,..." (the top retrieval.serving_index.topk by score), an empty line for a malformed
  // input line (reported as file:line). Fails, writing nothing, past data.max_bad_fraction.
  Status Predict(const RowPuller& pull, const std::string& in_path, const std::string& out_path,
                 int64_t* rows) override;

 private:
  explicit RetrievalTask(const config::JobConfig& config);
  Status PrepareTrainFile();
  Status CountTargets();
  // The K interests [B, K, D] of histories (inference), pulling their rows.
  Status Interests(const RowPuller& pull, const std::vector<std::vector<uint64_t>>& histories,
                   Tensor* interests);
  // Per history, per interest: its top n items in `index` (inference).
  Status SearchInterests(const RowPuller& pull, const std::vector<std::vector<uint64_t>>& histories,
                         const TopKIndex& index, int n,
                         std::vector<std::vector<std::vector<metrics::ScoredItem>>>* out);
  // Every corpus item's output row [items, Dr], pulled in chunks.
  Status PullOutputRows(const RowPuller& pull, std::vector<float>* rows);
  // One interest's query for the output rows: [u, 1] with a bias column.
  void Query(const float* interest, float* query) const;
  Status EvaluateComiRec(const RowPuller& pull, const std::vector<data::RetrievalSample>& users,
                         std::vector<metrics::RetrievalSums>* sums);
  Status EvaluateSasRec(const RowPuller& pull, const std::vector<data::RetrievalSample>& users,
                        std::vector<metrics::RetrievalSums>* sums);
  // The most popular items, ranked (MostPopular's list for every user).
  std::vector<uint64_t> Popular(int n) const;
  std::vector<int> TopK() const;

  config::JobConfig config_;
  const config::RetrievalConfig& rc_;
  std::vector<SparseTable> tables_;
  int d_ = 0, row_dim_ = 0;  // D, and the output rows' width (D or D + 1)
  int out_table_ = 0;        // the output rows' table in tables_ (0: the input rows' table)
  std::unique_ptr<models::RetrievalModel> model_;
  std::string train_file_;
  std::vector<uint64_t> corpus_;                  // the items of data.item_cates_path
  absl::flat_hash_map<uint64_t, uint64_t> cate_;  // item -> category
  std::vector<uint64_t> item_cate_;               // by item id (GreedyDiverse), 0: unknown
  std::vector<uint64_t> counts_;                  // training-target count by item id
  double total_targets_ = 0;
  std::unique_ptr<NegativeSampler> sampler_;
  std::vector<absl::flat_hash_map<uint64_t, int32_t>> seen_;  // per table, reused

  // Training workspaces.
  models::RetrievalInputs inputs_;
  Tensor out_, dout_, dhistory_, u_, pos_, neg_, du_, dpos_, dneg_, lq_pos_, lq_neg_;
  std::vector<int> chosen_;  // the interest of each query
  SampledSoftmaxWorkspace softmax_ws_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_RETRIEVAL_TASK_H_
