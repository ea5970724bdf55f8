// Test fixture: a small generated CTR file and a job config for it, trained in local mode.
#ifndef ATTNPS_TESTS_WORKER_LOCAL_JOB_H_
#define ATTNPS_TESTS_WORKER_LOCAL_JOB_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "worker/config/job_config.h"
#include "worker/trainer.h"

namespace attnps::worker::testing_local {

// <dir>/train.tsv: users like items of their own cluster (item % 5 == user % 5), so the history
// carries the signal.
inline std::string WriteData(const std::string& dir, int rows, uint64_t seed) {
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/train.tsv";
  std::ofstream out(path);
  std::mt19937_64 rng(seed);
  for (int r = 0; r < rows; ++r) {
    const uint64_t user = 1 + rng() % 50, item = 1 + rng() % 100;
    const bool label = item % 5 == user % 5;
    out << (label ? 1 : 0) << '\t' << user << '\t' << item << '\t' << 1 + item % 5 << '\t';
    const int len = static_cast<int>(rng() % 6);
    std::string items, cates;
    for (int t = 0; t < len; ++t) {
      const uint64_t h = 5 * (rng() % 20) + user % 5;
      items += (t ? "," : "") + std::to_string(h);
      cates += (t ? "," : "") + std::to_string(1 + h % 5);
    }
    out << items << '\t' << cates << '\n';
  }
  return path;
}

// A DIN or Base (`model`: "din {}" / "base {}") job on <dir>/train.tsv, checkpoints in <dir>/ckpt.
inline config::JobConfig Config(const std::string& dir, const std::string& model) {
  const std::string text = R"(
    data { train_path: ")" +
                           dir + R"(/train.tsv" test_path: ")" + dir + R"(/train.tsv"
           max_history: 5 shuffle_buffer: 64 }
    tables { name: "item" dim: 4 optimizer { kind: ADAGRAD learning_rate: 0.05 } }
    tables { name: "cate" dim: 4 optimizer { kind: ADAM learning_rate: 0.01 } }
    features { item_table: "item" cate_table: "cate" }
    model { mlp { hidden: [8] activation: PRELU } )" +
                           model + R"( }
    dense_optimizer { kind: ADAM learning_rate: 0.01 }
    train { batch_size: 16 epochs: 2 seed: 5 progress_seconds: 1000 threads: 1 }
    checkpoint { dir: ")" + dir +
                           R"(/ckpt" keep_last: 0 save_at_end: true }
  )";
  config::JobConfig c;
  const Status st = config::ParseJobConfig(text, "test", &c);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return c;
}

// A local-mode runtime with `servers` in-process servers for config c.
inline std::unique_ptr<ps::JobRuntime> LocalRuntime(const config::JobConfig& c, int servers) {
  ps::RuntimeOptions o;
  o.servers = servers;
  o.tables = config::ToPsTables(c);
  std::unique_ptr<ps::JobRuntime> job;
  EXPECT_TRUE(ps::JobRuntime::CreateLocal(o, &job).ok());
  return job;
}

// Runs Init and then the job of options.kind (Train, or LoadForInference + Evaluate); returns the
// first error.
inline Status RunLocally(const config::JobConfig& c, const TrainerOptions& options,
                         int servers = 2) {
  std::unique_ptr<ps::JobRuntime> job = LocalRuntime(c, servers);
  Trainer trainer(job.get(), c, options);
  bool stopped_together = false;
  Status st = trainer.AgreeToStart(trainer.Init(), &stopped_together);
  if (st.ok() && options.kind == JobKind::kTrain) st = trainer.Train();
  if (st.ok() && options.kind != JobKind::kTrain) st = trainer.LoadForInference();
  metrics::Record r;
  if (st.ok() && options.kind == JobKind::kEval) st = trainer.Evaluate(&r);
  const Status finished = job->Finish();
  return st.ok() ? finished : st;
}

}  // namespace attnps::worker::testing_local

#endif  // ATTNPS_TESTS_WORKER_LOCAL_JOB_H_
