// attnps: the command-line entry point.
//
//   attnps prepare --format=... --out=DIR ...             data preparation (no MPI)
//   attnps train   --config=FILE [--resume] [--metrics_out=FILE] [--servers=S] [--set=a.b=v]...
//   attnps eval    --config=FILE [--checkpoint=STEP_DIR] [--servers=S] [--set=...]
//   attnps predict --config=FILE --input=CTR_FILE --output=FILE [--checkpoint=STEP_DIR]
//
// train/eval/predict run under mpirun (ranks 0..S-1 serve, the rest work) or, without mpirun,
// in local mode (servers in-process). Exit codes: 0 success, 1 failure, 2 bad usage.
#include <glog/logging.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "ops/blas.h"
#include "ps/job_runtime.h"
#include "worker/config/job_config.h"
#include "worker/data/prepare.h"
#include "worker/trainer.h"

namespace attnps {
namespace {

constexpr char kUsage[] =
    "usage: attnps <command> [flags]\n"
    "  prepare --format=movielens|sasrec|amazon|taobao|synthetic --out=DIR ...  (--help)\n"
    "  train   --config=FILE [--resume] [--metrics_out=FILE] [--servers=S] [--set=path=value]\n"
    "  eval    --config=FILE [--checkpoint=STEP_DIR] [--servers=S] [--set=path=value]\n"
    "  predict --config=FILE --input=CTR_FILE --output=FILE [--checkpoint=STEP_DIR]\n"
    "Run train/eval/predict under mpirun -np N (ranks 0..S-1 are servers) or alone (local mode).\n";

struct Flags {
  std::string command, config, metrics_out, checkpoint, input, output;
  bool resume = false;
  int servers = 0;  // 0: from the config
  std::vector<std::string> overrides;
};

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
        take("checkpoint", &f->checkpoint) || take("input", &f->input) ||
        take("output", &f->output)) {
      continue;
    }
    if (a == "--resume") {
      f->resume = true;
    } else if (take("servers", &v)) {
      f->servers = std::atoi(v.c_str());
      if (f->servers < 1) return *error = "--servers must be >= 1, got " + v, false;
    } else if (take("set", &v)) {
      f->overrides.push_back(v);
    } else {
      return *error = "unknown flag " + a, false;
    }
  }
  if (f->config.empty()) return *error = "--config=FILE is required", false;
  if (f->command == "predict" && (f->input.empty() || f->output.empty())) {
    return *error = "predict needs --input=CTR_FILE and --output=FILE", false;
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

int Fail(const Status& st, int rank) {
  std::fprintf(stderr, "attnps (rank %d): %s\n", rank, st.ToString().c_str());
  return 1;
}

int RunWorker(ps::JobRuntime* runtime, const config::JobConfig& config, const Flags& f, int rank) {
  worker::TrainerOptions options;
  options.resume = f.resume;
  options.metrics_out = f.metrics_out;
  options.checkpoint_step = f.checkpoint;
  worker::Trainer trainer(runtime, config, options);
  Status st = trainer.Init();
  if (st.ok() && f.command == "train") {
    st = trainer.Train();
  } else if (st.ok()) {
    st = trainer.LoadForInference();
    if (st.ok() && runtime->worker_index() == 0 && f.command == "eval") {
      metrics::CtrResult r;
      st = trainer.Evaluate(&r);
      if (st.ok()) {
        std::printf("test auc=%.4f gauc=%.4f logloss=%.4f samples=%lld step=%lld\n", r.auc, r.gauc,
                    r.logloss, static_cast<long long>(r.samples),
                    static_cast<long long>(trainer.step()));
      }
    } else if (st.ok() && runtime->worker_index() == 0) {
      int64_t rows = 0;
      st = trainer.Predict(f.input, f.output, &rows);
      if (st.ok())
        std::printf("wrote %lld scores to %s\n", static_cast<long long>(rows), f.output.c_str());
    }
  }
  const Status finished = runtime->Finish();
  if (!st.ok()) return Fail(st, rank);
  if (!finished.ok()) return Fail(finished, rank);
  return 0;
}

int RunJob(int argc, char** argv, const std::vector<std::string>& args) {
  Flags f;
  std::string error;
  if (!ParseFlags(args, &f, &error)) {
    std::fprintf(stderr, "attnps %s: %s\n%s", args[0].c_str(), error.c_str(), kUsage);
    return 2;
  }
  ps::MpiSession mpi(&argc, &argv);
  config::JobConfig config;
  Status st = config::LoadJobConfig(f.config, f.overrides, &config);
  if (!st.ok()) {
    if (mpi.rank() == 0) std::fprintf(stderr, "attnps: %s\n", st.ToString().c_str());
    return 2;
  }
  ps::RuntimeOptions options;
  options.servers = f.servers > 0 ? f.servers : config.ps().servers();
  options.shard_threads = config.ps().shard_threads();
  options.tables = config::ToPsTables(config);
  std::unique_ptr<ps::JobRuntime> runtime;
  st = ps::JobRuntime::Create(mpi, options, &runtime);
  if (!st.ok()) {
    if (mpi.rank() == 0) std::fprintf(stderr, "attnps: %s\n", st.ToString().c_str());
    return 2;
  }
  SetThreads(config.train().threads());
  if (runtime->is_server()) {
    st = runtime->Serve();
    return st.ok() ? 0 : Fail(st, mpi.rank());
  }
  if (runtime->worker_index() == 0) {
    std::printf("[attnps] %s: %s, %d server(s) x %d shard thread(s), %d worker(s)%s\n",
                f.command.c_str(), f.config.c_str(), runtime->roles().servers,
                options.shard_threads, runtime->num_workers(),
                runtime->local() ? " (local mode)" : "");
    std::fflush(stdout);
  }
  return RunWorker(runtime.get(), config, f, mpi.rank());
}

int Main(int argc, char** argv) {
  // Servers and workers share the cores: OpenMP threads that spin while waiting would starve
  // them. Must be set before OpenMP starts.
  setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "prepare") return data::PrepareMain(args);
  if (args[0] == "train" || args[0] == "eval" || args[0] == "predict") {
    return RunJob(argc, argv, args);
  }
  std::fprintf(stderr, "attnps: unknown command \"%s\"\n%s", args[0].c_str(), kUsage);
  return 2;
}

}  // namespace
}  // namespace attnps

int main(int argc, char** argv) { return attnps::Main(argc, argv); }
