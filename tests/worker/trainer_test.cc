// End to end on a small generated CTR file in local mode: determinism, resume, checkpoint files.
#include "worker/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "worker/config/job_config.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

// Users like items of their own cluster (item % 5 == user % 5): history carries the signal.
std::string WriteData(const std::string& dir, int rows, uint64_t seed) {
  fs::create_directories(dir);
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

config::JobConfig Config(const std::string& dir, const std::string& model) {
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

struct RunResult {
  std::vector<float> params;
  std::vector<float> rows;  // item rows of keys 1..100
  metrics::CtrResult eval;
};

RunResult TrainLocally(config::JobConfig c, bool resume) {
  ps::RuntimeOptions o;
  o.servers = 2;
  o.tables = config::ToPsTables(c);
  std::unique_ptr<ps::JobRuntime> job;
  EXPECT_TRUE(ps::JobRuntime::CreateLocal(o, &job).ok());
  TrainerOptions options;
  options.resume = resume;
  Trainer trainer(job.get(), c, options);
  RunResult r;
  Status st = trainer.Init();
  if (st.ok()) st = trainer.Train();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(trainer.Evaluate(&r.eval).ok());
  r.params = trainer.model()->params().ToVector();
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; k <= 100; ++k) keys.push_back(k);
  r.rows.resize(keys.size() * 4);
  auto* client = job->client();
  EXPECT_TRUE(client->Wait(client->Pull(1, keys.data(), 100, 4, 0, r.rows.data())).ok());
  EXPECT_TRUE(job->Finish().ok());
  return r;
}

std::string FreshDir(const std::string& name) {
  const std::string dir = testing::TempDir() + "/trainer_" + name;
  fs::remove_all(dir);
  return dir;
}

TEST(TrainerTest, OneWorkerRunsAreBitIdenticalAndLearn) {
  const std::string dir = FreshDir("determinism");
  WriteData(dir, 3000, 1);
  const config::JobConfig c = Config(dir, "din {}");
  const RunResult a = TrainLocally(c, false);
  fs::remove_all(dir + "/ckpt");
  const RunResult b = TrainLocally(c, false);
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_GT(a.eval.auc, 0.75) << "the model did not learn the cluster signal";
}

TEST(TrainerTest, ResumedRunEndsWithTheUninterruptedWeights) {
  const std::string dir = FreshDir("resume");
  WriteData(dir, 600, 2);
  config::JobConfig c = Config(dir, "base {}");
  const RunResult whole = TrainLocally(c, false);
  fs::remove_all(dir + "/ckpt");
  config::JobConfig first = c;
  first.mutable_train()->set_max_steps(23);  // stops mid-epoch, checkpoint at the end
  TrainLocally(first, false);
  ASSERT_TRUE(fs::exists(dir + "/ckpt/step-23/MANIFEST"));
  const RunResult resumed = TrainLocally(c, true);
  EXPECT_EQ(resumed.params, whole.params);
  EXPECT_EQ(resumed.rows, whole.rows);
}

TEST(TrainerTest, ResumeWithoutCheckpointSaysSo) {
  const std::string dir = FreshDir("nockpt");
  WriteData(dir, 50, 3);
  config::JobConfig c = Config(dir, "base {}");
  ps::RuntimeOptions o;
  o.tables = config::ToPsTables(c);
  std::unique_ptr<ps::JobRuntime> job;
  ASSERT_TRUE(ps::JobRuntime::CreateLocal(o, &job).ok());
  TrainerOptions options;
  options.resume = true;
  Trainer trainer(job.get(), c, options);
  ASSERT_TRUE(trainer.Init().ok());
  const Status st = trainer.Train();
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
  EXPECT_NE(st.message().find("no LATEST"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace attnps::worker
