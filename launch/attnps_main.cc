// attnps: the command-line entry point.
//
//   attnps prepare --format=... --out=DIR ...             data preparation (no MPI)
//   attnps train   --config=FILE [--resume [--checkpoint=STEP_DIR]] [--overwrite] [--metrics_out=F]
//                  [--tensorboard_dir=DIR] [--servers=S] [--set=a.b=v]...
//   attnps eval    --config=FILE [--checkpoint=STEP_DIR] [--servers=S] [--set=...]
//   attnps predict --config=FILE --input=CTR_FILE --output=FILE [--checkpoint=STEP_DIR]
//
// train/eval/predict run under mpirun (ranks 0..S-1 serve, the rest work) or, without mpirun,
// in local mode (servers in-process). Exit codes: 0 success, 1 failure, 2 bad usage or config.
// Failures: a config or start-check error stops every rank cleanly (the ranks agree on it); any
// later error on any rank ends the whole job at once (MPI_Abort), naming the rank.
#include <glog/logging.h>
#include <omp.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "ops/blas.h"
#include "ops/cpu_kernels.h"
#include "ps/job_runtime.h"
#include "worker/config/job_config.h"
#include "worker/data/prepare.h"
#include "worker/models/retrieval_model.h"
#include "worker/trainer.h"

namespace attnps {
namespace {

// The BLAS kernel line UseBestBlasKernels logged, printed by worker 0 at the start of a job.
std::string& BlasSummary() {
  static std::string summary;
  return summary;
}

constexpr char kUsage[] =
    "usage: attnps <command> [flags]   (attnps <command> --help for its flags)\n"
    "  prepare --format=movielens|sasrec|amazon|taobao|synthetic --out=DIR ...\n"
    "  train   --config=FILE [--resume [--checkpoint=STEP_DIR]] [--overwrite] "
    "[--metrics_out=FILE]\n"
    "          [--tensorboard_dir=DIR] [--servers=S] [--set=path=value]...\n"
    "  eval    --config=FILE [--checkpoint=STEP_DIR] [--servers=S] [--set=path=value]...\n"
    "  predict --config=FILE --input=CTR_FILE --output=FILE [--checkpoint=STEP_DIR] [--set=...]\n"
    "  retrieve --config=FILE --input=HISTORIES --output=FILE [--topk=N] [--checkpoint=STEP_DIR]\n"
    "Run train/eval/predict/retrieve under mpirun -np N (ranks 0..S-1 are servers) or alone (local "
    "mode).\n";

constexpr char kJobFlags[] =
    "flags:\n"
    "  --config=FILE         job config (text protobuf, docs/config.md); required\n"
    "  --set=path=value      override a config field, e.g. --set=train.batch_size=256 "
    "(repeatable)\n"
    "  --servers=S           server ranks under mpirun (default: ps.servers of the config)\n"
    "  --checkpoint=DIR      a step directory (ckpt/step-N) instead of <checkpoint.dir>/LATEST\n"
    "train only:\n"
    "  --resume              continue from the checkpoint (LATEST, or --checkpoint)\n"
    "  --overwrite           delete the checkpoints already in checkpoint.dir and start anew\n"
    "  --metrics_out=FILE    JSON lines of the evaluations (default: metrics.out_path)\n"
    "  --tensorboard_dir=DIR the same records as TensorBoard scalars (an event file in DIR)\n"
    "predict only:\n"
    "  --input=CTR_FILE      samples to score; --output=FILE gets one score per input line\n"
    "                        (nan for a blank or malformed line)\n"
    "retrieve only (a retrieval model's config):\n"
    "  --input=HISTORIES     retrieval lines (user \\t items \\t cates); --output=FILE gets\n"
    "                        \"user \\t item:score,...\" per input line (empty for a malformed "
    "one)\n"
    "  --topk=N              items per user (default retrieval.serving_index.topk, 50)\n"
    "exit codes: 0 success, 1 failure (any rank's error ends the whole job), 2 bad usage or "
    "config\n";

struct Flags {
  std::string command, config, metrics_out, tensorboard_dir, checkpoint, input, output;
  bool resume = false, overwrite = false, help = false;
  int servers = 0;  // 0: from the config
  std::vector<std::string> overrides;
};

// A whole positive decimal number, e.g. "2" (not "2x", " 2" or "99999999999").
bool ParsePositiveInt(const std::string& text, int* out) {
  if (text.empty() || text.size() > 9) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  *out = std::atoi(text.c_str());
  return *out > 0;
}

bool ParseFlags(const std::vector<std::string>& args, Flags* f, std::string* error) {
  f->command = args.empty() ? "" : args[0];
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto take = [&](const char* name, std::string* out) {
      const std::string prefix = std::string("--") + name + "=";
      if (a.rfind(prefix, 0) != 0) return false;
      *out = a.substr(prefix.size());
      return true;
    };
    std::string v;
    if (take("config", &f->config) || take("metrics_out", &f->metrics_out) ||
        take("tensorboard_dir", &f->tensorboard_dir) || take("checkpoint", &f->checkpoint) ||
        take("input", &f->input) || take("output", &f->output)) {
      continue;
    }
    if (a == "--help" || a == "-h") {
      f->help = true;
    } else if (a == "--resume") {
      f->resume = true;
    } else if (a == "--overwrite") {
      f->overwrite = true;
    } else if (take("servers", &v)) {
      if (!ParsePositiveInt(v, &f->servers)) {
        return *error = "--servers must be a whole number >= 1, got \"" + v + "\"", false;
      }
    } else if (take("set", &v)) {
      f->overrides.push_back(v);
    } else if (take("topk", &v) && f->command == "retrieve") {
      int topk = 0;
      if (!ParsePositiveInt(v, &topk)) {
        return *error = "--topk must be a whole number >= 1, got \"" + v + "\"", false;
      }
      f->overrides.push_back("retrieval.serving_index.topk=" + v);
    } else {
      return *error = "unknown flag " + a, false;
    }
  }
  if (f->help) return true;
  if (f->config.empty()) return *error = "--config=FILE is required", false;
  if (f->command == "predict" && (f->input.empty() || f->output.empty())) {
    return *error = "predict needs --input=CTR_FILE and --output=FILE", false;
  }
  if (f->command == "retrieve" && (f->input.empty() || f->output.empty())) {
    return *error = "retrieve needs --input=HISTORIES and --output=FILE", false;
  }
  if (f->command != "train" &&
      (f->resume || f->overwrite || !f->metrics_out.empty() || !f->tensorboard_dir.empty())) {
    return *error = "--resume, --overwrite, --metrics_out and --tensorboard_dir are train flags",
           false;
  }
  if (f->resume && f->overwrite)
    return *error = "--resume and --overwrite exclude each other", false;
  if (f->command == "train" && !f->checkpoint.empty() && !f->resume) {
    return *error = "train takes --checkpoint=STEP_DIR only with --resume", false;
  }
  return true;
}

// Threads for BLAS and OpenMP: the config's, or this machine's cores shared by its ranks.
void SetThreads(int configured) {
  int threads = configured;
  if (threads <= 0) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int ranks = local ? std::max(1, std::atoi(local)) : 1;
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks);
  }
  omp_set_num_threads(threads);
  SetNumThreads(threads);
}

// How a rank reports a failure: its role in the message, and under mpirun the job ended at once
// (MPI_Abort), since the other ranks may be waiting for this one in a collective call.
class JobEnd {
 public:
  explicit JobEnd(const ps::MpiSession& mpi) : mpi_(mpi) {}
  void set_role(std::string role) { role_ = std::move(role); }

  void Report(const Status& st) const {
    std::fprintf(stderr, "attnps (%s): %s\n", Who().c_str(), st.ToString().c_str());
  }
  // Prints the error and, under mpirun, aborts the job; in one process returns `code`.
  int Fail(const Status& st, int code = 1) const {
    Report(st);
    if (mpi_.size() > 1) {
      std::fprintf(stderr, "attnps (%s): ending the whole job\n", Who().c_str());
      mpi_.Abort(code);
    }
    return code;
  }

 private:
  std::string Who() const {
    return "rank " + std::to_string(mpi_.rank()) + (role_.empty() ? "" : ", " + role_);
  }
  const ps::MpiSession& mpi_;
  std::string role_;
};

worker::JobKind KindOf(const std::string& command) {
  if (command == "eval") return worker::JobKind::kEval;
  if (command == "predict" || command == "retrieve") return worker::JobKind::kPredict;
  return worker::JobKind::kTrain;
}

// The worker's job after the start checks; any error here ends the job (JobEnd::Fail).
Status RunStarted(worker::Trainer* trainer, ps::JobRuntime* runtime, const Flags& f) {
  if (f.command == "train") return trainer->Train();
  ATTNPS_RETURN_IF_ERROR(trainer->LoadForInference());
  if (f.command == "eval") {  // every worker scores its share
    metrics::Record r;
    ATTNPS_RETURN_IF_ERROR(trainer->Evaluate(&r));
    if (runtime->worker_index() != 0) return Status::Ok();
    std::printf("test%s samples=%lld step=%lld\n", trainer->MetricsText(r, 6).c_str(),
                static_cast<long long>(r.samples), static_cast<long long>(trainer->step()));
    return Status::Ok();
  }
  if (runtime->worker_index() != 0) return Status::Ok();
  int64_t rows = 0;
  ATTNPS_RETURN_IF_ERROR(trainer->Predict(f.input, f.output, &rows));
  std::printf(f.command == "retrieve" ? "wrote the top items of %lld users to %s\n"
                                      : "wrote %lld scores to %s\n",
              static_cast<long long>(rows), f.output.c_str());
  return Status::Ok();
}

int RunWorker(ps::JobRuntime* runtime, const config::JobConfig& config, const Flags& f,
              const JobEnd& end) {
  worker::TrainerOptions options;
  options.kind = KindOf(f.command);
  options.resume = f.resume;
  options.overwrite = f.overwrite;
  options.metrics_out = f.metrics_out;
  options.tensorboard_dir = f.tensorboard_dir;
  options.checkpoint_step = f.checkpoint;
  options.predict_input = f.input;
  options.predict_output = f.output;
  worker::Trainer trainer(runtime, config, options);
  // Start checks touch no other rank: on failure every worker stops and the servers shut down.
  bool stopped_together = false;
  const Status started = trainer.AgreeToStart(trainer.Init(), &stopped_together);
  if (!started.ok() && stopped_together) {
    const Status finished = runtime->Finish();
    end.Report(started);
    if (!finished.ok()) return end.Fail(finished);
    return 1;
  }
  if (!started.ok()) return end.Fail(started);
  const Status st = RunStarted(&trainer, runtime, f);
  if (!st.ok()) return end.Fail(st);
  const Status finished = runtime->Finish();
  if (!finished.ok()) return end.Fail(finished);
  return 0;
}

int RunJob(int argc, char** argv, const std::vector<std::string>& args) {
  Flags f;
  std::string error;
  if (!ParseFlags(args, &f, &error)) {
    std::fprintf(stderr, "attnps %s: %s\n%s", args[0].c_str(), EscapeForMessage(error).c_str(),
                 kUsage);
    return 2;
  }
  if (f.help) {
    std::printf("usage: attnps %s --config=FILE [flags]\n%s", f.command.c_str(), kJobFlags);
    return 0;
  }
  ps::MpiSession mpi(&argc, &argv);
  JobEnd end(mpi);
  config::JobConfig config;
  Status st = config::LoadJobConfig(f.config, f.overrides, &config);
  if (st.ok() && f.command == "retrieve" && !models::IsRetrievalModel(config.model())) {
    st = Status::InvalidArgument(f.config + ": retrieve needs a retrieval model (model." +
                                 "most_popular, youtube_dnn, comirec_sa, comirec_dr or " +
                                 "self_attention); use predict for a CTR model");
  }
  // Every rank reads the config: they agree on the outcome, so all stop cleanly together, and the
  // first failing rank prints its error.
  const int first_failed = -mpi.MaxOverRanks(st.ok() ? INT_MIN + 1 : -mpi.rank());
  if (first_failed != INT_MAX) {
    if (mpi.rank() == first_failed) std::fprintf(stderr, "attnps: %s\n", st.ToString().c_str());
    return 2;
  }
  // The device is a function of the config and the machine: every rank finds the same.
  if (const Status device = worker::CheckDevice(config.train().device()); !device.ok()) {
    if (mpi.rank() == 0) std::fprintf(stderr, "attnps: %s\n", device.ToString().c_str());
    return 1;
  }
  ps::RuntimeOptions options;
  options.allreduce_backend = worker::AllreduceBackendFor(config.train().device());
  options.servers = f.servers > 0 ? f.servers : config.ps().servers();
  options.shard_threads = config.ps().shard_threads();
  options.serve_inline = config.train().staleness() == 0;  // local mode only
  options.tables = config::ToPsTables(config);
  std::unique_ptr<ps::JobRuntime> runtime;
  st = ps::JobRuntime::Create(mpi, options, &runtime);
  if (!st.ok()) {  // the same on every rank (the split is a function of the flags)
    if (mpi.rank() == 0) std::fprintf(stderr, "attnps: %s\n", st.ToString().c_str());
    return 2;
  }
  SetThreads(config.train().threads());
  if (runtime->is_server()) {
    end.set_role("server " + std::to_string(mpi.rank()));
    st = runtime->Serve();
    return st.ok() ? 0 : end.Fail(st);
  }
  end.set_role("worker " + std::to_string(runtime->worker_index()));
  if (runtime->worker_index() == 0) {
    std::printf("[attnps] %s: %s, %d server(s) x %d shard thread(s), %d worker(s)%s\n",
                f.command.c_str(), f.config.c_str(), runtime->roles().servers,
                options.shard_threads, runtime->num_workers(),
                runtime->local() ? " (local mode)" : "");
    std::printf("[attnps] %s\n", BlasSummary().c_str());
    std::fflush(stdout);
  }
  return RunWorker(runtime.get(), config, f, end);
}

int Main(int argc, char** argv) {
  // The right BLAS kernels for this CPU, and OpenMP threads that spin only briefly before they
  // sleep: a step runs many short parallel regions back to back (sleeping at once, as
  // OMP_WAIT_POLICY=passive does, makes DIN steps 1.5-2.5x slower), but servers, workers and the
  // reader thread share the cores, and threads that spin long starve them (3x slower on a busy
  // machine). libgomp reads GOMP_SPINCOUNT (default 300000) when it loads, before main, so this
  // may re-execute the program (before anything else runs). A user's GOMP_SPINCOUNT or
  // OMP_WAIT_POLICY (which libgomp reads only without GOMP_SPINCOUNT) is kept. docs/benchmarks.md
  // has the figures.
  BlasSummary() = UseBestBlasKernels(argv, {{"GOMP_SPINCOUNT", "30000", "OMP_WAIT_POLICY"}});
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "prepare") return data::PrepareMain(args);
  if (args[0] == "train" || args[0] == "eval" || args[0] == "predict" || args[0] == "retrieve") {
    return RunJob(argc, argv, args);
  }
  std::fprintf(stderr, "attnps: unknown command \"%s\"\n%s", args[0].c_str(), kUsage);
  return 2;
}

}  // namespace
}  // namespace attnps

int main(int argc, char** argv) { return attnps::Main(argc, argv); }
