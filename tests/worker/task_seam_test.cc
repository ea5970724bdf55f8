// The loop runs a task that is not CTR: a toy regression (y_k = k / N for ids k = 1..N; the
// prediction is the id's one-float row plus a dense bias; MSE), with its own samples, keys,
// model, loss, metric and prediction, trained, checkpointed, resumed and evaluated by the one
// loop without any change to it. The proof that a retrieval task fits the seam the same way.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "tests/worker/local_job.h"
#include "worker/checkpoint.h"
#include "worker/task.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kIds = 40;
constexpr int64_t kSamplesPerEpoch = 400;

float Target(uint64_t id) { return static_cast<float>(id) / kIds; }

struct ToyBatch : TaskBatch {
  std::vector<uint64_t> ids;  // one per sample
  std::vector<int32_t> slot;  // index into keys[0]
};

// Sample i of an epoch is id 1 + (7 i + epoch) % kIds; worker w of n reads i % n == w.
class ToySource final : public SampleSource {
 public:
  ToySource(int worker, int workers) : worker_(worker), workers_(workers) {}
  Status Read(int n, std::unique_ptr<TaskBatch>* out, bool* epoch_end) override {
    auto batch = std::make_unique<ToyBatch>();
    while (static_cast<int>(batch->ids.size()) < n && next_ < kSamplesPerEpoch) {
      if (next_ % workers_ == worker_) batch->ids.push_back(1 + (7 * next_ + epoch_) % kIds);
      ++next_;
    }
    batch->num_samples = static_cast<int>(batch->ids.size());
    *epoch_end = next_ >= kSamplesPerEpoch;
    if (*epoch_end && batch->ids.size() < static_cast<size_t>(n)) {
      ++epoch_;
      next_ = 0;
    } else {
      *epoch_end = false;
    }
    *out = std::move(batch);
    return Status::Ok();
  }
  Status Seek(const StreamPosition& p) override {
    epoch_ = p.epoch;
    next_ = p.taken;
    return Status::Ok();
  }
  StreamPosition position() const override {
    StreamPosition p;
    p.epoch = epoch_;
    p.taken = next_;
    return p;
  }

 private:
  int worker_, workers_;
  int32_t epoch_ = 0;
  int64_t next_ = 0;
};

class BiasModel final : public models::DenseModel {
 public:
  BiasModel() : params_(Tensor::Zeros({1})), grads_(Tensor::Zeros({1})) {}
  Tensor& params() override { return params_; }
  Tensor& grads() override { return grads_; }
  Tensor& buffers() override { return buffers_; }

 private:
  Tensor params_, grads_, buffers_;
};

class ToyTask final : public Task {
 public:
  explicit ToyTask(uint32_t table_id) : tables_{{table_id, 1}} {}
  const std::vector<SparseTable>& tables() const override { return tables_; }
  models::DenseModel* model() override { return &model_; }
  const std::string& train_file() const override { return train_file_; }  // none: no ETA
  Status OpenTrainSource(int worker, int workers, std::unique_ptr<SampleSource>* out) override {
    *out = std::make_unique<ToySource>(worker, workers);
    return Status::Ok();
  }
  void Index(uint64_t step, TaskBatch* batch) override {
    auto* b = static_cast<ToyBatch*>(batch);
    b->step = step;
    b->keys.assign(1, {});
    b->slot.clear();
    for (uint64_t id : b->ids) {
      auto it = std::find(b->keys[0].begin(), b->keys[0].end(), id);
      b->slot.push_back(static_cast<int32_t>(it - b->keys[0].begin()));
      if (it == b->keys[0].end()) b->keys[0].push_back(id);
    }
  }
  Status TrainStep(TaskBatch* batch, float loss_scale, float sparse_scale, double* loss,
                   StepSplit*) override {
    auto* b = static_cast<ToyBatch*>(batch);
    const float bias = model_.params().data()[0];
    const size_t n = b->ids.size();
    b->grads.assign(1, std::vector<float>(b->keys[0].size(), 0.0f));
    *loss = 0;
    for (size_t i = 0; i < n; ++i) {
      const float err = b->rows[0][b->slot[i]] + bias - Target(b->ids[i]);
      *loss += err * err / n;
      const float d = 2 * err / n;  // d(mean squared error) / d(prediction)
      model_.grads().data()[0] += loss_scale * d;
      b->grads[0][b->slot[i]] += sparse_scale * loss_scale * d;
    }
    return Status::Ok();
  }
  Status EvaluateShard(const RowPuller& pull, int worker, int workers,
                       std::string* partial) override {
    ToyBatch b;
    for (uint64_t id = 1; id <= kIds; ++id) {
      if (id % workers == static_cast<uint64_t>(worker)) b.ids.push_back(id);
    }
    Index(0, &b);
    ATTNPS_RETURN_IF_ERROR(pull(&b));
    double sums[2] = {0, static_cast<double>(b.ids.size())};  // squared error, count
    for (size_t i = 0; i < b.ids.size(); ++i) {
      const double err = b.rows[0][b.slot[i]] + model_.params().data()[0] - Target(b.ids[i]);
      sums[0] += err * err;
    }
    partial->assign(reinterpret_cast<const char*>(sums), sizeof(sums));
    return Status::Ok();
  }
  Status MergeEvaluation(const std::vector<std::string>& partials,
                         metrics::Record* record) override {
    double se = 0, count = 0;
    for (const std::string& p : partials) {
      double sums[2];
      if (p.size() != sizeof(sums)) return Status::Corruption("toy partial");
      std::memcpy(sums, p.data(), sizeof(sums));
      se += sums[0];
      count += sums[1];
    }
    record->samples = static_cast<int64_t>(count);
    record->extra.push_back({"mse", se / count});
    return Status::Ok();
  }
  std::string MetricsText(const metrics::Record& r, int digits) const override {
    char text[64];
    std::snprintf(text, sizeof(text), " mse=%.*f", digits,
                  r.extra.empty() ? NAN : r.extra[0].second);
    return text;
  }
  Status Predict(const RowPuller&, const std::string&, const std::string&, int64_t*) override {
    return Status::InvalidArgument("the toy task predicts nothing");
  }

 private:
  std::vector<SparseTable> tables_;
  BiasModel model_;
  std::string train_file_;
};

config::JobConfig ToyJob(const std::string& dir) {
  config::JobConfig c = testing_local::Config(dir, "base {}");
  c.mutable_tables(0)->set_dim(1);
  c.mutable_tables(0)->mutable_optimizer()->set_kind(config::SparseOptimizerConfig::ADAGRAD);
  c.mutable_tables(0)->mutable_optimizer()->set_learning_rate(0.1f);
  c.mutable_train()->set_batch_size(20);
  c.mutable_train()->set_epochs(4);
  c.mutable_metrics()->set_out_path(dir + "/metrics.jsonl");
  return c;
}

double Train(const config::JobConfig& c, bool resume, int64_t max_steps) {
  config::JobConfig job = c;
  job.mutable_train()->set_max_steps(max_steps);
  std::unique_ptr<ps::JobRuntime> runtime = testing_local::LocalRuntime(job, 1);
  TrainerOptions options;
  options.resume = resume;
  Trainer trainer(runtime.get(), job, options,
                  std::make_unique<ToyTask>(config::ToPsTables(job)[0].id));
  bool stopped = false;
  Status st = trainer.AgreeToStart(trainer.Init(), &stopped);
  if (st.ok()) st = trainer.Train();
  EXPECT_TRUE(st.ok()) << st.ToString();
  metrics::Record r;
  EXPECT_TRUE(trainer.Evaluate(&r).ok());
  EXPECT_EQ(r.samples, static_cast<int64_t>(kIds));
  EXPECT_TRUE(runtime->Finish().ok());
  return r.extra.empty() ? NAN : r.extra[0].second;
}

TEST(TaskSeamTest, AToyRegressionTaskTrainsCheckpointsResumesAndEvaluatesThroughTheLoop) {
  const std::string dir = testing::TempDir() + "/task_seam";
  fs::remove_all(dir);
  testing_local::WriteData(dir, 10, 1);  // the loop checks that data.train_path can be read
  const config::JobConfig c = ToyJob(dir);
  const double before = Train(c, false, 1);  // one step: rows and bias near their init
  fs::remove_all(dir + "/ckpt");
  const double straight = Train(c, false, 0);
  EXPECT_LT(straight, 0.25 * before) << "the loop did not fit the toy task";
  // Interrupted at step 30 (mid-epoch) and resumed: the same weights as straight through.
  fs::remove_all(dir + "/ckpt");
  Train(c, false, 30);
  const double resumed = Train(c, true, 0);
  EXPECT_EQ(resumed, straight);
  std::string latest;
  ASSERT_TRUE(ReadLatest(dir + "/ckpt", &latest).ok());
  EXPECT_EQ(fs::path(latest).filename(), "step-80");  // 4 epochs of 400 samples, batches of 20
  std::ifstream metrics(dir + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line)) last = line;
  EXPECT_NE(last.find("\"mse\":"), std::string::npos) << last;
}

}  // namespace
}  // namespace attnps::worker
