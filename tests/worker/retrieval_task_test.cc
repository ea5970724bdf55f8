// RetrievalTask (worker/retrieval_task.h) on tiny files, outside the training loop: whole-model
// finite-difference checks through TrainStep (the sampled softmax included), the keys Index hands
// the loop, evaluation split across workers that merges exactly, Predict's output file, and the
// config checks of a retrieval job.
#include "worker/retrieval_task.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "tests/ops/gradcheck.h"
#include "worker/config/job_config.h"
#include "worker/data/retrieval_examples.h"

// worker_test links only tests/worker/*.cc (models_test is the one that links the checker):
// compile the shared finite-difference checker into this file.
#include "tests/ops/gradcheck.cc"  // NOLINT(build/include)

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

// ---- files and configs --------------------------------------------------------------------------

constexpr int kItems = 12;  // the corpus: items 1..12
constexpr int kDim = 4;     // the item dim D

uint64_t CateOf(uint64_t item) { return 1 + item % 3; }

std::string FreshDir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "/retrieval_task_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

struct Sequence {
  uint64_t user = 0;
  std::vector<uint64_t> items;
};

// "user \t items \t cates" (cates from CateOf).
std::string RetrievalLine(const Sequence& s) {
  std::string items, cates;
  for (size_t i = 0; i < s.items.size(); ++i) {
    items += (i ? "," : "") + std::to_string(s.items[i]);
    cates += (i ? "," : "") + std::to_string(CateOf(s.items[i]));
  }
  return std::to_string(s.user) + '\t' + items + '\t' + cates + '\n';
}

// <dir>/item_cates.tsv (items 1..12) and <dir>/sequences.tsv (the given sequences).
void WriteData(const std::string& dir, const std::vector<Sequence>& sequences) {
  std::string cates, lines;
  for (uint64_t item = 1; item <= kItems; ++item) {
    cates += std::to_string(item) + '\t' + std::to_string(CateOf(item)) + '\n';
  }
  for (const Sequence& s : sequences) lines += RetrievalLine(s);
  WriteText(dir + "/item_cates.tsv", cates);
  WriteText(dir + "/sequences.tsv", lines);
}

// A dozen users (1..12), each with 4 to 8 items of 1..12 (a fixed pseudo-random pattern).
std::vector<Sequence> DozenUsers() {
  std::mt19937_64 rng(3);
  std::vector<Sequence> out;
  for (uint64_t user = 1; user <= 12; ++user) {
    Sequence s{user, {}};
    const int len = 4 + static_cast<int>(rng() % 5);
    for (int i = 0; i < len; ++i) s.items.push_back(1 + rng() % kItems);
    out.push_back(s);
  }
  return out;
}

// A retrieval job on <dir>'s files: tables "item" (dim 4) and "item_out" (dim out_dim, the default
// retrieval.output_table), `model` (a ModelConfig kind in text format), `retrieval` added to the
// retrieval section.
std::string JobText(const std::string& dir, const std::string& model,
                    const std::string& retrieval = "", int out_dim = kDim) {
  const std::string sequences = "'" + dir + "/sequences.tsv'";
  std::string text;
  // max_bad_fraction 0.5: Predict's input file has one malformed line of four.
  text += "data { train_path: " + sequences + " test_path: " + sequences;
  text += " item_cates_path: '" + dir + "/item_cates.tsv' max_history: 5 max_bad_fraction: 0.5 }\n";
  text += "tables { name: 'item' dim: 4 }\n";
  text += "tables { name: 'item_out' dim: " + std::to_string(out_dim) + " }\n";
  text += "features { item_table: 'item' }\n";
  text += "model { " + model + " }\n";
  text += "retrieval { num_negatives: 4 " + retrieval + " }\n";
  text += "train { batch_size: 3 seed: 1 eval_batch_size: 2 threads: 1 }\n";
  return text;
}

// Parses the text without validating it (the validation tests break it first).
config::JobConfig ParseJob(const std::string& text) {
  config::JobConfig c;
  const Status st = config::ParseJobConfigText(text, "test", &c);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return c;
}

// Validates the job, then creates its task; null (with a test failure) on an error.
std::unique_ptr<RetrievalTask> MakeTask(const config::JobConfig& c) {
  // One thread, as attnps runs train.threads: 1 (launch/attnps_main.cc): OpenMP regions on these
  // tiny shapes would otherwise cost more than the math, thousands of times per gradient check.
  SetNumThreads(1);
  Status st = config::ValidateJobConfig(c);
  std::unique_ptr<RetrievalTask> task;
  if (st.ok()) st = RetrievalTask::Create(c, &task);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return st.ok() ? std::move(task) : nullptr;
}

std::unique_ptr<RetrievalTask> MakeTask(const std::string& text) {
  return MakeTask(ParseJob(text));
}

// The training source of worker 0 of 1, to read batches of `n` from.
std::unique_ptr<SampleSource> TrainSource(RetrievalTask* task) {
  std::unique_ptr<SampleSource> source;
  const Status st = task->OpenTrainSource(0, 1, &source);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return source;
}

std::unique_ptr<RetrievalBatch> ReadBatch(SampleSource* source, int n = 3) {
  std::unique_ptr<TaskBatch> batch;
  bool epoch_end = false;
  const Status st = source->Read(n, &batch, &epoch_end);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return std::unique_ptr<RetrievalBatch>(static_cast<RetrievalBatch*>(batch.release()));
}

// ---- rows: a deterministic function of (table id, key) ------------------------------------------

float HashValue(uint32_t table, uint64_t key, int j) {
  uint64_t x = (static_cast<uint64_t>(table) << 56) ^ (key << 8) ^ static_cast<uint64_t>(j);
  x += 0x9E3779B97F4A7C15ull;  // splitmix64's finalizer
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<float>((x >> 40) * (2.0 / (1ull << 24)) - 1.0);  // [-1, 1)
}

// A RowPuller as the trainer's, but each row filled from HashValue: the same rows for the same
// key whichever worker, batch or call asks.
RowPuller HashPuller(const RetrievalTask& task) {
  const std::vector<SparseTable> tables = task.tables();
  return [tables](SparseBatch* batch) {
    batch->rows.resize(tables.size());
    for (size_t t = 0; t < tables.size(); ++t) {
      const int dim = tables[t].dim;
      batch->rows[t].resize(batch->keys[t].size() * dim);
      for (size_t i = 0; i < batch->keys[t].size(); ++i) {
        for (int j = 0; j < dim; ++j) {
          batch->rows[t][i * dim + j] = HashValue(tables[t].id, batch->keys[t][i], j);
        }
      }
    }
    return Status::Ok();
  };
}

// ---- 1. finite differences of the whole loss through TrainStep ----------------------------------

struct GradCase {
  std::string name;
  std::string model;      // ModelConfig kind, text format
  std::string retrieval;  // added to the retrieval section
  int out_dim = kDim;
  // Of the random rows: the interest picks' gaps must beat the probes, and ReLU kinks stay clear.
  uint64_t seed = 6;
  // ComiRec-DR: only the output rows' gradient is exact (see ComiRecDrOutputRowsUniformInBatch).
  bool output_rows_only = false;
};

// The smallest gap, over the batch's queries, between the dot product of the chosen interest with
// the positive's output row and the next best interest's: ComiRec's pick is piecewise constant,
// and a probe of step 1e-3 must not flip it. +inf with one interest.
double MinInterestGap(RetrievalTask* task, const RetrievalBatch& b) {
  auto* model = dynamic_cast<models::RetrievalModel*>(task->model());
  if (model == nullptr || model->interests() == 1) return INFINITY;
  const size_t out_table = task->tables().size() - 1;  // the input table when shared
  const int dr = task->tables()[out_table].dim;
  models::RetrievalInputs in;
  in.history = Tensor::Zeros({static_cast<int64_t>(b.hist_index.size()), kDim});
  for (size_t i = 0; i < b.hist_index.size(); ++i) {
    std::copy_n(b.rows[0].data() + b.hist_index[i] * kDim, kDim, in.history.data() + i * kDim);
  }
  in.history_offsets = b.history_offsets;
  Tensor out;
  model->Forward(in, /*training=*/false, 0, &out);
  const int64_t k = out.dim(1);
  double gap = INFINITY;
  for (size_t q = 0; q < b.pos_index.size(); ++q) {
    const float* pos = b.rows[out_table].data() + b.pos_index[q] * dr;
    std::vector<double> dots;
    for (int64_t j = 0; j < k; ++j) {
      const float* v = out.data() + (b.query_sample[q] * k + j) * kDim;
      double s = 0;
      for (int c = 0; c < kDim; ++c) s += static_cast<double>(v[c]) * pos[c];
      dots.push_back(s);
    }
    std::sort(dots.rbegin(), dots.rend());
    gap = std::min(gap, dots[0] - dots[1]);
  }
  return gap;
}

// The loss of TrainStep (sparse_scale = loss_scale = 1) as a function of the pulled rows of every
// table and the dense params: its analytic gradients are batch->grads (summed per unique key)
// and model()->grads() (zeroed before each step: they accumulate).
void CheckTrainStepGradients(const GradCase& c) {
  SCOPED_TRACE(c.name);
  const std::string dir = FreshDir("grad_" + c.name);
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task = MakeTask(JobText(dir, c.model, c.retrieval, c.out_dim));
  ASSERT_NE(task, nullptr);
  std::unique_ptr<SampleSource> source = TrainSource(task.get());
  std::unique_ptr<RetrievalBatch> batch = ReadBatch(source.get());
  ASSERT_EQ(batch->num_samples, 3);
  task->Index(1, batch.get());
  const std::vector<SparseTable>& tables = task->tables();
  const size_t n = tables.size(), out_table = n - 1;  // 1 table when the output table is shared
  ASSERT_EQ(batch->keys.size(), n);
  ASSERT_EQ(tables[out_table].dim, c.out_dim);
  std::mt19937 rng(c.seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  batch->rows.resize(n);
  for (size_t t = 0; t < n; ++t) {
    batch->rows[t].resize(batch->keys[t].size() * tables[t].dim);
    for (float& v : batch->rows[t]) v = uniform(rng);
  }
  const double gap = MinInterestGap(task.get(), *batch);
  ASSERT_GT(gap, 0.02) << "the interest pick is too close to flip under a probe: take another seed";

  // Views of the pulled rows (the checker perturbs them in place), then the dense params.
  std::vector<Tensor> rows;
  for (size_t t = 0; t < n; ++t) {
    rows.push_back(Tensor::View(batch->rows[t].data(),
                                {static_cast<int64_t>(batch->keys[t].size()), tables[t].dim}));
  }
  models::DenseModel* model = task->model();
  std::vector<attnps::testing::NamedInput> inputs;
  for (size_t t = 0; t < n; ++t) {
    if (c.output_rows_only && t != out_table) continue;
    inputs.push_back({"rows[" + std::to_string(t) + "]", &rows[t]});
  }
  if (!c.output_rows_only) inputs.push_back({"model params", &model->params()});

  double loss = 0;
  auto step = [&] {
    model->grads().SetZero();
    StepSplit split;
    const Status st = task->TrainStep(batch.get(), 1.0f, 1.0f, &loss, &split);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return loss;
  };
  // The output is the loss minus its unperturbed value, so that the float output keeps the
  // probes' small differences (the loss itself is about log(1 + S)).
  const double base = step();
  ASSERT_TRUE(std::isfinite(base) && base > 0) << base;
  auto forward = [&] {
    return std::vector<Tensor>{Tensor::FromVector({1}, {static_cast<float>(step() - base)})};
  };
  auto backward = [&](const std::vector<Tensor>& dys, std::vector<Tensor>* dxs) {
    const float s = dys[0][0];
    size_t input = 0;
    for (size_t t = 0; t < n; ++t) {
      if (c.output_rows_only && t != out_table) continue;
      const std::vector<float>& g = batch->grads[t];
      for (size_t i = 0; i < g.size(); ++i) (*dxs)[input][i] += s * g[i];
      ++input;
    }
    if (c.output_rows_only) return;
    for (int64_t i = 0; i < model->grads().numel(); ++i) (*dxs)[input][i] += s * model->grads()[i];
  };
  attnps::testing::GradCheckOptions options;
  options.step = 1e-3;
  EXPECT_TRUE(attnps::testing::GradientsMatch(inputs, forward, backward, options));
  // Every gradient is there and finite (the DR history's too, though not checked against FD).
  ASSERT_EQ(batch->grads.size(), n);
  for (size_t t = 0; t < n; ++t) {
    ASSERT_EQ(batch->grads[t].size(), batch->rows[t].size());
    double norm = 0;
    for (float g : batch->grads[t]) norm += static_cast<double>(g) * g;
    EXPECT_TRUE(std::isfinite(norm) && norm > 0) << "table " << t << " gradient norm " << norm;
  }
}

// Mean pooling, a ReLU layer and the Linear to D; log-uniform negatives plus the batch's targets.
TEST(RetrievalTaskGradientTest, YoutubeDnnLogUniformInBatch) {
  CheckTrainStepGradients({"youtube_log_uniform_in_batch", "youtube_dnn { hidden: [5] }",
                           "negatives: LOG_UNIFORM in_batch_negatives: true"});
}

// The output rows' last column is a bias (the query's constant 1 column): dim D + 1.
TEST(RetrievalTaskGradientTest, YoutubeDnnOutputBiasUniform) {
  CheckTrainStepGradients({"youtube_bias_uniform", "youtube_dnn { hidden: [5] }",
                           "negatives: UNIFORM output_bias: true", kDim + 1});
}

// Two interests: the gradient reaches only the interest picked for each query.
TEST(RetrievalTaskGradientTest, ComiRecSaLogUniform) {
  CheckTrainStepGradients({"comirec_sa_log_uniform",
                           "comirec_sa { interests: 2 attention_hidden: 3 }",
                           "negatives: LOG_UNIFORM"});
}

// Every corpus item a negative (the positive removed as an accidental hit), with the bias column.
TEST(RetrievalTaskGradientTest, ComiRecSaFullSoftmaxOutputBias) {
  CheckTrainStepGradients({"comirec_sa_full_bias",
                           "comirec_sa { interests: 2 attention_hidden: 3 }",
                           "negatives: FULL_SOFTMAX output_bias: true", kDim + 1});
}

// ComiRec-DR's routing coefficients are constants for back-propagation (ops/multi_interest.h, as
// ComiRec's code routes on stop_gradient(u_hat)), so the analytic gradient w.r.t. the history
// rows and W is not the derivative of the loss, which finite differences see (the coefficients
// move with them). The output rows do not enter the routing: their gradient is exact, and
// checked.
TEST(RetrievalTaskGradientTest, ComiRecDrOutputRowsUniformInBatch) {
  GradCase c{"comirec_dr_uniform_in_batch", "comirec_dr { interests: 2 routing_iterations: 3 }",
             "negatives: UNIFORM in_batch_negatives: true"};
  c.output_rows_only = true;
  CheckTrainStepGradients(c);
}

// One table for the input and the output rows (retrieval.output_table = features.item_table, as
// ComiRec's code): a row's gradient sums its history and its output roles.
TEST(RetrievalTaskGradientTest, ComiRecSaSharedInputAndOutputTable) {
  GradCase c{"comirec_sa_shared_table", "comirec_sa { interests: 2 attention_hidden: 3 }",
             "output_table: \"item\" negatives: LOG_UNIFORM in_batch_negatives: true"};
  c.seed = 8;  // seed 6 leaves an interest pick within 0.002 of flipping
  CheckTrainStepGradients(c);
}

// The causal encoder predicts at every position (Q = N queries); pre-LayerNorm and a final LN.
TEST(RetrievalTaskGradientTest, SelfAttentionPreNormLogUniformInBatch) {
  CheckTrainStepGradients(
      {"self_attention_pre_norm",
       "self_attention { blocks: 2 heads: 1 ffn_hidden: 6 dropout: 0 pre_norm: true }",
       "negatives: LOG_UNIFORM in_batch_negatives: true"});
}

TEST(RetrievalTaskGradientTest, SelfAttentionPostNormFullSoftmax) {
  CheckTrainStepGradients(
      {"self_attention_post_norm",
       "self_attention { blocks: 1 heads: 1 ffn_hidden: 6 dropout: 0 pre_norm: false }",
       "negatives: FULL_SOFTMAX"});
}

// loss_scale scales every gradient and sparse_scale the row gradients only; neither the loss.
TEST(RetrievalTaskGradientTest, LossAndSparseScalesScaleTheGradients) {
  const std::string dir = FreshDir("scales");
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task =
      MakeTask(JobText(dir, "comirec_sa { interests: 2 attention_hidden: 3 }"));
  ASSERT_NE(task, nullptr);
  std::unique_ptr<SampleSource> source = TrainSource(task.get());
  std::unique_ptr<RetrievalBatch> batch = ReadBatch(source.get());
  task->Index(1, batch.get());
  ASSERT_TRUE(HashPuller(*task)(batch.get()).ok());
  auto run = [&](float loss_scale, float sparse_scale, double* loss) {
    task->model()->grads().SetZero();
    StepSplit split;
    EXPECT_TRUE(task->TrainStep(batch.get(), loss_scale, sparse_scale, loss, &split).ok());
    return std::make_pair(batch->grads, task->model()->grads().ToVector());
  };
  double plain_loss = 0, scaled_loss = 0;
  const auto plain = run(1.0f, 1.0f, &plain_loss);
  const auto scaled = run(2.0f, 0.5f, &scaled_loss);
  EXPECT_EQ(plain_loss, scaled_loss);
  for (size_t t = 0; t < plain.first.size(); ++t) {
    for (size_t i = 0; i < plain.first[t].size(); ++i) {
      EXPECT_NEAR(scaled.first[t][i], plain.first[t][i], 1e-6) << "table " << t << " at " << i;
    }
  }
  for (size_t i = 0; i < plain.second.size(); ++i) {
    EXPECT_NEAR(scaled.second[i], 2 * plain.second[i], 1e-6) << "param " << i;
  }
}

// ---- 2. Index -----------------------------------------------------------------------------------

// Unique keys per table, and every index pointing back at the id it stands for.
void ExpectConsistentKeys(const RetrievalBatch& b) {
  ASSERT_FALSE(b.keys.empty());
  const std::vector<uint64_t>& out_keys = b.keys.back();  // the input table's when shared
  for (size_t t = 0; t < b.keys.size(); ++t) {
    EXPECT_EQ(std::set<uint64_t>(b.keys[t].begin(), b.keys[t].end()).size(), b.keys[t].size())
        << "table " << t << " has a repeated key";
  }
  ASSERT_EQ(b.history_offsets.size(), b.samples.size() + 1);
  for (size_t s = 0; s < b.samples.size(); ++s) {
    const std::vector<uint64_t>& h = b.samples[s].hist_items;
    ASSERT_EQ(b.history_offsets[s + 1] - b.history_offsets[s], static_cast<int32_t>(h.size()));
    for (size_t i = 0; i < h.size(); ++i) {
      EXPECT_EQ(b.keys[0][b.hist_index[b.history_offsets[s] + i]], h[i]);
    }
  }
  ASSERT_EQ(b.pos_index.size(), b.pos_ids.size());
  ASSERT_EQ(b.log_q_pos.size(), b.pos_ids.size());
  for (size_t i = 0; i < b.pos_ids.size(); ++i) {
    EXPECT_EQ(out_keys[b.pos_index[i]], static_cast<uint64_t>(b.pos_ids[i]));
  }
  ASSERT_EQ(b.neg_index.size(), b.neg_ids.size());
  ASSERT_EQ(b.log_q_neg.size(), b.neg_ids.size());
  for (size_t i = 0; i < b.neg_ids.size(); ++i) {
    EXPECT_EQ(out_keys[b.neg_index[i]], static_cast<uint64_t>(b.neg_ids[i]));
  }
}

// Every worker (and a resumed run) must draw the same S negatives for a step: a function of the
// step, not of the batch; another step draws others. In-batch negatives follow, each distinct
// positive once.
TEST(RetrievalTaskIndexTest, NegativesAreSharedByAStepAndKeysAreUnique) {
  const std::string dir = FreshDir("index_shared");
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task =
      MakeTask(JobText(dir, "comirec_sa { interests: 2 attention_hidden: 3 }",
                       "negatives: LOG_UNIFORM in_batch_negatives: true"));
  ASSERT_NE(task, nullptr);
  std::unique_ptr<SampleSource> source = TrainSource(task.get());
  std::unique_ptr<RetrievalBatch> a = ReadBatch(source.get()), b = ReadBatch(source.get()),
                                  c = ReadBatch(source.get());
  ASSERT_EQ(c->num_samples, 3);
  task->Index(7, a.get());
  task->Index(7, b.get());
  task->Index(8, c.get());
  EXPECT_EQ(a->step, 7u);
  for (const RetrievalBatch* batch : {a.get(), b.get(), c.get()}) {
    ExpectConsistentKeys(*batch);
    std::vector<int64_t> distinct;
    for (int64_t id : batch->pos_ids) {
      if (std::find(distinct.begin(), distinct.end(), id) == distinct.end()) distinct.push_back(id);
    }
    ASSERT_EQ(batch->neg_ids.size(), 4 + distinct.size());
    EXPECT_EQ(std::vector<int64_t>(batch->neg_ids.begin() + 4, batch->neg_ids.end()), distinct);
  }
  auto sampled = [](const RetrievalBatch& batch) {
    return std::vector<int64_t>(batch.neg_ids.begin(), batch.neg_ids.begin() + 4);
  };
  EXPECT_EQ(sampled(*a), sampled(*b));
  EXPECT_NE(sampled(*a), sampled(*c));
  EXPECT_EQ(std::vector<float>(a->log_q_neg.begin(), a->log_q_neg.begin() + 4),
            std::vector<float>(b->log_q_neg.begin(), b->log_q_neg.begin() + 4));
}

// Uniform draws are corrected by log(S / N) for every item, the positives included.
TEST(RetrievalTaskIndexTest, UniformNegativesCarryTheLogQCorrection) {
  const std::string dir = FreshDir("index_uniform");
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task =
      MakeTask(JobText(dir, "youtube_dnn {}", "negatives: UNIFORM"));
  ASSERT_NE(task, nullptr);
  std::unique_ptr<SampleSource> source = TrainSource(task.get());
  std::unique_ptr<RetrievalBatch> b = ReadBatch(source.get());
  task->Index(3, b.get());
  ExpectConsistentKeys(*b);
  ASSERT_EQ(b->neg_ids.size(), 4u);
  const float log_q = std::log(4.0f / kItems);
  for (float v : b->log_q_neg) EXPECT_NEAR(v, log_q, 1e-6);
  for (float v : b->log_q_pos) EXPECT_NEAR(v, log_q, 1e-6);
}

// FULL_SOFTMAX: the negatives are the whole corpus, in its file's order, uncorrected.
TEST(RetrievalTaskIndexTest, FullSoftmaxNegativesAreTheCorpus) {
  const std::string dir = FreshDir("index_full");
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task = MakeTask(
      JobText(dir, "self_attention { blocks: 1 heads: 1 dropout: 0 }", "negatives: FULL_SOFTMAX"));
  ASSERT_NE(task, nullptr);
  std::unique_ptr<SampleSource> source = TrainSource(task.get());
  std::unique_ptr<RetrievalBatch> b = ReadBatch(source.get());
  task->Index(2, b.get());
  ExpectConsistentKeys(*b);
  std::vector<int64_t> corpus;
  for (int64_t item = 1; item <= kItems; ++item) corpus.push_back(item);
  EXPECT_EQ(b->neg_ids, corpus);
  EXPECT_EQ(b->keys.back().size(), static_cast<size_t>(kItems));  // the positives are among them
  for (float v : b->log_q_neg) EXPECT_EQ(v, 0.0f);
  for (float v : b->log_q_pos) EXPECT_EQ(v, 0.0f);
  // The encoder: one query per history position.
  EXPECT_EQ(b->pos_ids.size(), b->hist_index.size());
}

// MostPopular trains nothing: no keys to pull or push, loss 0, no weights.
TEST(RetrievalTaskIndexTest, MostPopularHasNoKeysAndNoLoss) {
  const std::string dir = FreshDir("index_popular");
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task = MakeTask(JobText(dir, "most_popular {}"));
  ASSERT_NE(task, nullptr);
  EXPECT_EQ(task->model()->params().numel(), 0);
  std::unique_ptr<SampleSource> source = TrainSource(task.get());
  std::unique_ptr<RetrievalBatch> b = ReadBatch(source.get());
  ASSERT_EQ(b->num_samples, 3);
  task->Index(1, b.get());
  ASSERT_EQ(b->keys.size(), 2u);
  EXPECT_TRUE(b->keys[0].empty());
  EXPECT_TRUE(b->keys[1].empty());
  ASSERT_TRUE(HashPuller(*task)(b.get()).ok());
  double loss = -1;
  StepSplit split;
  ASSERT_TRUE(task->TrainStep(b.get(), 1.0f, 1.0f, &loss, &split).ok());
  EXPECT_EQ(loss, 0.0);
  ASSERT_EQ(b->grads.size(), 2u);
  EXPECT_TRUE(b->grads[0].empty() && b->grads[1].empty());
}

// ---- 3. evaluation split across workers ---------------------------------------------------------

metrics::Record Evaluate(RetrievalTask* task, int workers) {
  const RowPuller pull = HashPuller(*task);
  std::vector<std::string> partials(workers);
  for (int w = 0; w < workers; ++w) {
    const Status st = task->EvaluateShard(pull, w, workers, &partials[w]);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  metrics::Record r;
  const Status st = task->MergeEvaluation(partials, &r);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return r;
}

void ExpectSameRecord(const metrics::Record& a, const metrics::Record& b) {
  EXPECT_EQ(a.samples, b.samples);
  ASSERT_EQ(a.extra.size(), b.extra.size());
  for (size_t i = 0; i < a.extra.size(); ++i) {
    EXPECT_EQ(a.extra[i].first, b.extra[i].first);
    EXPECT_FALSE(std::isnan(a.extra[i].second)) << a.extra[i].first;
    EXPECT_NEAR(a.extra[i].second, b.extra[i].second, 1e-12) << a.extra[i].first;
  }
}

// Half of the dozen users held out for test; `model` and `retrieval` as JobText.
void CheckOneWorkerEqualsThree(const std::string& name, const std::string& model,
                               const std::string& retrieval,
                               const std::vector<std::string>& metric_names) {
  SCOPED_TRACE(name);
  const std::string dir = FreshDir("eval_" + name);
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task =
      MakeTask(JobText(dir, model, "valid_fraction: 0 test_fraction: 0.5 " + retrieval));
  ASSERT_NE(task, nullptr);
  const metrics::Record one = Evaluate(task.get(), 1);
  const metrics::Record three = Evaluate(task.get(), 3);
  EXPECT_GE(one.samples, 3) << "too few held-out users to split across 3 workers";
  std::vector<std::string> names;
  for (const auto& [metric, value] : one.extra) names.push_back(metric);
  EXPECT_EQ(names, metric_names);
  ExpectSameRecord(one, three);
}

// The ComiRec protocol over the full corpus (an exact index of the output rows): every user is
// scored by exactly one worker and the sums add up to the one-worker figures.
TEST(RetrievalTaskEvalTest, ComiRecMergeOnThreeWorkersEqualsOne) {
  CheckOneWorkerEqualsThree("comirec_merge", "comirec_sa { interests: 2 attention_hidden: 3 }",
                            "protocol: COMIREC aggregation: MERGE topk: [2, 5]",
                            {"recall@2", "ndcg@2", "hr@2", "recall@5", "ndcg@5", "hr@5"});
}

TEST(RetrievalTaskEvalTest, ComiRecGreedyOnThreeWorkersEqualsOne) {
  CheckOneWorkerEqualsThree("comirec_greedy", "comirec_dr { interests: 2 }",
                            "protocol: COMIREC aggregation: GREEDY diversity_lambda: 0.5 "
                            "topk: [3]",
                            {"recall@3", "ndcg@3", "hr@3"});
}

// The SASRec protocol: the one held-out item among sampled unseen candidates (no recall).
TEST(RetrievalTaskEvalTest, SasRecOnThreeWorkersEqualsOne) {
  CheckOneWorkerEqualsThree("sasrec", "self_attention { blocks: 1 heads: 1 dropout: 0 }",
                            "protocol: SASREC sampled_candidates: 5 topk: [1, 3]",
                            {"ndcg@1", "hr@1", "ndcg@3", "hr@3"});
}

// The first `n` users (ids from 1 up) that the split puts in `group`.
std::vector<uint64_t> UsersOf(data::UserGroup group, const data::UserSplitOptions& split, int n) {
  std::vector<uint64_t> users;
  for (uint64_t u = 1; static_cast<int>(users.size()) < n; ++u) {
    if (data::GroupOfUser(u, split) == group) users.push_back(u);
  }
  return users;
}

// MostPopular recommends the training targets by count to everyone. Train targets (every item
// after the first): 2 x3, 3 x2, 5 x1, so the top 2 is [2, 3]. Held-out queries (the first
// floor(0.8 len) items in, the rest to predict): X targets {2}, Y {3}, Z {2, 5}.
TEST(RetrievalTaskEvalTest, MostPopularMetricsMatchAHandComputedRanking) {
  const std::string dir = FreshDir("eval_popular");
  data::UserSplitOptions split;
  split.valid_fraction = 0;
  split.test_fraction = 0.5;
  split.seed = 1;
  const std::vector<uint64_t> train = UsersOf(data::UserGroup::kTrain, split, 3);
  const std::vector<uint64_t> test = UsersOf(data::UserGroup::kTest, split, 3);
  WriteData(dir, {{train[0], {1, 2, 3}},
                  {train[1], {1, 2, 3}},
                  {train[2], {4, 2, 5}},
                  {test[0], {7, 8, 9, 10, 2}},
                  {test[1], {6, 7, 8, 9, 3}},
                  {test[2], {1, 4, 6, 7, 8, 9, 10, 11, 2, 5}}});
  std::unique_ptr<RetrievalTask> task = MakeTask(JobText(
      dir, "most_popular {}", "valid_fraction: 0 test_fraction: 0.5 split_seed: 1 topk: [1, 2]"));
  ASSERT_NE(task, nullptr);
  const metrics::Record r = Evaluate(task.get(), 1);
  const double l3 = 1 / std::log2(3.0);  // the gain at rank 1
  const std::vector<std::pair<std::string, double>> want = {
      {"recall@1", (1 + 0 + 0.5) / 3},
      {"ndcg@1", (1 + 0 + 1) / 3.0},  // Z: one hit at rank 0 of an ideal one
      {"hr@1", 2 / 3.0},
      {"recall@2", (1 + 1 + 0.5) / 3},
      {"ndcg@2", (1 + l3 + 1 / (1 + l3)) / 3},
      {"hr@2", 1.0}};
  EXPECT_EQ(r.samples, 3);
  ASSERT_EQ(r.extra.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.extra[i].first, want[i].first);
    EXPECT_NEAR(r.extra[i].second, want[i].second, 1e-12) << want[i].first;
  }
  ExpectSameRecord(r, Evaluate(task.get(), 3));
}

// ---- 4. Predict ---------------------------------------------------------------------------------

// One output line per input line: the malformed one empty, the others "user \t item:score,..."
// with serving_index.topk distinct items by descending score, the top of an exhaustive ranking
// by each item's best inner product over the user's interests (its history cut to max_history).
TEST(RetrievalTaskPredictTest, WritesTopItemsPerLineAndAnEmptyLineForAMalformedOne) {
  const std::string dir = FreshDir("predict");
  WriteData(dir, DozenUsers());
  std::unique_ptr<RetrievalTask> task =
      MakeTask(JobText(dir, "comirec_sa { interests: 2 attention_hidden: 3 }",
                       "serving_index { kind: EXACT topk: 3 }"));
  ASSERT_NE(task, nullptr);
  const std::vector<Sequence> histories = {
      {21, {1, 2, 3}}, {0, {}}, {23, {1, 2, 3, 4, 5, 6, 7}}, {24, {9}}};
  std::string in;
  for (const Sequence& s : histories) {
    in += s.user == 0 ? "22\t4,x,6\t1,1,1\n" : RetrievalLine(s);  // line 2: not a number
  }
  WriteText(dir + "/histories.tsv", in);
  int64_t rows = 0;
  const Status st =
      task->Predict(HashPuller(*task), dir + "/histories.tsv", dir + "/top.tsv", &rows);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(rows, 3);
  std::ifstream out_file(dir + "/top.tsv");
  std::vector<std::string> lines;
  for (std::string line; std::getline(out_file, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), histories.size());
  EXPECT_EQ(lines[1], "");

  auto* model = dynamic_cast<models::RetrievalModel*>(task->model());
  ASSERT_NE(model, nullptr);
  const uint32_t item_table = task->tables().front().id, out_table = task->tables().back().id;
  for (size_t l = 0; l < histories.size(); ++l) {
    if (histories[l].user == 0) continue;
    SCOPED_TRACE("line " + std::to_string(l + 1) + ": " + lines[l]);
    // The reference: the last 5 items' rows, the model's interests, every item scored.
    std::vector<uint64_t> h = histories[l].items;
    if (h.size() > 5) h.erase(h.begin(), h.end() - 5);
    models::RetrievalInputs inputs;
    inputs.history = Tensor::Zeros({static_cast<int64_t>(h.size()), kDim});
    for (size_t i = 0; i < h.size(); ++i) {
      for (int j = 0; j < kDim; ++j) inputs.history[i * kDim + j] = HashValue(item_table, h[i], j);
    }
    inputs.history_offsets = {0, static_cast<int32_t>(h.size())};
    Tensor interests;
    model->Forward(inputs, /*training=*/false, 0, &interests);
    std::vector<std::pair<double, uint64_t>> ranking;
    for (uint64_t item = 1; item <= kItems; ++item) {
      double best = -INFINITY;
      for (int k = 0; k < 2; ++k) {
        double s = 0;
        for (int j = 0; j < kDim; ++j) {
          s += static_cast<double>(interests[k * kDim + j]) * HashValue(out_table, item, j);
        }
        best = std::max(best, s);
      }
      ranking.push_back({-best, item});
    }
    std::sort(ranking.begin(), ranking.end());

    const size_t tab = lines[l].find('\t');
    ASSERT_NE(tab, std::string::npos);
    EXPECT_EQ(lines[l].substr(0, tab), std::to_string(histories[l].user));
    std::istringstream fields(lines[l].substr(tab + 1));
    std::vector<std::pair<uint64_t, double>> got;
    for (std::string field; std::getline(fields, field, ',');) {
      const size_t colon = field.find(':');
      ASSERT_NE(colon, std::string::npos) << field;
      got.push_back({std::stoull(field.substr(0, colon)), std::stod(field.substr(colon + 1))});
    }
    ASSERT_EQ(got.size(), 3u);
    for (size_t i = 0; i < got.size(); ++i) {
      if (i > 0) {
        EXPECT_GE(got[i - 1].second, got[i].second) << "scores not descending";
      }
      EXPECT_EQ(got[i].first, ranking[i].second) << "rank " << i;
      EXPECT_NEAR(got[i].second, -ranking[i].first, 1e-4) << "rank " << i;
    }
  }
}

// ---- 5. config validation -----------------------------------------------------------------------

// The message names the field.
void ExpectRejected(const config::JobConfig& c, const std::string& field_and_problem) {
  const Status st = config::ValidateJobConfig(c);
  EXPECT_FALSE(st.ok()) << "accepted; expected " << field_and_problem;
  EXPECT_NE(st.message().find(field_and_problem), std::string::npos) << st.ToString();
}

TEST(RetrievalTaskConfigTest, RejectsBadRetrievalSettingsNamingTheField) {
  const std::string dir = FreshDir("config");
  const config::JobConfig ok =
      ParseJob(JobText(dir, "comirec_sa { interests: 2 attention_hidden: 3 }"));
  ASSERT_TRUE(config::ValidateJobConfig(ok).ok()) << config::ValidateJobConfig(ok).ToString();
  {  // one table for the input and output rows (ComiRec's code) has no room for a bias column
    config::JobConfig c = ok;
    c.mutable_retrieval()->set_output_table("item");
    EXPECT_TRUE(config::ValidateJobConfig(c).ok()) << config::ValidateJobConfig(c).ToString();
    c.mutable_retrieval()->set_output_bias(true);
    ExpectRejected(c, "retrieval.output_bias: needs an output table of its own");
  }
  {  // no such table
    config::JobConfig c = ok;
    c.mutable_retrieval()->set_output_table("nope");
    ExpectRejected(c, "retrieval.output_table");
  }
  {  // output dim D + 1 without a bias
    config::JobConfig c = ok;
    c.mutable_tables(1)->set_dim(kDim + 1);
    ExpectRejected(c, "retrieval.output_table: \"item_out\" has dim 5; it must be 4");
  }
  {  // a bias column needs dim D + 1
    config::JobConfig c = ok;
    c.mutable_retrieval()->set_output_bias(true);
    ExpectRejected(c, "retrieval.output_table: \"item_out\" has dim 4; it must be 5");
    c.mutable_tables(1)->set_dim(kDim + 1);
    EXPECT_TRUE(config::ValidateJobConfig(c).ok()) << config::ValidateJobConfig(c).ToString();
  }
  {
    config::JobConfig c = ok;
    c.mutable_model()->mutable_comirec_sa()->set_interests(0);
    ExpectRejected(c, "model.comirec_sa.interests");
  }
  {
    config::JobConfig c = ok;
    c.mutable_model()->mutable_self_attention()->set_heads(3);
    ExpectRejected(c, "model.self_attention.heads: 3 does not divide the item dim 4");
  }
  {  // a retrieval section with a CTR model
    config::JobConfig c = ok;
    c.mutable_model()->mutable_din();
    ExpectRejected(c, "retrieval: set, but model selects a CTR kind");
  }
  {
    config::JobConfig c = ok;
    c.mutable_data()->clear_item_cates_path();
    ExpectRejected(c, "data.item_cates_path: must be set");
  }
}

}  // namespace
}  // namespace attnps::worker
