// End to end on a small generated CTR file in local mode: determinism, resume, checkpoint files.
#include "worker/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ps/sharding.h"
#include "tests/worker/local_job.h"
#include "worker/checkpoint.h"
#include "worker/config/job_config.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;

using testing_local::Config;
using testing_local::WriteData;

struct RunResult {
  std::vector<float> params;
  std::vector<float> rows;  // item rows of keys 1..100
  metrics::Record eval;
};

RunResult TrainLocally(config::JobConfig c, bool resume, bool serve_inline = false) {
  ps::RuntimeOptions o;
  o.servers = 2;
  o.serve_inline = serve_inline;
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

// Local mode's servers served on the trainer's thread (staleness 0, as attnps runs them) train
// the very same weights as server threads, checkpoints and a resume included.
TEST(TrainerTest, InlineServersTrainLikeServerThreads) {
  const std::string dir = FreshDir("inline");
  WriteData(dir, 600, 2);
  config::JobConfig c = Config(dir, "din {}");
  const RunResult threads = TrainLocally(c, false, false);
  fs::remove_all(dir + "/ckpt");
  const RunResult whole = TrainLocally(c, false, true);
  EXPECT_EQ(whole.params, threads.params);
  EXPECT_EQ(whole.rows, threads.rows);
  fs::remove_all(dir + "/ckpt");
  config::JobConfig first = c;
  first.mutable_train()->set_max_steps(23);
  TrainLocally(first, false, true);
  ASSERT_TRUE(fs::exists(dir + "/ckpt/step-23/MANIFEST"));
  const RunResult resumed = TrainLocally(c, true, true);
  EXPECT_EQ(resumed.params, threads.params);
  EXPECT_EQ(resumed.rows, threads.rows);
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

TEST(TrainerTest, AResumeFromTheLastStepOfAnEpochEndsWithTheUninterruptedWeights) {
  const std::string dir = FreshDir("resume_epoch_end");
  WriteData(dir, 600, 2);
  config::JobConfig c = Config(dir, "base {}");
  const RunResult whole = TrainLocally(c, false);  // 2 epochs of 38 steps (600 / 16)
  fs::remove_all(dir + "/ckpt");
  config::JobConfig first = c;
  first.mutable_train()->set_max_steps(38);  // the checkpoint's reader is at the next epoch
  TrainLocally(first, false);
  ASSERT_TRUE(fs::exists(dir + "/ckpt/step-38/MANIFEST"));
  const RunResult resumed = TrainLocally(c, true);
  EXPECT_EQ(resumed.params, whole.params) << "an extra epoch was trained";
  std::string latest;
  ASSERT_TRUE(ReadLatest(dir + "/ckpt", &latest).ok());
  EXPECT_EQ(fs::path(latest).filename(), "step-76");
}

TEST(TrainerTest, AResumeRefusesAnotherSampleOrder) {
  const std::string dir = FreshDir("resume_order");
  WriteData(dir, 300, 2);
  config::JobConfig c = Config(dir, "base {}");
  c.mutable_train()->set_max_steps(5);
  TrainLocally(c, false);
  c.mutable_data()->set_shuffle_buffer(32);
  c.mutable_train()->set_max_steps(10);
  TrainerOptions resume;
  resume.resume = true;
  const Status st = testing_local::RunLocally(c, resume);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("data.shuffle_buffer: 64 in the checkpoint, 32 now"),
            std::string::npos)
      << st.ToString();
}

TEST(TrainerTest, ResumeWithoutCheckpointSaysSoAtInit) {
  const std::string dir = FreshDir("nockpt");
  WriteData(dir, 50, 3);
  config::JobConfig c = Config(dir, "base {}");
  std::unique_ptr<ps::JobRuntime> job = testing_local::LocalRuntime(c, 1);
  TrainerOptions options;
  options.resume = true;
  Trainer trainer(job.get(), c, options);
  const Status st = trainer.Init();
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
  EXPECT_NE(st.message().find("no LATEST"), std::string::npos) << st.ToString();
}

TEST(TrainerTest, MetricsRecordsCarryTheStepTimeSplitAndTheBytesMoved) {
  const std::string dir = FreshDir("timings");
  WriteData(dir, 300, 4);
  config::JobConfig c = Config(dir, "din {}");
  c.mutable_metrics()->set_out_path(dir + "/metrics.jsonl");
  c.mutable_checkpoint()->clear_dir();
  TrainerOptions options;
  options.metrics_out = c.metrics().out_path();
  ASSERT_TRUE(testing_local::RunLocally(c, options).ok());
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  auto field = [&](const std::string& name) {
    const size_t at = line.find("\"" + name + "\":");
    EXPECT_NE(at, std::string::npos) << name << " missing in " << line;
    return at == std::string::npos ? -1.0 : std::atof(line.c_str() + at + name.size() + 3);
  };
  for (const char* phase : {"step_ms_data", "step_ms_pull_wait", "step_ms_compute", "step_ms_push",
                            "step_ms_allreduce", "step_ms_dense_update"}) {
    EXPECT_GE(field(phase), 0) << phase;
  }
  EXPECT_GT(field("step_ms_compute"), 0);
  // Each step pulls and pushes its unique keys of 2 tables of dim 4: 8 + 16 bytes per key.
  const double pulled = field("pulled_bytes");
  EXPECT_GT(pulled, 0);
  EXPECT_EQ(pulled, field("pushed_bytes"));
}

// A metrics field's value in a JSON line; -1 when it is missing.
double Field(const std::string& line, const std::string& name) {
  const size_t at = line.find("\"" + name + "\":");
  return at == std::string::npos ? -1.0 : std::atof(line.c_str() + at + name.size() + 3);
}

// The first metrics record of a 2-server DIN job on data whose item and category ids are mapped
// through `id` (a function of the id in WriteData's file).
std::string FirstRecordOfAJobOn(const std::string& name, uint64_t (*id)(uint64_t)) {
  const std::string dir = FreshDir(name);
  WriteData(dir, 400, 6);
  std::ifstream in(dir + "/train.tsv");
  std::ofstream out(dir + "/mapped.tsv");
  std::string line;
  while (std::getline(in, line)) {
    size_t start = 0;
    for (int column = 0; start <= line.size(); ++column) {  // empty fields kept
      const size_t end = std::min(line.find('\t', start), line.size());
      const std::string field = line.substr(start, end - start);
      start = end + 1;
      if (column > 0) out << '\t';
      if (column < 2) {  // label, user
        out << field;
        continue;
      }
      std::istringstream ids(field);
      std::string one;
      for (int i = 0; std::getline(ids, one, ','); ++i)
        out << (i ? "," : "") << id(std::stoull(one));
    }
    out << '\n';
  }
  out.close();
  fs::rename(dir + "/mapped.tsv", dir + "/train.tsv");
  config::JobConfig c = Config(dir, "din {}");
  c.mutable_checkpoint()->clear_dir();
  TrainerOptions options;
  options.metrics_out = dir + "/metrics.jsonl";
  const Status st = testing_local::RunLocally(c, options);
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::ifstream metrics(options.metrics_out);
  std::getline(metrics, line);
  return line;
}

// The i-th key (from 1) that server 0 of 2 owns.
uint64_t OnServer0(uint64_t i) {
  uint64_t k = 0;
  for (uint64_t found = 0; found < i;) found += ps::ServerOf(++k, 2) == 0;
  return k;
}

TEST(TrainerTest, PerServerTrafficShowsASkewedShard) {
  const std::string even = FirstRecordOfAJobOn("traffic_even", [](uint64_t k) { return k; });
  const std::string skewed = FirstRecordOfAJobOn("traffic_skewed", OnServer0);
  for (const std::string& line : {even, skewed}) {
    for (const char* f : {"s0_sent_bytes", "s1_sent_bytes", "s0_received_bytes", "sent_bytes",
                          "s0_sent_messages", "unique_key_ratio", "allreduce_bytes"}) {
      EXPECT_GE(Field(line, f), 0) << f << " missing in " << line;
    }
    EXPECT_NEAR(Field(line, "sent_bytes"),
                Field(line, "s0_sent_bytes") + Field(line, "s1_sent_bytes"),
                1e-3 * Field(line, "sent_bytes"));
    EXPECT_GT(Field(line, "unique_key_ratio"), 0);
    EXPECT_LE(Field(line, "unique_key_ratio"), 1);
  }
  const double even_ratio = Field(even, "s0_sent_bytes") / Field(even, "s1_sent_bytes");
  EXPECT_GT(even_ratio, 0.6) << even;
  EXPECT_LT(even_ratio, 1.6) << even;
  // Every key on server 0: server 1 gets no pulls or pushes, and its bytes show it.
  EXPECT_GT(Field(skewed, "s0_sent_bytes"), 20 * Field(skewed, "s1_sent_bytes")) << skewed;
  EXPECT_GT(Field(skewed, "s0_received_bytes"), 20 * Field(skewed, "s1_received_bytes")) << skewed;
}

TEST(TrainerTest, AMetricSwitchedOffIsNotReported) {
  const std::string dir = FreshDir("metric_off");
  WriteData(dir, 200, 5);
  config::JobConfig c = Config(dir, "base {}");
  c.mutable_metrics()->set_gauc(false);
  c.mutable_checkpoint()->clear_dir();
  TrainerOptions options;
  options.metrics_out = dir + "/metrics.jsonl";
  ASSERT_TRUE(testing_local::RunLocally(c, options).ok());
  std::ifstream in(options.metrics_out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_NE(line.find("\"gauc\":null"), std::string::npos) << line;
  EXPECT_EQ(line.find("\"auc\":null"), std::string::npos) << line;
  std::unique_ptr<ps::JobRuntime> job = testing_local::LocalRuntime(c, 1);
  Trainer trainer(job.get(), c, TrainerOptions());
  metrics::Record r;
  r.auc = 0.5;
  r.gauc = 0.6;
  r.logloss = 0.7;
  EXPECT_EQ(trainer.MetricsText(r, 2), " auc=0.50 logloss=0.70");
  EXPECT_TRUE(job->Finish().ok());
}

}  // namespace
}  // namespace attnps::worker
