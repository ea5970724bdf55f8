#include "worker/trainer.h"

#include <glog/logging.h>

#include <cerrno>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "worker/checkpoint.h"
#include "worker/config/job_config.h"
#include "worker/ctr_task.h"
#include "worker/device.h"
#include "worker/retrieval_task.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A metrics record as TensorBoard scalars: the evaluation's under "<split>/", the training
// fields (record.extra from first_train_field on) under "train/".
std::vector<std::pair<std::string, double>> TensorBoardScalars(const metrics::Record& r,
                                                               size_t first_train_field) {
  const std::string eval = r.split + "/";
  std::vector<std::pair<std::string, double>> scalars = {
      {eval + "auc", r.auc},         {eval + "gauc", r.gauc},
      {eval + "logloss", r.logloss}, {eval + "samples", static_cast<double>(r.samples)},
      {"train/time_s", r.time_s},    {"train/epoch", static_cast<double>(r.epoch)}};
  for (size_t i = 0; i < r.extra.size(); ++i) {
    scalars.emplace_back((i < first_train_field ? eval : "train/") + r.extra[i].first,
                         r.extra[i].second);
  }
  return scalars;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t FileSize(const std::string& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  return error ? -1 : static_cast<int64_t>(size);
}

// A regular file this process can open for reading; errors name the setting and the path.
Status CheckReadable(const std::string& field, const std::string& path) {
  if (path.empty()) return Status::InvalidArgument(field + ": must be set");
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) return Status::NotFound(field + ": " + path + ": no such file");
  if (!fs::is_regular_file(status)) {
    return Status::InvalidArgument(field + ": " + path + ": not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::IoError(field + ": " + path + ": cannot be read: " + std::strerror(errno));
  return Status::Ok();
}

// The file can be created or appended to (its directory is created if needed); a probe file is
// written and removed when the file does not exist yet.
Status CheckWritable(const std::string& field, const std::string& path, bool append) {
  std::error_code error;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, error);
  if (error) {
    return Status::IoError(field + ": cannot create the directory of " + path + ": " +
                           error.message());
  }
  if (fs::is_directory(path, error)) {
    return Status::InvalidArgument(field + ": " + path + " is a directory");
  }
  const bool existed = fs::exists(path, error);
  const std::string probe = existed && append ? path : path + ".tmp";
  {
    std::ofstream out(probe, std::ios::binary | std::ios::app);
    if (!out) {
      return Status::IoError(field + ": " + path + " cannot be written: " + std::strerror(errno));
    }
  }
  if (probe != path) fs::remove(probe, error);
  return Status::Ok();
}

std::string Num(double v) {
  if (std::isnan(v)) return "nan";
  char text[32];
  std::snprintf(text, sizeof(text), "%g", v);
  return text;
}

// On the hot path (every step's gradients): an OR of compares vectorizes, a float sum cannot.
bool AllFinite(const float* p, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; ++i) bad |= !(std::fabs(p[i]) <= FLT_MAX);  // NaN: false
  return bad == 0;
}

bool AllFinite(const Tensor& t) { return AllFinite(t.data(), static_cast<size_t>(t.numel())); }

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

// Fault injection for tests/integration/kill_resume.sh: ATTNPS_CRASH_IN_CHECKPOINT=<step> kills
// the process with SIGKILL after the shards and dense state of that step are written, before the
// manifest.
void MaybeCrashForTest(int64_t step) {
  const char* at = std::getenv("ATTNPS_CRASH_IN_CHECKPOINT");
  if (at != nullptr && std::atoll(at) == step) std::raise(SIGKILL);
}

// Bytes that every key of `batch` moves: keys out and rows back for its pull, keys and gradients
// for its push.
uint64_t TrafficBytes(const SparseBatch& batch, const std::vector<SparseTable>& tables) {
  uint64_t bytes = 0;
  for (size_t t = 0; t < tables.size(); ++t) {
    bytes += batch.keys[t].size() * (sizeof(uint64_t) + sizeof(float) * tables[t].dim);
  }
  return bytes;
}

// The task of a job: the one place where the config chooses it.
Status MakeTask(const config::JobConfig& config, std::unique_ptr<Task>* task) {
  if (models::IsRetrievalModel(config.model())) {
    std::unique_ptr<RetrievalTask> retrieval;
    ATTNPS_RETURN_IF_ERROR(RetrievalTask::Create(config, &retrieval));
    *task = std::move(retrieval);
    return Status::Ok();
  }
  std::unique_ptr<CtrTask> ctr;
  ATTNPS_RETURN_IF_ERROR(CtrTask::Create(config, &ctr));
  *task = std::move(ctr);
  return Status::Ok();
}

}  // namespace

// The reader thread: batches of this worker's samples, `capacity` ready ahead.
class Trainer::Reader {
 public:
  struct Item {
    std::unique_ptr<TaskBatch> batch;
    StreamPosition after;  // the stream position after these samples
    bool epoch_end = false;
    Status status;
  };

  Reader(SampleSource* source, int batch, int capacity)
      : source_(source), batch_(batch), capacity_(std::max(1, capacity)) {
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
      item.status = source_->Read(batch_, &item.batch, &item.epoch_end);
      item.after = source_->position();
      const bool failed = !item.status.ok();
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back(std::move(item));
      }
      cv_.notify_all();
      if (failed) return;
    }
  }

  SampleSource* source_;
  int batch_, capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  std::thread thread_;
};

Trainer::Trainer(ps::JobRuntime* runtime, config::JobConfig config, TrainerOptions options)
    : Trainer(runtime, std::move(config), std::move(options), nullptr) {
  task_status_ = MakeTask(config_, &task_);  // reported by Init
}

Trainer::Trainer(ps::JobRuntime* runtime, config::JobConfig config, TrainerOptions options,
                 std::unique_ptr<Task> task)
    : runtime_(runtime),
      config_(std::move(config)),
      opts_(config::ToTrainLoopOptions(config_)),
      options_(std::move(options)),
      task_(std::move(task)) {
  if (options_.metrics_out.empty()) options_.metrics_out = opts_.metrics_out;
}

Trainer::~Trainer() = default;

Status Trainer::Init() {
  ATTNPS_RETURN_IF_ERROR(WorkerDevice::Create(opts_.device, &device_));
  ATTNPS_RETURN_IF_ERROR(task_status_);
  optimizer_ = device_->MakeOptimizer(config::ToDenseOptimizerOptions(config_.dense_optimizer()),
                                      model()->params().numel());
  pipeline_ =
      std::make_unique<SparsePipeline>(runtime_->client(), task_->tables(), opts_.staleness);
  ATTNPS_RETURN_IF_ERROR(CheckPaths());
  if (options_.kind == JobKind::kTrain && IsChief() && !opts_.checkpoint_dir.empty()) {
    ATTNPS_RETURN_IF_ERROR(DirectoryLock::Acquire(opts_.checkpoint_dir, &lock_));
  }
  if (options_.kind != JobKind::kTrain || options_.resume) {
    ATTNPS_RETURN_IF_ERROR(VerifyCheckpointToLoad());
  }
  if (options_.kind == JobKind::kTrain) ATTNPS_RETURN_IF_ERROR(CheckCheckpointDir());
  return Status::Ok();
}

Status Trainer::AgreeToStart(const Status& init, bool* stopped_together) {
  // Each worker's [failed, step it would load (-1: none)]; worker 0's step is the one loaded.
  struct Start {
    int64_t failed, step;
  } mine{init.ok() ? 0 : 1, load_dir_.empty() ? -1 : load_manifest_.step()};
  std::vector<std::string> all;
  *stopped_together = true;
  ATTNPS_RETURN_IF_ERROR(runtime_->allreduce()->AllGather(
      std::string(reinterpret_cast<const char*>(&mine), sizeof(mine)), &all));
  std::vector<Start> starts(all.size());
  for (size_t w = 0; w < all.size(); ++w) {
    CHECK_EQ(all[w].size(), sizeof(Start)) << "worker " << w << " sent another start record";
    std::memcpy(&starts[w], all[w].data(), sizeof(Start));
  }
  if (!init.ok()) return init;
  for (const Start& s : starts) {
    if (s.failed) {
      return Status::Unavailable("stopping: another worker failed its start checks (see above)");
    }
  }
  *stopped_together = false;
  const int64_t chief_step = starts[0].step;
  if (load_dir_.empty() || chief_step == load_manifest_.step()) return Status::Ok();
  // LATEST moved between this worker's read and worker 0's (under the lock): take worker 0's.
  load_dir_ = (fs::path(load_dir_).parent_path() / StepDirName(chief_step)).string();
  ATTNPS_RETURN_IF_ERROR(ReadManifest(load_dir_, &load_manifest_));
  return options_.kind == JobKind::kTrain ? ReadReaderPosition() : Status::Ok();
}

// The reader's order within an epoch depends on the file, data.shuffle_buffer and train.seed:
// a resume must read the rest of the epoch with the checkpoint's.
Status Trainer::CheckReaderSettings(const config::JobConfig& saved) const {
  std::string changed;
  if (saved.data().shuffle_buffer() != config_.data().shuffle_buffer()) {
    changed += "data.shuffle_buffer: " + std::to_string(saved.data().shuffle_buffer()) +
               " in the checkpoint, " + std::to_string(config_.data().shuffle_buffer()) + " now";
  }
  if (saved.train().seed() != config_.train().seed()) {
    changed += std::string(changed.empty() ? "" : "; ") +
               "train.seed: " + std::to_string(saved.train().seed()) + " in the checkpoint, " +
               std::to_string(config_.train().seed()) + " now";
  }
  if (changed.empty()) return Status::Ok();
  return Status::InvalidArgument(load_dir_ +
                                 ": a resume continues the epoch in the checkpoint's "
                                 "sample order, which these settings define: " +
                                 changed);
}

// After the workers agreed to start (worker 0): deletes the checkpoints that --overwrite
// replaces; a resume from a step older than LATEST points LATEST at it, so that the newer steps
// (another timeline) are never mixed with this run's and are replaced as training reaches them.
Status Trainer::TakeOverCheckpointDir() {
  const std::string& dir = opts_.checkpoint_dir;
  if (!IsChief() || dir.empty()) return Status::Ok();
  std::string what;
  if (options_.overwrite && HoldsCheckpoints(dir, &what)) {
    std::printf("[attnps] --overwrite: deleting the checkpoints in %s (%s)\n", dir.c_str(),
                what.c_str());
    ATTNPS_RETURN_IF_ERROR(RemoveCheckpoints(dir));
  }
  std::string latest;
  if (!options_.resume || !ReadLatest(dir, &latest).ok()) return Status::Ok();
  const std::string loaded = fs::path(load_dir_).filename().string();
  if (loaded == fs::path(latest).filename().string()) return Status::Ok();
  std::printf(
      "[attnps] resuming from %s, older than LATEST (%s): LATEST now names %s; the newer "
      "steps are replaced as training reaches them\n",
      load_dir_.c_str(), fs::path(latest).filename().c_str(), loaded.c_str());
  return PublishLatest(dir, loaded);
}

Status Trainer::CheckPaths() {
  const config::TrainLoopOptions& data = opts_;
  if (options_.kind == JobKind::kTrain) {
    ATTNPS_RETURN_IF_ERROR(CheckReadable("data.train_path", data.train_path));
    if (FileSize(data.train_path) == 0) {
      return Status::InvalidArgument("data.train_path: " + data.train_path +
                                     " is empty: no samples to train on");
    }
  }
  if (!data.test_path.empty() || options_.kind == JobKind::kEval) {  // every worker scores
    ATTNPS_RETURN_IF_ERROR(CheckReadable("data.test_path", data.test_path));
  }
  if (!IsChief()) return Status::Ok();  // worker 0 predicts and writes
  if (!data.item_cates_path.empty()) {
    ATTNPS_RETURN_IF_ERROR(CheckReadable("data.item_cates_path", data.item_cates_path));
  }
  if (options_.kind == JobKind::kPredict) {
    ATTNPS_RETURN_IF_ERROR(CheckReadable("--input", options_.predict_input));
    ATTNPS_RETURN_IF_ERROR(CheckWritable("--output", options_.predict_output, /*append=*/false));
  }
  if (options_.kind == JobKind::kTrain && !options_.metrics_out.empty()) {
    ATTNPS_RETURN_IF_ERROR(CheckWritable("metrics.out_path", options_.metrics_out, true));
  }
  if (options_.kind == JobKind::kTrain && !options_.tensorboard_dir.empty()) {
    ATTNPS_RETURN_IF_ERROR(metrics::TensorBoardWriter::Open(options_.tensorboard_dir, &tensorboard_)
                               .WithContext("--tensorboard_dir"));
  }
  return Status::Ok();
}

// Train: a run refuses a checkpoint.dir that holds another run's checkpoints: a new run (unless
// --overwrite), or a resume from a step directory outside checkpoint.dir.
Status Trainer::CheckCheckpointDir() {
  const std::string& dir = opts_.checkpoint_dir;
  if (dir.empty() || !IsChief()) return Status::Ok();
  std::error_code error;
  const bool inside =
      options_.resume && fs::weakly_canonical(fs::path(load_dir_).parent_path(), error) ==
                             fs::weakly_canonical(dir, error);
  std::string what;
  if (inside || options_.overwrite || !HoldsCheckpoints(dir, &what)) return Status::Ok();
  if (options_.resume) {
    return Status::InvalidArgument("checkpoint.dir " + dir + " already holds checkpoints (" + what +
                                   ") of another run than " + load_dir_ +
                                   ": resume into an empty checkpoint.dir");
  }
  return Status::InvalidArgument(
      "checkpoint.dir " + dir + " already holds checkpoints (" + what +
      "): pass --resume to continue that run, choose a new checkpoint.dir, or pass "
      "--overwrite to delete them");
}

// Finds the step directory to load and verifies it before anything is loaded: worker 0 every file,
// the others the manifest; every worker compares the checkpoint's config with this job's.
Status Trainer::VerifyCheckpointToLoad() {
  load_dir_ = options_.checkpoint_step;
  while (load_dir_.size() > 1 && load_dir_.back() == '/') load_dir_.pop_back();
  if (load_dir_.empty()) {
    if (opts_.checkpoint_dir.empty()) {
      return Status::InvalidArgument(
          "checkpoint.dir: must be set to load a checkpoint (or pass --checkpoint=STEP_DIR)");
    }
    ATTNPS_RETURN_IF_ERROR(ReadLatest(opts_.checkpoint_dir, &load_dir_));
  }
  ATTNPS_RETURN_IF_ERROR(IsChief() ? VerifyCheckpoint(load_dir_, &load_manifest_)
                                   : ReadManifest(load_dir_, &load_manifest_));
  const int written_by = load_manifest_.reader_positions_size();
  if (IsChief() && options_.kind == JobKind::kTrain && written_by != runtime_->num_workers()) {
    std::printf(
        "[attnps] %s was written by %d worker(s); %d now: the rest of epoch %d is read "
        "from the old workers' streams, then each worker reads its own share\n",
        load_dir_.c_str(), written_by, runtime_->num_workers(), load_manifest_.epoch() + 1);
  }
  config::JobConfig saved;
  ATTNPS_RETURN_IF_ERROR(
      config::ParseJobConfigText(load_manifest_.config_text(), load_dir_ + "/MANIFEST", &saved));
  std::vector<std::string> changed;
  ATTNPS_RETURN_IF_ERROR(config::CompareStateConfig(saved, config_, &changed)
                             .WithContext(load_dir_ +
                                          " was written with another model or "
                                          "tables; use the config it was trained with"));
  if (options_.kind == JobKind::kTrain) {
    ATTNPS_RETURN_IF_ERROR(CheckReaderSettings(saved));
    ATTNPS_RETURN_IF_ERROR(ReadReaderPosition());
  }
  if (load_manifest_.num_servers() != runtime_->roles().servers) {
    changed.push_back("servers: " + std::to_string(load_manifest_.num_servers()) + " -> " +
                      std::to_string(runtime_->roles().servers) + " (rows re-sharded)");
  }
  if (IsChief() && !changed.empty()) {
    std::string list;
    for (const std::string& c : changed) list += (list.empty() ? "" : "; ") + c;
    std::printf("[attnps] %s: settings changed since the checkpoint: %s\n", load_dir_.c_str(),
                list.c_str());
  }
  return Status::Ok();
}

std::vector<DenseBlock> Trainer::DenseBlocks() {
  std::vector<DenseBlock> blocks = {{"params", model()->params()}, {"buffers", model()->buffers()}};
  for (const OptimizerSlot& s : optimizer_->Slots()) blocks.push_back({"opt/" + s.name, s.tensor});
  return blocks;
}

Status Trainer::FillPipeline(bool* epoch_done) {
  const size_t ahead = static_cast<size_t>(opts_.staleness) + 1;
  while (!*epoch_done && pipeline_->submitted() < ahead) {
    Reader::Item item = reader_->Pop();
    ATTNPS_RETURN_IF_ERROR(item.status);
    *epoch_done = item.epoch_end;
    if (item.batch->num_samples == 0) {  // the epoch ended on a batch boundary
      if (positions_.empty()) {
        consumed_ = item.after;
      } else {
        positions_.back() = item.after;
      }
      continue;
    }
    task_->Index(step_ + pipeline_->submitted(), item.batch.get());
    positions_.push_back(item.after);
    pipeline_->Submit(std::move(item.batch));
  }
  return Status::Ok();
}

Status Trainer::RunStep(TaskBatch* batch, StepResult* result) {
  const float workers = static_cast<float>(runtime_->num_workers());
  ATTNPS_RETURN_IF_ERROR(
      task_->TrainStep(batch, 1.0f / workers, workers, &result->loss, &result->split));
  result->samples = batch->num_samples;
  if (!std::isfinite(result->loss)) return Diverged("the training loss is " + Num(result->loss));
  for (const std::vector<float>& grads : batch->grads) {
    if (!AllFinite(grads.data(), grads.size())) {
      return Diverged("the embedding gradients are not finite");
    }
  }
  consumed_ = positions_.front();
  positions_.pop_front();
  samples_seen_ += batch->num_samples;
  samples_run_ += batch->num_samples;
  epoch_samples_ += batch->num_samples;
  return Status::Ok();
}

Status Trainer::PushStep(std::unique_ptr<SparseBatch> batch) {
  const uint64_t bytes = TrafficBytes(*batch, task_->tables());
  uint64_t unique = 0;
  for (const auto& keys : batch->keys) unique += keys.size();
  for (StepTimings* timings : {&progress_timings_, &record_timings_}) {
    timings->AddBytes(bytes, bytes);
    if (batch->lookups > 0) timings->AddKeys(unique, batch->lookups);
  }
  device_->GradsToHost(batch.get());
  return pipeline_->Push(std::move(batch));
}

Status Trainer::PullRows(SparseBatch* batch) {
  const std::vector<SparseTable>& tables = task_->tables();
  batch->rows.resize(tables.size());
  ps::PsClient* c = runtime_->client();
  std::vector<ps::PsClient::Handle> pulls;
  for (size_t t = 0; t < tables.size(); ++t) {  // every table's pull in flight at once
    const int64_t n = static_cast<int64_t>(batch->keys[t].size());
    batch->rows[t].resize(n * tables[t].dim);
    pulls.push_back(c->Pull(tables[t].id, batch->keys[t].data(), n, tables[t].dim, step_,
                            batch->rows[t].data()));
  }
  ATTNPS_RETURN_IF_ERROR(c->WaitAll(pulls));
  device_->RowsToDevice(batch);
  return Status::Ok();
}

void Trainer::TimeStep(const StepSplit& split, double* mark) {
  const double now = Now();
  const double compute = std::max(0.0, now - *mark - split.gather - split.scatter);
  for (StepTimings* t : {&progress_timings_, &record_timings_}) {
    t->Add(StepPhase::kGather, split.gather);
    t->Add(StepPhase::kCompute, compute);
    t->Add(StepPhase::kScatter, split.scatter);
  }
  *mark = now;
}

void Trainer::Time(StepPhase phase, double* mark) {
  const double now = Now();
  progress_timings_.Add(phase, now - *mark);
  record_timings_.Add(phase, now - *mark);
  *mark = now;
}

Status Trainer::DenseUpdate(double* mark) {
  Tensor& grads = model()->grads();
  ATTNPS_RETURN_IF_ERROR(runtime_->allreduce()->Sum(grads.data(), grads.numel()));
  Time(StepPhase::kAllreduce, mark);
  if (opts_.clip_global_norm > 0) {
    ClipByGlobalNorm(&grads, opts_.clip_global_norm);
  }
  if (!AllFinite(grads)) return Diverged("the dense gradients are not finite");
  optimizer_->Step(grads, &model()->params());
  Time(StepPhase::kDenseUpdate, mark);
  return Status::Ok();
}

void Trainer::CountTraffic() {
  std::vector<ps::PeerTraffic> now = runtime_->client()->Traffic();
  std::vector<ps::PeerTraffic> step(now.size());
  if (traffic_seen_.size() == now.size()) {
    for (size_t s = 0; s < now.size(); ++s) {
      step[s] = {now[s].sent_bytes - traffic_seen_[s].sent_bytes,
                 now[s].sent_messages - traffic_seen_[s].sent_messages,
                 now[s].received_bytes - traffic_seen_[s].received_bytes,
                 now[s].received_messages - traffic_seen_[s].received_messages};
    }
  }
  // The step's flags and the dense gradients, as handed to the allreduce.
  const uint64_t allreduce = sizeof(float) * (2 + model()->grads().numel());
  for (StepTimings* t : {&progress_timings_, &record_timings_}) t->AddTraffic(step, allreduce);
  traffic_seen_ = std::move(now);
}

Status Trainer::AverageBuffers() {
  const int workers = runtime_->num_workers();
  Tensor& buffers = model()->buffers();
  if (workers == 1 || buffers.empty()) return Status::Ok();
  ATTNPS_RETURN_IF_ERROR(runtime_->allreduce()->Sum(buffers.data(), buffers.numel()));
  const float inverse = 1.0f / static_cast<float>(workers);
  for (int64_t i = 0; i < buffers.numel(); ++i) buffers.data()[i] *= inverse;
  return Status::Ok();
}

Status Trainer::Diverged(const std::string& what) const {
  return Status::InvalidArgument(
      "training diverged at step " + std::to_string(step_ + 1) + " (worker " +
      std::to_string(runtime_->worker_index()) + "): " + what +
      "; stopped before writing a checkpoint of this state. Lower the learning rates "
      "(dense_optimizer.learning_rate, tables[].optimizer.learning_rate) or set "
      "dense_optimizer.clip_global_norm, and resume from the last checkpoint");
}

void Trainer::Progress(double loss, bool force) {
  if (loss_ema_ < 0) loss_ema_ = loss;
  loss_ema_ = 0.98 * loss_ema_ + 0.02 * loss;
  const double now = Now();
  if (!IsChief() || (!force && now - last_progress_ < opts_.progress_seconds)) return;
  last_progress_ = now;
  const double elapsed = std::max(1e-9, now - start_time_);
  const double rate = static_cast<double>(samples_run_) * runtime_->num_workers() / elapsed;
  const double per_epoch = static_cast<double>(samples_per_epoch_);
  const double done =
      per_epoch > 0 ? std::min(1.0, epoch_samples_ * runtime_->num_workers() / per_epoch) : 0;
  const double remaining = per_epoch * (opts_.epochs - epoch_ - done);
  const std::string timings = progress_timings_.Summary();
  std::printf("[attnps] step %lld  epoch %d  %5.1f%%  %.0f samples/s  loss %.4f  ETA %s%s%s\n",
              static_cast<long long>(step_), epoch_ + 1, 100.0 * done, rate, loss_ema_,
              Duration(rate > 0 ? remaining / rate : 0).c_str(), timings.empty() ? "" : "  | ",
              timings.c_str());
  progress_timings_.Reset();
  std::fflush(stdout);
}

Status Trainer::Train() {
  const config::TrainLoopOptions& data = opts_;
  std::unique_ptr<SampleSource> source;
  ATTNPS_RETURN_IF_ERROR(
      task_->OpenTrainSource(runtime_->worker_index(), runtime_->num_workers(), &source));
  ATTNPS_RETURN_IF_ERROR(TakeOverCheckpointDir());
  if (options_.resume) {
    ATTNPS_RETURN_IF_ERROR(LoadCheckpoint());
    ATTNPS_RETURN_IF_ERROR(source->Seek(consumed_));
    if (IsChief())
      std::printf("[attnps] resumed from %s at step %lld\n", load_dir_.c_str(),
                  static_cast<long long>(step_));
  }
  if (IsChief()) samples_per_epoch_ = CountLines(task_->train_file());  // for progress and ETA
  reader_ = std::make_unique<Reader>(source.get(), opts_.batch_size, data.prefetch_batches);
  start_time_ = last_progress_ = last_checkpoint_time_ = Now();
  traffic_seen_ = runtime_->client()->Traffic();
  const int64_t max_steps = opts_.max_steps;
  // A worker whose share of the epoch was used up when the checkpoint was written (its position
  // is already in the next epoch) runs empty steps until every worker's share is.
  bool epoch_done = options_.resume && !consumed_.remapped && consumed_.epoch > epoch_;
  int64_t epoch_first_step = step_;
  Status st;
  while (st.ok() && epoch_ < opts_.epochs && (max_steps == 0 || step_ < max_steps)) {
    const double step_start = Now();
    double mark = step_start;
    if (!(st = FillPipeline(&epoch_done)).ok()) break;
    Time(StepPhase::kData, &mark);
    const bool want_checkpoint =
        !opts_.checkpoint_dir.empty() &&
        ((opts_.checkpoint_every_steps > 0 && (step_ + 1) % opts_.checkpoint_every_steps == 0) ||
         (opts_.checkpoint_every_minutes > 0 &&
          Now() - last_checkpoint_time_ > 60 * opts_.checkpoint_every_minutes));
    float flags[2] = {pipeline_->submitted() > 0 ? 1.0f : 0.0f, want_checkpoint ? 1.0f : 0.0f};
    if (!(st = runtime_->allreduce()->Sum(flags, 2)).ok()) break;
    Time(StepPhase::kAllreduce, &mark);
    if (flags[0] == 0) {  // every worker's epoch is over
      if (step_ == epoch_first_step && epoch_samples_ == 0 && samples_seen_ == 0) {
        st = Status::InvalidArgument("data.train_path: " + data.train_path +
                                     " holds no valid sample (blank or malformed lines only)");
        break;
      }
      epoch_first_step = step_;
      ++epoch_;
      epoch_done = false;
      epoch_samples_ = 0;
      st = EvaluateAndLog("test");
      traffic_seen_ = runtime_->client()->Traffic();
      continue;
    }
    model()->grads().SetZero();
    StepResult result;
    if (pipeline_->submitted() > 0) {
      std::unique_ptr<SparseBatch> next;
      if (!(st = pipeline_->Next(&next)).ok()) break;
      device_->RowsToDevice(next.get());
      Time(StepPhase::kPullWait, &mark);
      if (!(st = RunStep(static_cast<TaskBatch*>(next.get()), &result)).ok()) break;
      TimeStep(result.split, &mark);
      if (!(st = PushStep(std::move(next))).ok()) break;
      Time(StepPhase::kPush, &mark);
    }
    if (!(st = DenseUpdate(&mark)).ok()) break;
    train_seconds_ += Now() - step_start;
    CountTraffic();
    for (StepTimings* t : {&progress_timings_, &record_timings_}) t->EndStep(result.samples);
    ++step_;
    Progress(result.loss, false);
    if (flags[1] > 0) st = SaveCheckpoint();
    const int64_t every = opts_.eval_every_steps;
    if (st.ok() && every > 0 && step_ % every == 0) st = EvaluateAndLog("test");
    if (flags[1] > 0 || (every > 0 && step_ % every == 0)) {
      traffic_seen_ = runtime_->client()->Traffic();  // not the steps' traffic
    }
  }
  reader_.reset();
  if (st.ok()) st = pipeline_->Drain();
  if (st.ok()) Progress(loss_ema_ < 0 ? 0 : loss_ema_, true);
  if (st.ok()) st = ReportTraffic();
  std::vector<uint64_t> sum = {samples_run_};  // every worker's samples in this process's run
  if (st.ok()) st = SumOverWorkers(&sum);
  const uint64_t trained = sum[0];
  if (st.ok() && IsChief()) {  // all workers' samples over this worker's time in steps
    std::printf("[attnps] trained %llu samples in %.2f s of steps: train_samples_per_s=%.0f\n",
                static_cast<unsigned long long>(trained), train_seconds_,
                trained / std::max(1e-9, train_seconds_));
    std::fflush(stdout);
  }
  if (st.ok() && !opts_.checkpoint_dir.empty() && opts_.save_at_end) st = SaveCheckpoint();
  return st;
}

Status Trainer::EvaluateAndLog(const std::string& split) {
  if (opts_.test_path.empty()) return Status::Ok();
  const double t0 = Now();
  // Every worker's pushes are applied first: the metrics are those of the weights at this step
  // (the same as an eval of a checkpoint written here).
  ATTNPS_RETURN_IF_ERROR(pipeline_->Drain());
  ATTNPS_RETURN_IF_ERROR(runtime_->client()->Barrier());
  ATTNPS_RETURN_IF_ERROR(AverageBuffers());
  metrics::Record record;
  ATTNPS_RETURN_IF_ERROR(Evaluate(&record));
  if (!IsChief()) return Status::Ok();
  std::printf("[attnps] epoch %d step %lld: %s%s (%lld samples, %.1f s)\n", epoch_,
              static_cast<long long>(step_), split.c_str(), MetricsText(record, 4).c_str(),
              static_cast<long long>(record.samples), Now() - t0);
  std::fflush(stdout);
  if (options_.metrics_out.empty() && tensorboard_ == nullptr) return Status::Ok();
  record.step = step_;
  record.epoch = epoch_;
  record.split = split;
  record.time_s = Now() - start_time_;
  const size_t eval_fields = record.extra.size();  // the task's; the training fields follow
  record.extra.push_back({"train_loss", loss_ema_});
  if (record_timings_.seconds() > 0) {
    record.extra.push_back(
        {"train_samples_per_s",
         record_timings_.samples() * runtime_->num_workers() / record_timings_.seconds()});
  }
  for (const auto& field : record_timings_.Fields()) record.extra.push_back(field);
  record_timings_.Reset();
  if (tensorboard_ != nullptr) {
    ATTNPS_RETURN_IF_ERROR(
        tensorboard_->Add(step_, WallSeconds(), TensorBoardScalars(record, eval_fields)));
  }
  if (options_.metrics_out.empty()) return Status::Ok();
  const fs::path parent = fs::path(options_.metrics_out).parent_path();
  std::error_code error;
  if (!parent.empty()) fs::create_directories(parent, error);
  return metrics::AppendJsonLine(options_.metrics_out, metrics::MetricsJsonLine(record));
}

std::string Trainer::MetricsText(const metrics::Record& r, int digits) const {
  return task_ != nullptr ? task_->MetricsText(r, digits) : "";
}

Status Trainer::Evaluate(metrics::Record* record) {
  const RowPuller pull = [this](SparseBatch* batch) { return PullRows(batch); };
  std::string mine;
  ATTNPS_RETURN_IF_ERROR(
      task_->EvaluateShard(pull, runtime_->worker_index(), runtime_->num_workers(), &mine));
  std::vector<std::string> all;
  ATTNPS_RETURN_IF_ERROR(runtime_->allreduce()->AllGather(mine, &all));
  return task_->MergeEvaluation(all, record);
}

Status Trainer::Predict(const std::string& in_path, const std::string& out_path, int64_t* rows) {
  const RowPuller pull = [this](SparseBatch* batch) { return PullRows(batch); };
  return task_->Predict(pull, in_path, out_path, rows);
}

Status Trainer::SaveCheckpoint() {
  // Every worker decides from the same state (no file is read here), so all take the same path.
  if (last_saved_step_ == step_) return Status::Ok();  // written already, or resumed from it
  const std::string step_dir = opts_.checkpoint_dir + "/" + StepDirName(step_);
  const double t0 = Now();
  ATTNPS_RETURN_IF_ERROR(pipeline_->Drain());
  if (!AllFinite(model()->params())) return Diverged("the dense weights are not finite");
  ATTNPS_RETURN_IF_ERROR(AverageBuffers());
  std::error_code error;
  // A step directory that LATEST does not name is left over from a crash (or an older run).
  if (IsChief()) fs::remove_all(step_dir, error);
  if (error) return Status::IoError("cannot clear " + step_dir + ": " + error.message());
  ATTNPS_RETURN_IF_ERROR(runtime_->client()->Barrier());  // every push is in; stale files gone
  const Status st = WriteCheckpointFiles(step_dir);
  std::string latest;
  if (!st.ok() && IsChief() &&
      !(ReadLatest(opts_.checkpoint_dir, &latest).ok() && latest == step_dir)) {
    fs::remove_all(step_dir, error);  // never published: frees the space it took
  }
  ATTNPS_RETURN_IF_ERROR(st.WithContext("writing checkpoint " + step_dir));
  if (IsChief()) {
    ATTNPS_RETURN_IF_ERROR(PruneCheckpoints(opts_.checkpoint_dir, opts_.keep_last));
  }
  last_saved_step_ = step_;
  last_checkpoint_time_ = Now();
  if (IsChief()) {
    std::printf("[attnps] checkpoint %s written in %.2f s\n", step_dir.c_str(), Now() - t0);
    std::fflush(stdout);
  }
  return Status::Ok();
}

// Shards (servers), dense state (worker 0) and reader positions (each worker), then worker 0
// lists them all in the manifest and publishes LATEST.
Status Trainer::WriteCheckpointFiles(const std::string& step_dir) {
  ps::PsClient* client = runtime_->client();
  std::error_code error;
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
  if (!IsChief()) return Status::Ok();
  config::CheckpointManifest manifest;
  manifest.set_step(step_);
  manifest.set_epoch(epoch_);
  manifest.set_samples_seen(samples_seen_);
  manifest.set_num_servers(runtime_->roles().servers);
  manifest.set_shard_threads(config_.ps().shard_threads());
  manifest.set_config_text(config::ToText(config_));
  manifest.set_dense_blob_path("dense.bin");
  for (int w = 0; w < runtime_->num_workers(); ++w) manifest.add_reader_positions()->set_worker(w);
  ATTNPS_RETURN_IF_ERROR(WriteManifest(step_dir, manifest));
  return PublishLatest(opts_.checkpoint_dir, StepDirName(step_));
}

// Loads the step directory that Init verified: the servers' rows, the dense state, the reader.
Status Trainer::LoadCheckpoint() {
  CHECK(!load_dir_.empty()) << "LoadCheckpoint before Init verified a checkpoint";
  if (IsChief()) ATTNPS_RETURN_IF_ERROR(runtime_->client()->Load(load_dir_));
  int64_t optimizer_steps = 0;
  ATTNPS_RETURN_IF_ERROR(ReadDense(load_dir_ + "/dense.bin", DenseBlocks(), &optimizer_steps));
  optimizer_->set_step_count(optimizer_steps);
  step_ = load_manifest_.step();
  epoch_ = load_manifest_.epoch();
  samples_seen_ = load_manifest_.samples_seen();
  last_saved_step_ = step_;
  return runtime_->client()->Barrier();  // the tables are loaded before anyone pulls
}

Status Trainer::SumOverWorkers(std::vector<uint64_t>* values) {
  std::vector<std::string> all;
  const size_t bytes = values->size() * sizeof(uint64_t);
  ATTNPS_RETURN_IF_ERROR(runtime_->allreduce()->AllGather(
      std::string(reinterpret_cast<const char*>(values->data()), bytes), &all));
  std::fill(values->begin(), values->end(), 0);
  for (const std::string& theirs : all) {
    if (theirs.size() != bytes) return Status::Corruption("workers disagree on a sum's length");
    for (size_t i = 0; i < values->size(); ++i) {
      uint64_t v = 0;
      std::memcpy(&v, theirs.data() + i * sizeof(v), sizeof(v));
      (*values)[i] += v;
    }
  }
  return Status::Ok();
}

Status Trainer::ReportTraffic() {
  std::map<uint32_t, uint64_t> rows;
  std::vector<ps::PeerTraffic> counted;  // by each server
  ATTNPS_RETURN_IF_ERROR(runtime_->client()->Stats(&rows, &counted));
  const std::vector<ps::PeerTraffic> mine = runtime_->client()->Traffic();  // the stats included
  std::vector<uint64_t> sums;
  for (size_t s = 0; s < mine.size(); ++s) {
    sums.insert(sums.end(), {mine[s].sent_bytes, mine[s].sent_messages, counted[s].received_bytes,
                             counted[s].received_messages, counted[s].sent_bytes});
  }
  ATTNPS_RETURN_IF_ERROR(SumOverWorkers(&sums));
  if (!IsChief()) return Status::Ok();
  for (size_t s = 0; s < mine.size(); ++s) {
    const uint64_t* v = sums.data() + 5 * s;
    const bool match = v[0] == v[2] && v[1] == v[3];
    std::printf(
        "[attnps] traffic with server %zu: workers sent %llu bytes in %llu messages, the server "
        "received %llu bytes in %llu messages (%s) and sent %llu bytes\n",
        s, static_cast<unsigned long long>(v[0]), static_cast<unsigned long long>(v[1]),
        static_cast<unsigned long long>(v[2]), static_cast<unsigned long long>(v[3]),
        match ? "match" : "MISMATCH", static_cast<unsigned long long>(v[4]));
    if (!match) LOG(ERROR) << "server " << s << " counted other traffic than the workers sent";
  }
  std::fflush(stdout);
  return Status::Ok();
}

// This worker's reader position: its own, or, when the checkpoint was written by another number of
// workers, the old workers' positions remapped (see StreamRemap).
Status Trainer::ReadReaderPosition() {
  const int written_by = load_manifest_.reader_positions_size();
  auto pos_file = [&](int w) { return load_dir_ + "/worker-" + std::to_string(w) + ".pos"; };
  if (written_by == runtime_->num_workers()) {
    return ReadPosition(pos_file(runtime_->worker_index()), &consumed_);
  }
  if (written_by < 1) return Status::Corruption(load_dir_ + "/MANIFEST: no reader positions");
  std::vector<StreamPosition> old(written_by);
  for (int w = 0; w < written_by; ++w) {
    ATTNPS_RETURN_IF_ERROR(ReadPosition(pos_file(w), &old[w]));
    if (old[w].epoch < load_manifest_.epoch()) {
      return Status::Corruption(pos_file(w) + ": in epoch " + std::to_string(old[w].epoch + 1) +
                                ", the checkpoint in epoch " +
                                std::to_string(load_manifest_.epoch() + 1));
    }
    if (old[w].remapped && old[w].epoch == load_manifest_.epoch()) {
      return Status::InvalidArgument(
          load_dir_ + " was written while finishing an epoch begun with " +
          std::to_string(old[w].remap.old_workers) + " workers; resume it with " +
          std::to_string(written_by) + " workers until epoch " +
          std::to_string(load_manifest_.epoch() + 1) + " ends");
    }
  }
  consumed_ = RemapPositions(old, load_manifest_.epoch(), runtime_->worker_index(),
                             runtime_->num_workers());
  return Status::Ok();
}

Status Trainer::LoadForInference() { return LoadCheckpoint(); }

}  // namespace attnps::worker
