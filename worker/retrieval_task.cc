#include "worker/retrieval_task.h"

#include <glog/logging.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "ops/loss.h"
#include "ops/random.h"
#include "worker/checkpoint.h"
#include "worker/ctr_batch.h"
#include "worker/data/retrieval_examples.h"
#include "worker/data/retrieval_file.h"
#include "worker/stream_source.h"
#include "worker/topk_index.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;
using Rc = config::RetrievalConfig;

constexpr uint64_t kNegativeStream = 0x4E454731;  // the batch negatives' draws
constexpr uint64_t kDropoutStream = 0x44524F50;   // the model's dropout masks
constexpr int64_t kPullChunk = 65536;             // output rows pulled at once in evaluation

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A model kind without weights (most_popular): the loop still needs a DenseModel.
class NoWeights final : public models::DenseModel {
 public:
  NoWeights() : empty_{Tensor::Zeros({0}), Tensor::Zeros({0}), Tensor::Zeros({0})} {}
  Tensor& params() override { return empty_[0]; }
  Tensor& grads() override { return empty_[1]; }
  Tensor& buffers() override { return empty_[2]; }

 private:
  Tensor empty_[3];
};

NoWeights* EmptyModel() {
  static NoWeights* model = new NoWeights();
  return model;
}

int TableIndex(const config::JobConfig& config, const std::string& name) {
  for (int i = 0; i < config.tables_size(); ++i) {
    if (config.tables(i).name() == name) return i;
  }
  return -1;
}

data::UserSplitOptions Split(const Rc& rc) {
  data::UserSplitOptions o;
  o.valid_fraction = rc.valid_fraction();
  o.test_fraction = rc.test_fraction();
  o.seed = rc.split_seed();
  return o;
}

std::string Hex(uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(v));
  return text;
}

// XXH64 (seed 0) of the file's bytes, read in 1 MiB pieces.
Status HashFile(const std::string& path, uint64_t* hash) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (f == nullptr) return Status::NotFound("data.train_path " + path + ": cannot open");
  std::unique_ptr<XXH64_state_t, XXH_errorcode (*)(XXH64_state_t*)> state(XXH64_createState(),
                                                                          XXH64_freeState);
  XXH64_reset(state.get(), 0);
  std::vector<char> buf(1 << 20);
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0;) {
    XXH64_update(state.get(), buf.data(), n);
  }
  if (std::ferror(f.get())) return Status::IoError("data.train_path " + path + ": read error");
  *hash = XXH64_digest(state.get());
  return Status::Ok();
}

float Dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// rows [keys, dim] of table t gathered at `index` into out [index.size(), dim].
void GatherRows(const std::vector<float>& rows, int dim, const std::vector<int32_t>& index,
                Tensor* out) {
  out->EnsureShape({static_cast<int64_t>(index.size()), dim});
  for (size_t i = 0; i < index.size(); ++i) {
    std::copy_n(rows.data() + static_cast<int64_t>(index[i]) * dim, dim, out->data() + i * dim);
  }
}

// grads [keys, dim] += scale * g [index.size(), dim] at `index`.
void ScatterRows(const Tensor& g, const std::vector<int32_t>& index, float scale, int dim,
                 std::vector<float>* grads) {
  for (size_t i = 0; i < index.size(); ++i) {
    float* dst = grads->data() + static_cast<int64_t>(index[i]) * dim;
    const float* src = g.data() + i * dim;
    for (int j = 0; j < dim; ++j) dst[j] += scale * src[j];
  }
}

}  // namespace

RetrievalTask::RetrievalTask(const config::JobConfig& config)
    : config_(config), rc_(config_.retrieval()) {}

models::DenseModel* RetrievalTask::model() {
  return model_ != nullptr ? static_cast<models::DenseModel*>(model_.get()) : EmptyModel();
}

Status RetrievalTask::Create(const config::JobConfig& config, std::unique_ptr<RetrievalTask>* out) {
  std::unique_ptr<RetrievalTask> t(new RetrievalTask(config));
  const int item = TableIndex(config, config.features().item_table());
  const int output = TableIndex(config, config.retrieval().output_table());
  if (item < 0 || output < 0) {
    return Status::InvalidArgument("features.item_table / retrieval.output_table: no such table");
  }
  t->d_ = config.tables(item).dim();
  t->row_dim_ = config.tables(output).dim();
  t->tables_ = {{static_cast<uint32_t>(item + 1), t->d_}};
  if (output != item) {  // else the input rows are the output rows too (ComiRec's code)
    t->tables_.push_back({static_cast<uint32_t>(output + 1), t->row_dim_});
    t->out_table_ = 1;
  }
  t->seen_.resize(2);
  models::RetrievalModelDims dims;
  dims.item_dim = t->d_;
  dims.max_history = config.data().max_history();
  ATTNPS_RETURN_IF_ERROR(
      models::MakeRetrievalModel(config.model(), dims, config.train().seed(), &t->model_));
  std::vector<ItemCate> items;
  ATTNPS_RETURN_IF_ERROR(
      ReadItemCates(config.data().item_cates_path(), "the retrieval corpus is its items", &items));
  uint64_t max_id = 0;
  for (const ItemCate& ic : items) {
    if (t->cate_.emplace(ic.item, ic.cate).second) t->corpus_.push_back(ic.item);
    max_id = std::max(max_id, ic.item);
  }
  t->item_cate_.assign(max_id + 1, 0);
  for (const auto& [item_id, cate] : t->cate_) t->item_cate_[item_id] = cate;
  ATTNPS_RETURN_IF_ERROR(t->PrepareTrainFile());
  ATTNPS_RETURN_IF_ERROR(t->CountTargets());
  if (config.retrieval().negatives() != Rc::FULL_SOFTMAX) {
    std::vector<uint64_t> ranked;
    if (config.retrieval().negatives() == Rc::LOG_UNIFORM) {
      for (uint64_t id : RankByCount(t->counts_)) {
        if (t->cate_.contains(id)) ranked.push_back(id);
      }
    } else {
      ranked = t->corpus_;
    }
    t->sampler_ = std::make_unique<NegativeSampler>(
        config.retrieval().negatives() == Rc::LOG_UNIFORM ? NegativeDistribution::kLogUniform
                                                          : NegativeDistribution::kUniform,
        std::move(ranked));
  }
  *out = std::move(t);
  return Status::Ok();
}

// The file's name: the sequences' path, then a hash of their bytes and of the settings that cut
// them, so a changed file or setting writes a new one and an existing one is exactly what these
// settings would write.
Status RetrievalTask::PrepareTrainFile() {
  const std::string& sequences = config_.data().train_path();
  data::RetrievalTrainOptions o;
  o.window = config_.data().max_history();
  o.min_history = rc_.min_history();
  o.sequence_windows = model_ != nullptr && model_->predicts_every_position();
  o.split = Split(rc_);
  o.shuffle_seed = config_.train().seed();
  o.max_bad_fraction = config_.data().max_bad_fraction();
  uint64_t content = 0;
  ATTNPS_RETURN_IF_ERROR(HashFile(sequences, &content));
  std::ostringstream settings;
  settings << "v1 " << o.window << ' ' << o.min_history << ' ' << o.sequence_windows << ' '
           << o.split.valid_fraction << ' ' << o.split.test_fraction << ' ' << o.split.seed << ' '
           << o.shuffle_seed << ' ' << o.max_bad_fraction;
  const uint64_t key = XXH64(settings.str().data(), settings.str().size(), content);
  train_file_ = sequences + ".retrieval-" + Hex(key) + ".tsv";
  if (fs::exists(train_file_)) return Status::Ok();
  // Every worker may write it at once: each through its own name, renamed into place complete.
  const std::string part = train_file_ + ".part-" + std::to_string(::getpid());
  data::RetrievalTrainStats stats;
  ATTNPS_RETURN_IF_ERROR(data::WriteRetrievalTrainFile(sequences, o, part, &stats));
  std::error_code ec;
  fs::rename(part, train_file_, ec);
  if (ec) {
    return Status::IoError("retrieval training file " + train_file_ + ": " + ec.message());
  }
  std::printf("[attnps] retrieval: %llu %s of %llu train users (%llu held out) -> %s\n",
              static_cast<unsigned long long>(stats.examples),
              o.sequence_windows ? "windows" : "examples",
              static_cast<unsigned long long>(stats.train_users),
              static_cast<unsigned long long>(stats.held_out_users), train_file_.c_str());
  return Status::Ok();
}

// counts_[item] = the item's count as a training target (popularity ranks, MostPopular).
Status RetrievalTask::CountTargets() {
  data::CtrReaderOptions options;
  options.max_history = config_.data().max_history();
  options.extra_columns = model_ != nullptr && model_->predicts_every_position() ? 2 : 0;
  data::CtrFileReader reader;
  ATTNPS_RETURN_IF_ERROR(reader.Open(train_file_, options));
  counts_.assign(item_cate_.size(), 0);
  auto count = [&](uint64_t item) {
    if (item >= counts_.size()) counts_.resize(item + 1, 0);
    ++counts_[item];
    ++total_targets_;
  };
  data::CtrSample s;
  for (bool eof = false;;) {
    ATTNPS_RETURN_IF_ERROR(reader.Next(&s, &eof));
    if (eof) break;
    if (options.extra_columns == 2) {
      for (uint64_t item : s.extra[0]) count(item);
    } else {
      count(s.item);
    }
  }
  if (total_targets_ == 0) {
    return Status::InvalidArgument("data.train_path " + config_.data().train_path() +
                                   ": no training example (no train user with 2 or more items)");
  }
  return Status::Ok();
}

Status RetrievalTask::OpenTrainSource(int worker_index, int num_workers,
                                      std::unique_ptr<SampleSource>* source) {
  data::CtrReaderOptions options;
  options.worker_index = worker_index;
  options.num_workers = num_workers;
  options.max_history = config_.data().max_history();
  options.max_bad_fraction = config_.data().max_bad_fraction();
  options.extra_columns = model_ != nullptr && model_->predicts_every_position() ? 2 : 0;
  auto stream = std::make_unique<StreamSource<RetrievalBatch>>();
  ATTNPS_RETURN_IF_ERROR(
      stream->Open(train_file_, options, config_.data().shuffle_buffer(), config_.train().seed()));
  *source = std::move(stream);
  return Status::Ok();
}

void RetrievalTask::Index(uint64_t step, TaskBatch* batch) {
  auto* rb = static_cast<RetrievalBatch*>(batch);
  rb->step = step;
  rb->keys.assign(tables_.size(), {});
  rb->lookups = 0;
  if (model_ == nullptr) return;  // nothing to pull
  for (auto& seen : seen_) seen.clear();
  auto slot = [&](int table, uint64_t key) {
    ++rb->lookups;
    auto [it, inserted] = seen_[table].emplace(key, static_cast<int32_t>(rb->keys[table].size()));
    if (inserted) rb->keys[table].push_back(key);
    return it->second;
  };
  const bool every_position = model_->predicts_every_position();
  rb->history_offsets.assign(1, 0);
  for (auto* v : {&rb->hist_index, &rb->pos_index, &rb->query_sample, &rb->neg_index}) v->clear();
  rb->pos_ids.clear();
  rb->neg_ids.clear();
  rb->log_q_pos.clear();
  rb->log_q_neg.clear();
  for (size_t b = 0; b < rb->samples.size(); ++b) {
    const data::CtrSample& s = rb->samples[b];
    for (uint64_t item : s.hist_items) rb->hist_index.push_back(slot(0, item));
    rb->history_offsets.push_back(static_cast<int32_t>(rb->hist_index.size()));
    if (every_position) {
      // The reader keeps the last T history items; the targets line up with them from the end.
      const std::vector<uint64_t>& targets = s.extra[0];
      const size_t len = s.hist_items.size(), skip = targets.size() - std::min(targets.size(), len);
      CHECK_EQ(targets.size() - skip, len) << "a window with fewer targets than positions";
      for (size_t i = skip; i < targets.size(); ++i) {
        rb->pos_ids.push_back(static_cast<int64_t>(targets[i]));
        rb->query_sample.push_back(static_cast<int32_t>(b));
      }
    } else {
      rb->pos_ids.push_back(static_cast<int64_t>(s.item));
      rb->query_sample.push_back(static_cast<int32_t>(b));
    }
  }
  for (int64_t id : rb->pos_ids)
    rb->pos_index.push_back(slot(out_table_, static_cast<uint64_t>(id)));
  const int q = static_cast<int>(rb->pos_ids.size());
  auto add_negative = [&](uint64_t id, float log_q) {
    rb->neg_ids.push_back(static_cast<int64_t>(id));
    rb->neg_index.push_back(slot(out_table_, id));
    rb->log_q_neg.push_back(log_q);
  };
  if (sampler_ == nullptr) {  // full softmax: every item, no correction
    for (uint64_t id : corpus_) add_negative(id, 0.0f);
    rb->log_q_pos.assign(q, 0.0f);
    return;
  }
  const int s = std::min<int64_t>(rc_.num_negatives(), static_cast<int64_t>(corpus_.size()));
  std::vector<uint64_t> ids;
  std::vector<float> log_q;
  sampler_->Draw(StreamKey(config_.train().seed(), kNegativeStream), step, s, &ids, &log_q);
  for (int i = 0; i < s; ++i) add_negative(ids[i], log_q[i]);
  for (int64_t id : rb->pos_ids) {
    rb->log_q_pos.push_back(sampler_->LogExpectedCount(static_cast<uint64_t>(id), s));
  }
  if (rc_.in_batch_negatives()) {  // each distinct positive once, corrected by its frequency
    absl::flat_hash_map<uint64_t, bool> added;
    for (int64_t id : rb->pos_ids) {
      const uint64_t item = static_cast<uint64_t>(id);
      if (!added.emplace(item, true).second) continue;
      const double p = (item < counts_.size() ? counts_[item] : 0) / total_targets_;
      add_negative(item, static_cast<float>(std::log(std::max(1e-12, q * p))));
    }
  }
}

Status RetrievalTask::TrainStep(TaskBatch* batch, float loss_scale, float sparse_scale,
                                double* loss, StepSplit* split) {
  auto* rb = static_cast<RetrievalBatch*>(batch);
  rb->grads.assign(tables_.size(), {});
  *loss = 0;
  if (model_ == nullptr) return Status::Ok();
  const double t0 = Seconds();
  GatherRows(rb->rows[0], d_, rb->hist_index, &inputs_.history);
  inputs_.history_offsets = rb->history_offsets;
  GatherRows(rb->rows[out_table_], row_dim_, rb->pos_index, &pos_);
  GatherRows(rb->rows[out_table_], row_dim_, rb->neg_index, &neg_);
  const int64_t q = static_cast<int64_t>(rb->pos_ids.size());
  const int64_t s = static_cast<int64_t>(rb->neg_ids.size());
  lq_pos_ = Tensor::FromVector({q}, rb->log_q_pos);
  lq_neg_ = Tensor::FromVector({s}, rb->log_q_neg);
  const double t1 = Seconds();
  split->gather = t1 - t0;
  model_->Forward(inputs_, /*training=*/true,
                  StreamKey(config_.train().seed(), kDropoutStream, rb->step), &out_);
  // Each query's user vector: its own position's output, or the interest closest to its target.
  const int64_t k = out_.dim(1);
  const bool every_position = model_->predicts_every_position();
  u_.EnsureShape({q, row_dim_});
  u_.SetZero();
  chosen_.assign(q, 0);
  for (int64_t i = 0; i < q; ++i) {
    const int64_t b = every_position ? i : rb->query_sample[i];
    const float* interests = out_.data() + b * k * d_;
    int best = 0;
    float best_dot = Dot(interests, pos_.data() + i * row_dim_, d_);
    for (int j = 1; j < k; ++j) {
      const float dot = Dot(interests + j * d_, pos_.data() + i * row_dim_, d_);
      if (dot > best_dot) best = j, best_dot = dot;
    }
    chosen_[i] = best;
    std::copy_n(interests + best * d_, d_, u_.data() + i * row_dim_);
    if (row_dim_ > d_) u_.data()[i * row_dim_ + d_] = 1.0f;  // the bias column
  }
  SampledSoftmaxOptions options;
  options.accidental_hits = AccidentalHits::kRemove;
  options.pos_ids = Int64Span(rb->pos_ids);
  options.neg_ids = Int64Span(rb->neg_ids);
  softmax_ws_.probs.EnsureCapacity({q, s + 1});  // reused while it fits
  softmax_ws_.d_logits.EnsureCapacity({q, s + 1});
  *loss = SampledSoftmaxForward(u_, pos_, neg_, lq_pos_, lq_neg_, options, &softmax_ws_);
  if (!std::isfinite(*loss)) return Status::Ok();
  for (auto [t, like] : {std::pair{&du_, &u_}, {&dpos_, &pos_}, {&dneg_, &neg_}}) {
    t->EnsureShape(like->shape());
    t->SetZero();
  }
  SampledSoftmaxBackward(u_, pos_, neg_, lq_pos_, lq_neg_, loss_scale, &softmax_ws_, &du_, &dpos_,
                         &dneg_);
  dout_.EnsureShape(out_.shape());
  dout_.SetZero();
  for (int64_t i = 0; i < q; ++i) {
    const int64_t b = every_position ? i : rb->query_sample[i];
    float* dst = dout_.data() + (b * k + chosen_[i]) * d_;
    const float* src = du_.data() + i * row_dim_;
    for (int j = 0; j < d_; ++j) dst[j] += src[j];
  }
  dhistory_.EnsureShape(inputs_.history.shape());
  dhistory_.SetZero();
  model_->Backward(inputs_, dout_, &dhistory_);
  const double t2 = Seconds();
  for (size_t t = 0; t < tables_.size(); ++t) {
    rb->grads[t].assign(rb->keys[t].size() * tables_[t].dim, 0.0f);
  }
  ScatterRows(dhistory_, rb->hist_index, sparse_scale, d_, &rb->grads[0]);
  ScatterRows(dpos_, rb->pos_index, sparse_scale, row_dim_, &rb->grads[out_table_]);
  ScatterRows(dneg_, rb->neg_index, sparse_scale, row_dim_, &rb->grads[out_table_]);
  split->scatter = Seconds() - t2;
  return Status::Ok();
}

// ---- evaluation ---------------------------------------------------------------------------------

std::vector<int> RetrievalTask::TopK() const {
  if (rc_.topk_size() > 0) return {rc_.topk().begin(), rc_.topk().end()};
  if (rc_.protocol() == Rc::SASREC) return {10};
  return {20, 50};
}

std::vector<uint64_t> RetrievalTask::Popular(int n) const {
  std::vector<uint64_t> ranked;
  for (uint64_t id : RankByCount(counts_)) {
    if (static_cast<int>(ranked.size()) == n) break;
    if (cate_.contains(id)) ranked.push_back(id);
  }
  return ranked;
}

void RetrievalTask::Query(const float* interest, float* query) const {
  std::copy_n(interest, d_, query);
  if (row_dim_ > d_) query[d_] = 1.0f;
}

Status RetrievalTask::Interests(const RowPuller& pull,
                                const std::vector<std::vector<uint64_t>>& histories,
                                Tensor* interests) {
  SparseBatch batch;
  batch.keys.assign(tables_.size(), {});
  absl::flat_hash_map<uint64_t, int32_t> seen;
  models::RetrievalInputs in;
  std::vector<int32_t> index;
  in.history_offsets.assign(1, 0);
  for (const std::vector<uint64_t>& h : histories) {
    for (uint64_t item : h) {
      auto [it, inserted] = seen.emplace(item, static_cast<int32_t>(batch.keys[0].size()));
      if (inserted) batch.keys[0].push_back(item);
      index.push_back(it->second);
    }
    in.history_offsets.push_back(static_cast<int32_t>(index.size()));
  }
  ATTNPS_RETURN_IF_ERROR(pull(&batch));
  GatherRows(batch.rows[0], d_, index, &in.history);
  model_->Forward(in, /*training=*/false, 0, interests);
  return Status::Ok();
}

Status RetrievalTask::SearchInterests(
    const RowPuller& pull, const std::vector<std::vector<uint64_t>>& histories,
    const TopKIndex& index, int n,
    std::vector<std::vector<std::vector<metrics::ScoredItem>>>* out) {
  Tensor interests;
  ATTNPS_RETURN_IF_ERROR(Interests(pull, histories, &interests));
  const int64_t b = interests.dim(0), k = interests.dim(1);
  std::vector<float> query(b * k * row_dim_, 0.0f);
  for (int64_t r = 0; r < b * k; ++r) Query(interests.data() + r * d_, &query[r * row_dim_]);
  std::vector<std::vector<metrics::ScoredItem>> found;
  index.Search(query.data(), b * k, n, &found);
  out->assign(b, {});
  for (int64_t i = 0; i < b; ++i) {
    (*out)[i].assign(std::make_move_iterator(found.begin() + i * k),
                     std::make_move_iterator(found.begin() + (i + 1) * k));
  }
  return Status::Ok();
}

Status RetrievalTask::PullOutputRows(const RowPuller& pull, std::vector<float>* rows) {
  rows->clear();
  rows->reserve(corpus_.size() * row_dim_);
  for (size_t begin = 0; begin < corpus_.size(); begin += kPullChunk) {
    const size_t end = std::min(corpus_.size(), begin + static_cast<size_t>(kPullChunk));
    SparseBatch batch;
    batch.keys.assign(tables_.size(), {});
    batch.keys[out_table_].assign(corpus_.begin() + begin, corpus_.begin() + end);
    ATTNPS_RETURN_IF_ERROR(pull(&batch));
    rows->insert(rows->end(), batch.rows[out_table_].begin(), batch.rows[out_table_].end());
  }
  return Status::Ok();
}

Status RetrievalTask::EvaluateComiRec(const RowPuller& pull,
                                      const std::vector<data::RetrievalSample>& users,
                                      std::vector<metrics::RetrievalSums>* sums) {
  const std::vector<int> topk = TopK();
  const int max_n = *std::max_element(topk.begin(), topk.end());
  std::vector<data::RetrievalExample> queries;
  for (const data::RetrievalSample& s : users) {
    data::RetrievalExample q;
    if (data::ComiRecQuery(s, rc_.history_fraction(), config_.data().max_history(), &q)) {
      queries.push_back(std::move(q));
    }
  }
  auto add = [&](const std::vector<uint64_t>& ranked, const data::RetrievalExample& q) {
    for (size_t i = 0; i < topk.size(); ++i) {
      metrics::AddRankedUser(ranked, q.target_items, topk[i], &(*sums)[i]);
    }
  };
  if (model_ == nullptr) {
    const std::vector<uint64_t> popular = Popular(max_n);
    for (const data::RetrievalExample& q : queries) add(popular, q);
    return Status::Ok();
  }
  std::vector<float> rows;
  ATTNPS_RETURN_IF_ERROR(PullOutputRows(pull, &rows));
  std::unique_ptr<TopKIndex> index;
  ATTNPS_RETURN_IF_ERROR(TopKIndex::Build({}, rows.data(), static_cast<int64_t>(corpus_.size()),
                                          row_dim_, corpus_, &index));
  const size_t chunk = std::max(1, config_.train().eval_batch_size());
  std::vector<std::vector<std::vector<metrics::ScoredItem>>> found;
  for (size_t begin = 0; begin < queries.size(); begin += chunk) {
    const size_t end = std::min(queries.size(), begin + chunk);
    std::vector<std::vector<uint64_t>> histories;
    for (size_t i = begin; i < end; ++i) histories.push_back(queries[i].hist_items);
    ATTNPS_RETURN_IF_ERROR(SearchInterests(pull, histories, *index, max_n, &found));
    for (size_t i = 0; i < found.size(); ++i) {
      const std::vector<std::vector<metrics::ScoredItem>>& per_interest = found[i];
      const std::vector<metrics::ScoredItem> merged =
          rc_.aggregation() == Rc::GREEDY
              ? metrics::GreedyDiverse(per_interest, item_cate_, rc_.diversity_lambda(), max_n)
              : metrics::MergeByScore(per_interest, max_n);
      std::vector<uint64_t> ranked;
      for (const metrics::ScoredItem& s : merged) ranked.push_back(s.item);
      add(ranked, queries[begin + i]);
    }
  }
  return Status::Ok();
}

Status RetrievalTask::EvaluateSasRec(const RowPuller& pull,
                                     const std::vector<data::RetrievalSample>& users,
                                     std::vector<metrics::RetrievalSums>* sums) {
  const std::vector<int> topk = TopK();
  const uint64_t num_items = item_cate_.size() - 1;
  struct Held {
    data::RetrievalExample example;
    std::vector<uint64_t> candidates;
  };
  std::vector<Held> queries;
  for (const data::RetrievalSample& s : users) {
    Held q;
    if (!data::LeaveOneOutQuery(s, config_.data().max_history(), &q.example)) continue;
    data::SampleUnseenItems(s, num_items, rc_.sampled_candidates(), rc_.split_seed(),
                            &q.candidates);
    queries.push_back(std::move(q));
  }
  auto add = [&](float target, const std::vector<float>& candidates) {
    for (size_t i = 0; i < topk.size(); ++i) {
      metrics::AddSampledUser(target, candidates, topk[i], &(*sums)[i]);
    }
  };
  std::vector<float> scores;
  if (model_ == nullptr) {
    auto count = [&](uint64_t item) {
      return static_cast<float>(item < counts_.size() ? counts_[item] : 0);
    };
    for (const Held& q : queries) {
      scores.clear();
      for (uint64_t c : q.candidates) scores.push_back(count(c));
      add(count(q.example.target_items[0]), scores);
    }
    return Status::Ok();
  }
  const size_t chunk = std::max(1, config_.train().eval_batch_size());
  Tensor interests;
  std::vector<float> query(row_dim_);
  for (size_t begin = 0; begin < queries.size(); begin += chunk) {
    const size_t end = std::min(queries.size(), begin + chunk);
    std::vector<std::vector<uint64_t>> histories;
    SparseBatch rows;
    rows.keys.assign(tables_.size(), {});
    absl::flat_hash_map<uint64_t, int32_t> seen;
    auto slot = [&](uint64_t item) {
      auto [it, inserted] = seen.emplace(item, static_cast<int32_t>(rows.keys[out_table_].size()));
      if (inserted) rows.keys[out_table_].push_back(item);
      return it->second;
    };
    for (size_t i = begin; i < end; ++i) {
      histories.push_back(queries[i].example.hist_items);
      slot(queries[i].example.target_items[0]);
      for (uint64_t c : queries[i].candidates) slot(c);
    }
    ATTNPS_RETURN_IF_ERROR(Interests(pull, histories, &interests));
    ATTNPS_RETURN_IF_ERROR(pull(&rows));
    const int64_t k = interests.dim(1);
    // An item's score: its best inner product over the user's interests.
    auto score = [&](int64_t b, uint64_t item) {
      const float* row = rows.rows[out_table_].data() + static_cast<int64_t>(seen[item]) * row_dim_;
      float best = -INFINITY;
      for (int64_t j = 0; j < k; ++j) {
        Query(interests.data() + (b * k + j) * d_, query.data());
        best = std::max(best, Dot(query.data(), row, row_dim_));
      }
      return best;
    };
    for (size_t i = begin; i < end; ++i) {
      const int64_t b = static_cast<int64_t>(i - begin);
      scores.clear();
      for (uint64_t c : queries[i].candidates) scores.push_back(score(b, c));
      add(score(b, queries[i].example.target_items[0]), scores);
    }
  }
  return Status::Ok();
}

Status RetrievalTask::EvaluateShard(const RowPuller& pull, int worker_index, int num_workers,
                                    std::string* partial) {
  const data::UserGroup group =
      rc_.eval_users() == Rc::VALID ? data::UserGroup::kValid : data::UserGroup::kTest;
  const data::UserSplitOptions split = Split(rc_);
  data::RetrievalLineReader reader;
  ATTNPS_RETURN_IF_ERROR(
      reader.Open(config_.data().test_path(), config_.data().max_bad_fraction()));
  std::vector<data::RetrievalSample> users;
  data::RetrievalSample s;
  for (int64_t i = 0;;) {
    bool eof = false;
    ATTNPS_RETURN_IF_ERROR(reader.Next(&s, &eof));
    if (eof) break;
    if (data::GroupOfUser(s.user, split) != group) continue;
    if (i++ % num_workers == worker_index) users.push_back(s);
  }
  std::vector<metrics::RetrievalSums> sums(TopK().size());
  ATTNPS_RETURN_IF_ERROR(rc_.protocol() == Rc::SASREC ? EvaluateSasRec(pull, users, &sums)
                                                      : EvaluateComiRec(pull, users, &sums));
  partial->clear();
  char line[128];
  for (const metrics::RetrievalSums& m : sums) {
    partial->append(line, std::snprintf(line, sizeof(line), "%.17g %.17g %.17g %.17g\n", m.users,
                                        m.recall, m.ndcg, m.hits));
  }
  return Status::Ok();
}

Status RetrievalTask::MergeEvaluation(const std::vector<std::string>& partials,
                                      metrics::Record* record) {
  const std::vector<int> topk = TopK();
  std::vector<metrics::RetrievalSums> sums(topk.size());
  for (size_t w = 0; w < partials.size(); ++w) {
    std::istringstream in(partials[w]);
    for (metrics::RetrievalSums& m : sums) {
      metrics::RetrievalSums part;
      if (!(in >> part.users >> part.recall >> part.ndcg >> part.hits)) {
        return Status::Corruption("evaluation results of worker " + std::to_string(w) +
                                  " do not parse");
      }
      m.Add(part);
    }
  }
  record->samples = static_cast<int64_t>(sums[0].users);
  for (size_t i = 0; i < topk.size(); ++i) {
    const std::string n = std::to_string(topk[i]);
    if (rc_.protocol() == Rc::COMIREC) record->extra.push_back({"recall@" + n, sums[i].Recall()});
    record->extra.push_back({"ndcg@" + n, sums[i].Ndcg()});
    record->extra.push_back({"hr@" + n, sums[i].HitRate()});
  }
  return Status::Ok();
}

std::string RetrievalTask::MetricsText(const metrics::Record& r, int digits) const {
  std::string out;
  char text[64];
  for (const auto& [name, value] : r.extra) {
    if (name.find('@') == std::string::npos) continue;
    std::snprintf(text, sizeof(text), " %s=%.*f", name.c_str(), digits, value);
    out += text;
  }
  return out;
}

// ---- prediction: each history's top-N --------------------------------------------------------

Status RetrievalTask::Predict(const RowPuller& pull, const std::string& in_path,
                              const std::string& out_path, int64_t* rows) {
  const config::RetrievalIndexConfig& ic = rc_.serving_index();
  const int topk = ic.topk();
  std::unique_ptr<TopKIndex> index;
  if (model_ != nullptr) {
    std::vector<float> out_rows;
    ATTNPS_RETURN_IF_ERROR(PullOutputRows(pull, &out_rows));
    TopKIndexOptions options;
    options.kind =
        ic.kind() == config::RetrievalIndexConfig::EXACT
            ? TopKIndexOptions::Kind::kExact
            : (ic.kind() == config::RetrievalIndexConfig::HNSW ? TopKIndexOptions::Kind::kHnsw
                                                               : TopKIndexOptions::Kind::kIvf);
    options.hnsw_m = ic.hnsw_m();
    options.hnsw_ef_search = ic.hnsw_ef_search();
    options.ivf_lists = ic.ivf_lists();
    options.ivf_probe = ic.ivf_probe();
    options.seed = config_.train().seed();
    ATTNPS_RETURN_IF_ERROR(TopKIndex::Build(
        options, out_rows.data(), static_cast<int64_t>(corpus_.size()), row_dim_, corpus_, &index));
  }
  std::vector<metrics::ScoredItem> popular;
  for (uint64_t id : Popular(topk)) {
    popular.push_back({id, static_cast<float>(id < counts_.size() ? counts_[id] : 0)});
  }
  data::RetrievalLineReader reader;
  ATTNPS_RETURN_IF_ERROR(reader.Open(in_path, config_.data().max_bad_fraction()));
  const int window = config_.data().max_history();
  const int chunk = std::max(1, config_.train().eval_batch_size());
  std::string out;
  int64_t scored = 0;
  std::vector<std::vector<std::vector<metrics::ScoredItem>>> found;
  auto write = [&](uint64_t user, const std::vector<metrics::ScoredItem>& items) {
    out += std::to_string(user);
    out += '\t';
    char text[48];
    for (size_t i = 0; i < items.size(); ++i) {
      out.append(text,
                 std::snprintf(text, sizeof(text), "%s%llu:%.6g", i > 0 ? "," : "",
                               static_cast<unsigned long long>(items[i].item), items[i].score));
    }
    out += '\n';
  };
  for (bool eof = false; !eof;) {
    std::vector<data::RetrievalSample> lines;  // user 0 and no items: a malformed line
    std::vector<bool> parsed_lines;
    while (static_cast<int>(lines.size()) < chunk) {
      data::RetrievalSample s;
      bool parsed = false;
      ATTNPS_RETURN_IF_ERROR(reader.NextLine(&s, &parsed, &eof));
      if (eof) break;
      if (parsed && static_cast<int>(s.items.size()) > window) {
        s.items.erase(s.items.begin(), s.items.end() - window);
      }
      lines.push_back(std::move(s));
      parsed_lines.push_back(parsed);
    }
    if (lines.empty()) break;
    if (model_ == nullptr) {
      for (size_t i = 0; i < lines.size(); ++i) {
        if (!parsed_lines[i]) {
          out += '\n';
          continue;
        }
        write(lines[i].user, popular);
        ++scored;
      }
      continue;
    }
    std::vector<std::vector<uint64_t>> histories;
    for (size_t i = 0; i < lines.size(); ++i) {
      histories.push_back(parsed_lines[i] ? lines[i].items : std::vector<uint64_t>());
    }
    ATTNPS_RETURN_IF_ERROR(SearchInterests(pull, histories, *index, topk, &found));
    for (size_t i = 0; i < found.size(); ++i) {
      if (!parsed_lines[i]) {
        out += '\n';
        continue;
      }
      write(lines[i].user, metrics::MergeByScore(found[i], topk));
      ++scored;
    }
  }
  if (reader.bad_lines() > 0) {
    std::printf("[attnps] %s: %llu malformed line(s) written as empty lines\n", in_path.c_str(),
                static_cast<unsigned long long>(reader.bad_lines()));
  }
  if (rows != nullptr) *rows = scored;
  return out_path.empty() ? Status::Ok() : WriteFileAtomically(out_path, out);
}

}  // namespace attnps::worker
