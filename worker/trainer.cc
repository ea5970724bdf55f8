#include "worker/trainer.h"

#include <glog/logging.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "ops/loss.h"
#include "worker/checkpoint.h"
#include "worker/config/job_config.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

DenseOptimizerOptions ToOptimizerOptions(const config::DenseOptimizerConfig& c) {
  DenseOptimizerOptions o;
  o.learning_rate = c.learning_rate();
  switch (c.kind()) {
    case config::DenseOptimizerConfig::SGD:
      o.kind = DenseOptimizerKind::kSgd;
      o.sgd.momentum = c.momentum();
      o.sgd.momentum_kind = c.nesterov() ? MomentumKind::kNesterov : MomentumKind::kClassic;
      o.sgd.weight_decay = c.weight_decay();
      break;
    case config::DenseOptimizerConfig::ADAGRAD:
      o.kind = DenseOptimizerKind::kAdagrad;
      o.adagrad.initial_accumulator_value = c.initial_accumulator();
      o.adagrad.eps = c.epsilon();
      break;
    default:
      o.kind = DenseOptimizerKind::kAdam;
      o.adam.beta1 = c.beta1();
      o.adam.beta2 = c.beta2();
      o.adam.eps = c.epsilon();
      o.adam.weight_decay = c.weight_decay();
      o.adam.weight_decay_kind = c.weight_decay_kind() == config::DenseOptimizerConfig::DECOUPLED
                                     ? WeightDecayKind::kDecoupled
                                     : WeightDecayKind::kL2;
  }
  return o;
}

// Lines of a file (a quick scan), for progress and ETA.
uint64_t CountLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  uint64_t lines = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    lines += std::count(buf.begin(), buf.begin() + in.gcount(), '\n');
  }
  return lines;
}

std::string Duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof(text), "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return text;
}

void ResizeLike(const Tensor& like, Tensor* t) {
  if (like.empty()) {
    *t = Tensor();
  } else if (t->shape() != like.shape()) {
    *t = Tensor::Empty(like.shape());
  }
  if (!t->empty()) t->SetZero();
}

// Fault injection for tests/integration/kill_resume.sh: ATTNPS_CRASH_IN_CHECKPOINT=<step> kills
// the process with SIGKILL after the shards and dense state of that step are written, before the
// manifest.
void MaybeCrashForTest(int64_t step) {
  const char* at = std::getenv("ATTNPS_CRASH_IN_CHECKPOINT");
  if (at != nullptr && std::atoll(at) == step) std::raise(SIGKILL);
}

}  // namespace

// The reader thread: batches of this worker's samples, `capacity` ready ahead.
class Trainer::Reader {
 public:
  struct Item {
    std::vector<data::CtrSample> samples;
    StreamPosition after;  // the stream position after these samples
    bool epoch_end = false;
    Status status;
  };

  Reader(SampleStream* stream, int batch, int capacity)
      : stream_(stream), batch_(batch), capacity_(std::max(1, capacity)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Reader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Item Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty(); });
    Item item = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return item;
  }

 private:
  void Loop() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || static_cast<int>(queue_.size()) < capacity_; });
        if (stop_) return;
      }
      Item item;
      item.status = stream_->Read(batch_, &item.samples, &item.epoch_end);
      item.after = stream_->position();
      const bool failed = !item.status.ok();
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back(std::move(item));
      }
      cv_.notify_all();
      if (failed) return;
    }
  }

  SampleStream* stream_;
  int batch_, capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  std::thread thread_;
};

Trainer::Trainer(ps::JobRuntime* runtime, config::JobConfig config, TrainerOptions options)
    : runtime_(runtime), config_(std::move(config)), options_(std::move(options)) {
  const auto* item = config::FindTable(config_, config_.features().item_table());
  const auto* cate = config::FindTable(config_, config_.features().cate_table());
  const auto* user = config_.features().user_table().empty()
                         ? nullptr
                         : config::FindTable(config_, config_.features().user_table());
  CHECK(item && cate) << "config not validated";
  layout_.item_dim = item->dim();
  layout_.cate_dim = cate->dim();
  layout_.user_dim = user ? user->dim() : 0;
  layout_.max_history = config_.data().max_history();
  const std::vector<ps::TableConfig> ps_tables = config::ToPsTables(config_);
  auto id_of = [&](const std::string& name) {
    for (const auto& t : ps_tables) {
      if (t.name == name) return t.id;
    }
    return 0u;
  };
  tables_.push_back({id_of(item->name()), layout_.item_dim});
  tables_.push_back({id_of(cate->name()), layout_.cate_dim});
  if (user) tables_.push_back({id_of(user->name()), layout_.user_dim});
  if (options_.metrics_out.empty()) options_.metrics_out = config_.metrics().out_path();
}

Trainer::~Trainer() = default;

Status Trainer::Init() {
  models::CtrModelDims dims{layout_.item_dim, layout_.cate_dim, layout_.user_dim,
                            layout_.max_history};
  ATTNPS_RETURN_IF_ERROR(
      models::MakeCtrModel(config_.model(), dims, config_.train().seed(), &model_));
  optimizer_ =
      MakeDenseOptimizer(ToOptimizerOptions(config_.dense_optimizer()), model_->params().numel());
  batcher_ = std::make_unique<CtrBatcher>(layout_);
  pipeline_ =
      std::make_unique<SparsePipeline>(runtime_->client(), tables_, config_.train().staleness());
  return Status::Ok();
}

std::vector<DenseBlock> Trainer::DenseBlocks() {
  std::vector<DenseBlock> blocks = {{"params", model_->params()}, {"buffers", model_->buffers()}};
  for (const OptimizerSlot& s : optimizer_->Slots()) blocks.push_back({"opt/" + s.name, s.tensor});
  return blocks;
}

Status Trainer::FillPipeline(bool* epoch_done) {
  const size_t ahead = static_cast<size_t>(config_.train().staleness()) + 1;
  while (!*epoch_done && pipeline_->submitted() < ahead) {
    Reader::Item item = reader_->Pop();
    ATTNPS_RETURN_IF_ERROR(item.status);
    *epoch_done = item.epoch_end;
    if (item.samples.empty()) {  // the epoch ended on a batch boundary
      if (positions_.empty()) {
        consumed_ = item.after;
      } else {
        positions_.back() = item.after;
      }
      continue;
    }
    auto batch = std::make_unique<CtrBatch>();
    batcher_->Index(std::move(item.samples), step_ + pipeline_->submitted(), batch.get());
    positions_.push_back(item.after);
    pipeline_->Submit(std::move(batch));
  }
  return Status::Ok();
}

Status Trainer::RunStep(std::unique_ptr<CtrBatch> batch, StepResult* result) {
  const float workers = static_cast<float>(runtime_->num_workers());
  batcher_->Gather(*batch, &inputs_);
  model_->Forward(inputs_, /*training=*/true, &logits_);
  BatchLabels(*batch, &labels_);
  result->loss = BceWithLogitsForward(logits_, labels_, Tensor());
  result->samples = batch->batch;
  if (dlogits_.shape() != logits_.shape()) dlogits_ = Tensor::Empty(logits_.shape());
  dlogits_.SetZero();
  // The loss is the mean over all workers' batches: the dense gradients summed by the allreduce
  // are then their average. The sparse push carries this worker's own mean gradient.
  BceWithLogitsBackward(logits_, labels_, Tensor(), 1.0f / workers, &dlogits_);
  ResizeLike(inputs_.target, &input_grads_.target);
  ResizeLike(inputs_.history, &input_grads_.history);
  ResizeLike(inputs_.user, &input_grads_.user);
  model_->Backward(inputs_, dlogits_, &input_grads_);
  batcher_->Scatter(input_grads_, workers, batch.get());
  consumed_ = positions_.front();
  positions_.pop_front();
  samples_seen_ += batch->batch;
  samples_run_ += batch->batch;
  epoch_samples_ += batch->batch;
  return pipeline_->Push(std::move(batch));
}

Status Trainer::DenseUpdate() {
  Tensor& grads = model_->grads();
  ATTNPS_RETURN_IF_ERROR(runtime_->allreduce()->Sum(grads.data(), grads.numel()));
  if (config_.dense_optimizer().clip_global_norm() > 0) {
    ClipByGlobalNorm(&grads, config_.dense_optimizer().clip_global_norm());
  }
  optimizer_->Step(grads, &model_->params());
  return Status::Ok();
}

void Trainer::Progress(double loss, bool force) {
  if (loss_ema_ < 0) loss_ema_ = loss;
  loss_ema_ = 0.98 * loss_ema_ + 0.02 * loss;
  const double now = Now();
  if (!IsChief() || (!force && now - last_progress_ < config_.train().progress_seconds())) return;
  last_progress_ = now;
  const double elapsed = std::max(1e-9, now - start_time_);
  const double rate = static_cast<double>(samples_run_) * runtime_->num_workers() / elapsed;
  const double per_epoch = static_cast<double>(samples_per_epoch_);
  const double done =
      per_epoch > 0 ? std::min(1.0, epoch_samples_ * runtime_->num_workers() / per_epoch) : 0;
  const double remaining = per_epoch * (config_.train().epochs() - epoch_ - done);
  std::printf("[attnps] step %lld  epoch %d  %5.1f%%  %.0f samples/s  loss %.4f  ETA %s\n",
              static_cast<long long>(step_), epoch_ + 1, 100.0 * done, rate, loss_ema_,
              Duration(rate > 0 ? remaining / rate : 0).c_str());
  std::fflush(stdout);
}

Status Trainer::Train() {
  const auto& data = config_.data();
  data::CtrReaderOptions reader_options;
  reader_options.worker_index = runtime_->worker_index();
  reader_options.num_workers = runtime_->num_workers();
  reader_options.max_history = data.max_history();
  reader_options.max_bad_fraction = data.max_bad_fraction();
  SampleStream stream;
  const int64_t block = data.shuffle_buffer() > 0 ? data.shuffle_buffer() : 4096;
  ATTNPS_RETURN_IF_ERROR(stream.Open(data.train_path(), reader_options, block,
                                     data.shuffle_buffer() > 0, config_.train().seed()));
  if (options_.resume) {
    std::string step_dir;
    ATTNPS_RETURN_IF_ERROR(ReadLatest(config_.checkpoint().dir(), &step_dir));
    ATTNPS_RETURN_IF_ERROR(LoadCheckpoint(step_dir, /*with_reader=*/true));
    ATTNPS_RETURN_IF_ERROR(stream.Seek(consumed_));
    if (IsChief())
      std::printf("[attnps] resumed from %s at step %lld\n", step_dir.c_str(),
                  static_cast<long long>(step_));
  }
  if (IsChief()) samples_per_epoch_ = CountLines(data.train_path());  // for progress and ETA
  reader_ =
      std::make_unique<Reader>(&stream, config_.train().batch_size(), data.prefetch_batches());
  start_time_ = last_progress_ = last_checkpoint_time_ = Now();
  const auto& ckpt = config_.checkpoint();
  const int64_t max_steps = config_.train().max_steps();
  bool epoch_done = false;
  Status st;
  while (st.ok() && epoch_ < config_.train().epochs() && (max_steps == 0 || step_ < max_steps)) {
    const double step_start = Now();
    if (!(st = FillPipeline(&epoch_done)).ok()) break;
    const bool want_checkpoint =
        !ckpt.dir().empty() &&
        ((ckpt.every_steps() > 0 && (step_ + 1) % ckpt.every_steps() == 0) ||
         (ckpt.every_minutes() > 0 && Now() - last_checkpoint_time_ > 60 * ckpt.every_minutes()));
    float flags[2] = {pipeline_->submitted() > 0 ? 1.0f : 0.0f, want_checkpoint ? 1.0f : 0.0f};
    if (!(st = runtime_->allreduce()->Sum(flags, 2)).ok()) break;
    if (flags[0] == 0) {  // every worker's epoch is over
      ++epoch_;
      epoch_done = false;
      epoch_samples_ = 0;
      st = EvaluateAndLog("test");
      continue;
    }
    model_->grads().SetZero();
    StepResult result;
    if (pipeline_->submitted() > 0) {
      std::unique_ptr<SparseBatch> next;
      if (!(st = pipeline_->Next(&next)).ok()) break;
      st = RunStep(std::unique_ptr<CtrBatch>(static_cast<CtrBatch*>(next.release())), &result);
      if (!st.ok()) break;
    }
    if (!(st = DenseUpdate()).ok()) break;
    train_seconds_ += Now() - step_start;
    ++step_;
    Progress(result.loss, false);
    if (flags[1] > 0) st = SaveCheckpoint();
    const int64_t every = config_.train().eval_every_steps();
    if (st.ok() && every > 0 && step_ % every == 0) st = EvaluateAndLog("test");
  }
  reader_.reset();
  if (st.ok()) st = pipeline_->Drain();
  if (st.ok()) Progress(loss_ema_ < 0 ? 0 : loss_ema_, true);
  if (st.ok() && IsChief()) {  // all workers' samples over this worker's time in steps
    std::printf("[attnps] trained %llu samples in %.2f s of steps: train_samples_per_s=%.0f\n",
                static_cast<unsigned long long>(samples_run_ * runtime_->num_workers()),
                train_seconds_,
                samples_run_ * runtime_->num_workers() / std::max(1e-9, train_seconds_));
    std::fflush(stdout);
  }
  if (st.ok() && !ckpt.dir().empty() && ckpt.save_at_end()) st = SaveCheckpoint();
  return st;
}

Status Trainer::EvaluateAndLog(const std::string& split) {
  if (!IsChief() || config_.data().test_path().empty()) return Status::Ok();
  const double t0 = Now();
  metrics::CtrResult r;
  ATTNPS_RETURN_IF_ERROR(Evaluate(&r));
  std::printf(
      "[attnps] epoch %d step %lld: %s auc=%.4f gauc=%.4f logloss=%.4f (%lld samples, "
      "%.1f s)\n",
      epoch_, static_cast<long long>(step_), split.c_str(), r.auc, r.gauc, r.logloss,
      static_cast<long long>(r.samples), Now() - t0);
  std::fflush(stdout);
  if (options_.metrics_out.empty()) return Status::Ok();
  metrics::Record record = metrics::MakeRecord(step_, epoch_, split, r, Now() - start_time_);
  record.extra.push_back({"train_loss", loss_ema_});
  const fs::path parent = fs::path(options_.metrics_out).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  return metrics::AppendJsonLine(options_.metrics_out, metrics::MetricsJsonLine(record));
}

Status Trainer::Evaluate(metrics::CtrResult* result) {
  metrics::CtrEvaluator evaluator;
  ATTNPS_RETURN_IF_ERROR(Predict(config_.data().test_path(), "", nullptr, &evaluator));
  *result = evaluator.Compute();
  return Status::Ok();
}

Status Trainer::Predict(const std::string& in_path, const std::string& out_path, int64_t* rows) {
  return Predict(in_path, out_path, rows, nullptr);
}

Status Trainer::Predict(const std::string& in_path, const std::string& out_path, int64_t* rows,
                        metrics::CtrEvaluator* evaluator) {
  data::CtrReaderOptions options;
  options.max_history = config_.data().max_history();
  options.max_bad_fraction = config_.data().max_bad_fraction();
  data::CtrFileReader reader;
  ATTNPS_RETURN_IF_ERROR(reader.Open(in_path, options));
  std::string out;
  CtrBatcher batcher(layout_);
  models::CtrInputs inputs;
  Tensor logits, probs;
  const int batch_size = config_.train().eval_batch_size();
  int64_t total = 0;
  for (bool eof = false; !eof;) {
    std::vector<data::CtrSample> samples;
    data::CtrSample s;
    while (static_cast<int>(samples.size()) < batch_size) {
      ATTNPS_RETURN_IF_ERROR(reader.Next(&s, &eof));
      if (eof) break;
      samples.push_back(std::move(s));
    }
    if (samples.empty()) break;
    CtrBatch batch;
    batcher.Index(std::move(samples), step_, &batch);
    batch.rows.resize(tables_.size());
    ps::PsClient* c = runtime_->client();
    std::vector<ps::PsClient::Handle> pulls;
    for (size_t t = 0; t < tables_.size(); ++t) {  // every table's pull in flight at once
      const int64_t n = static_cast<int64_t>(batch.keys[t].size());
      batch.rows[t].resize(n * tables_[t].dim);
      pulls.push_back(c->Pull(tables_[t].id, batch.keys[t].data(), n, tables_[t].dim, step_,
                              batch.rows[t].data()));
    }
    ATTNPS_RETURN_IF_ERROR(c->WaitAll(pulls));
    batcher.Gather(batch, &inputs);
    model_->Forward(inputs, /*training=*/false, &logits);
    total += batch.batch;
    if (evaluator != nullptr) {
      Tensor labels;
      BatchLabels(batch, &labels);
      std::vector<uint64_t> users(batch.batch);
      for (int b = 0; b < batch.batch; ++b) users[b] = batch.samples[b].user;
      evaluator->Add(labels.data(), logits.data(), users.data(), batch.batch);
    }
    if (!out_path.empty()) {
      if (probs.shape() != logits.shape()) probs = Tensor::Empty(logits.shape());
      SigmoidProbabilities(logits, &probs);
      char line[32];
      for (int b = 0; b < batch.batch; ++b) {
        out.append(line, std::snprintf(line, sizeof(line), "%.6g\n", probs.data()[b]));
      }
    }
  }
  if (rows != nullptr) *rows = total;
  return out_path.empty() ? Status::Ok() : WriteFileAtomically(out_path, out);
}

Status Trainer::SaveCheckpoint() {
  const std::string dir = config_.checkpoint().dir();
  const std::string name = StepDirName(step_);
  const std::string step_dir = dir + "/" + name;
  const double t0 = Now();
  ps::PsClient* client = runtime_->client();
  ATTNPS_RETURN_IF_ERROR(pipeline_->Drain());
  std::string latest;
  if (ReadLatest(dir, &latest).ok() && latest == step_dir) {
    return client->Barrier();  // this step is the latest complete checkpoint already (resumed)
  }
  std::error_code error;
  // A step directory that LATEST does not name is left over from a crash (or an older run).
  if (IsChief()) fs::remove_all(step_dir, error);
  ATTNPS_RETURN_IF_ERROR(client->Barrier());  // every worker's pushes are in; stale files gone
  fs::create_directories(step_dir, error);
  if (error) return Status::IoError("cannot create " + step_dir + ": " + error.message());
  const std::string pos_file = "worker-" + std::to_string(runtime_->worker_index()) + ".pos";
  ATTNPS_RETURN_IF_ERROR(WritePosition(step_dir + "/" + pos_file, consumed_));
  if (IsChief()) {
    ATTNPS_RETURN_IF_ERROR(client->Save(step_dir, static_cast<uint64_t>(step_)));
    ATTNPS_RETURN_IF_ERROR(
        WriteDense(step_dir + "/dense.bin", DenseBlocks(), optimizer_->step_count()));
  }
  ATTNPS_RETURN_IF_ERROR(client->Barrier());  // every worker's files are written
  MaybeCrashForTest(step_);
  if (IsChief()) {
    config::CheckpointManifest manifest;
    manifest.set_step(step_);
    manifest.set_epoch(epoch_);
    manifest.set_samples_seen(samples_seen_);
    manifest.set_num_servers(runtime_->roles().servers);
    manifest.set_shard_threads(config_.ps().shard_threads());
    manifest.set_config_text(config::ToText(config_));
    manifest.set_dense_blob_path("dense.bin");
    std::vector<std::string> files = {"dense.bin"};
    for (int w = 0; w < runtime_->num_workers(); ++w) {
      files.push_back("worker-" + std::to_string(w) + ".pos");
      manifest.add_reader_positions()->set_worker(w);
    }
    ATTNPS_RETURN_IF_ERROR(WriteManifest(step_dir, files, manifest));
    ATTNPS_RETURN_IF_ERROR(PublishLatest(dir, name));
    ATTNPS_RETURN_IF_ERROR(PruneCheckpoints(dir, config_.checkpoint().keep_last()));
    std::printf("[attnps] checkpoint %s written in %.2f s\n", step_dir.c_str(), Now() - t0);
    std::fflush(stdout);
  }
  last_checkpoint_time_ = Now();
  return Status::Ok();
}

Status Trainer::LoadCheckpoint(const std::string& step_dir, bool with_reader) {
  config::CheckpointManifest manifest;
  ATTNPS_RETURN_IF_ERROR(ReadManifest(step_dir, &manifest));
  if (with_reader && manifest.reader_positions_size() != runtime_->num_workers()) {
    return Status::InvalidArgument(
        step_dir + " was written by " + std::to_string(manifest.reader_positions_size()) +
        " workers; resume it with the same number of workers (servers may differ)");
  }
  if (IsChief()) ATTNPS_RETURN_IF_ERROR(runtime_->client()->Load(step_dir));
  int64_t optimizer_steps = 0;
  ATTNPS_RETURN_IF_ERROR(ReadDense(step_dir + "/dense.bin", DenseBlocks(), &optimizer_steps));
  optimizer_->set_step_count(optimizer_steps);
  step_ = manifest.step();
  epoch_ = manifest.epoch();
  samples_seen_ = manifest.samples_seen();
  if (with_reader) {
    const std::string pos =
        step_dir + "/worker-" + std::to_string(runtime_->worker_index()) + ".pos";
    ATTNPS_RETURN_IF_ERROR(ReadPosition(pos, &consumed_));
  }
  return runtime_->client()->Barrier();  // the tables are loaded before anyone pulls
}

Status Trainer::LoadForInference() {
  std::string step_dir = options_.checkpoint_step;
  if (step_dir.empty()) ATTNPS_RETURN_IF_ERROR(ReadLatest(config_.checkpoint().dir(), &step_dir));
  return LoadCheckpoint(step_dir, /*with_reader=*/false);
}

}  // namespace attnps::worker
