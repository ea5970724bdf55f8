// A careless or hostile user's mistakes are refused at start with a message naming the setting,
// file or directory, and never cost them saved state (issue "Trust", examples 4, 5, 7-10, 12).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/worker/local_job.h"
#include "worker/checkpoint.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;
using testing_local::Config;
using testing_local::RunLocally;
using testing_local::WriteData;

std::string FreshDir(const std::string& name) {
  const std::string dir = testing::TempDir() + "/trust_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A trained job in dir: checkpoints at steps 10 and 20 (LATEST = step-20).
config::JobConfig Trained(const std::string& dir, const std::string& model = "din {}") {
  WriteData(dir, 400, 11);
  config::JobConfig c = Config(dir, model);
  c.mutable_train()->set_max_steps(20);
  c.mutable_checkpoint()->set_every_steps(10);
  const Status st = RunLocally(c, TrainerOptions());
  EXPECT_TRUE(st.ok()) << st.ToString();
  return c;
}

TrainerOptions Kind(JobKind kind) {
  TrainerOptions o;
  o.kind = kind;
  return o;
}

void ExpectError(const Status& st, const std::vector<std::string>& parts) {
  ASSERT_FALSE(st.ok());
  for (const std::string& p : parts) {
    EXPECT_NE(st.message().find(p), std::string::npos) << "no \"" << p << "\" in " << st.ToString();
  }
}

TEST(DirectoryLockTest, ASecondHolderIsRefusedNamingTheDirectoryAndTheHolder) {
  const std::string dir = FreshDir("lock") + "/ckpt";
  std::unique_ptr<DirectoryLock> first, second;
  ASSERT_TRUE(DirectoryLock::Acquire(dir, &first).ok());
  const Status st = DirectoryLock::Acquire(dir, &second);
  ExpectError(st, {dir, "in use", "pid " + std::to_string(::getpid()), "host "});
  first.reset();
  EXPECT_TRUE(DirectoryLock::Acquire(dir, &second).ok()) << "the lock outlived its holder";
}

TEST(TrustTest, ASecondTrainingOfTheSameDirectoryIsRefusedWhileTheFirstRuns) {
  const std::string dir = FreshDir("two_jobs");
  WriteData(dir, 100, 1);
  const config::JobConfig c = Config(dir, "base {}");
  std::unique_ptr<ps::JobRuntime> job = testing_local::LocalRuntime(c, 1);
  Trainer first(job.get(), c, TrainerOptions());
  ASSERT_TRUE(first.Init().ok());  // holds the lock until destroyed
  const Status st = RunLocally(c, TrainerOptions(), 1);
  ExpectError(st, {dir + "/ckpt", "in use by another training job", "pid "});
  EXPECT_TRUE(job->Finish().ok());
}

TEST(TrustTest, ANewRunIntoADirectoryWithCheckpointsIsRefusedAndDeletesNothing) {
  const std::string dir = FreshDir("no_overwrite");
  const config::JobConfig c = Trained(dir);
  ExpectError(RunLocally(c, TrainerOptions()), {dir + "/ckpt", "already holds checkpoints",
                                                "LATEST -> step-20", "--resume", "--overwrite"});
  EXPECT_TRUE(fs::exists(dir + "/ckpt/step-10/MANIFEST"));
  config::CheckpointManifest m;
  EXPECT_TRUE(VerifyCheckpoint(dir + "/ckpt/step-20", &m).ok());
  TrainerOptions overwrite;
  overwrite.overwrite = true;
  config::JobConfig shorter = c;
  shorter.mutable_train()->set_max_steps(5);
  ASSERT_TRUE(RunLocally(shorter, overwrite).ok());
  EXPECT_FALSE(fs::exists(dir + "/ckpt/step-10"));
  std::string latest;
  ASSERT_TRUE(ReadLatest(dir + "/ckpt", &latest).ok());
  EXPECT_EQ(fs::path(latest).filename(), "step-5");
}

TEST(TrustTest, OverwriteDeletesOnlyOnceTheJobStartsTraining) {
  const std::string dir = FreshDir("overwrite_late");
  const config::JobConfig c = Trained(dir);
  TrainerOptions overwrite;
  overwrite.overwrite = true;
  std::unique_ptr<ps::JobRuntime> job = testing_local::LocalRuntime(c, 1);
  {
    Trainer trainer(job.get(), c, overwrite);
    ASSERT_TRUE(trainer.Init().ok());  // another worker could still fail its start checks here
    EXPECT_TRUE(fs::exists(dir + "/ckpt/step-20/MANIFEST")) << "deleted before the job started";
  }
  EXPECT_TRUE(job->Finish().ok());
}

TEST(TrustTest, ResumeFromAnOlderStepMovesLatestAndKeepsTheNewerSteps) {
  const std::string dir = FreshDir("older_step");
  config::JobConfig c = Trained(dir);  // step-10, step-20
  TrainerOptions resume;
  resume.resume = true;
  resume.checkpoint_step = dir + "/ckpt/step-10";
  c.mutable_train()->set_max_steps(15);
  c.mutable_checkpoint()->set_keep_last(1);
  ASSERT_TRUE(RunLocally(c, resume).ok());
  std::string latest;
  ASSERT_TRUE(ReadLatest(dir + "/ckpt", &latest).ok());
  EXPECT_EQ(fs::path(latest).filename(), "step-15");
  EXPECT_FALSE(fs::exists(dir + "/ckpt/step-10")) << "pruned: older than LATEST, keep_last 1";
  EXPECT_TRUE(fs::exists(dir + "/ckpt/step-20/MANIFEST")) << "newer steps are not pruned";
  // A resume from a step directory of another checkpoint.dir would mix two runs in this one.
  const std::string other = FreshDir("older_step_other");
  WriteData(other, 400, 11);
  config::JobConfig elsewhere = Config(other, "din {}");
  elsewhere.mutable_train()->set_max_steps(5);
  ASSERT_TRUE(RunLocally(elsewhere, TrainerOptions()).ok());
  resume.checkpoint_step = other + "/ckpt/step-5";
  ExpectError(RunLocally(c, resume), {"already holds checkpoints", "of another run"});
}

TEST(TrustTest, EvalAndResumeRefuseACheckpointOfAnotherModelListingTheFields) {
  const std::string dir = FreshDir("config_mismatch");
  const config::JobConfig c = Trained(dir);
  config::JobConfig softmax = c;
  softmax.mutable_model()->mutable_din()->set_attention_normalization(config::DinModel::SOFTMAX);
  ExpectError(RunLocally(softmax, Kind(JobKind::kEval)),
              {"step-20", "model.din.attention_normalization", "NONE", "SOFTMAX"});
  config::JobConfig swapped = c;
  swapped.mutable_features()->set_item_table("cate");
  swapped.mutable_features()->set_cate_table("item");
  TrainerOptions resume;
  resume.resume = true;
  ExpectError(RunLocally(swapped, resume), {"features.item_table", "features.cate_table"});
  config::JobConfig longer = c;  // settings that may change: accepted
  longer.mutable_train()->set_max_steps(25);
  longer.mutable_dense_optimizer()->set_learning_rate(0.002f);
  const Status st = RunLocally(longer, resume, /*servers=*/1);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(TrustTest, PredictWritesOneLinePerInputLineWithNanForBadOnes) {
  const std::string dir = FreshDir("predict");
  config::JobConfig c = Trained(dir);
  c.mutable_data()->set_max_bad_fraction(0.5);  // 1 malformed line of 3 (the blank one is free)
  const std::string in = dir + "/in.tsv", out = dir + "/out/scores.txt";
  std::ifstream train(dir + "/train.tsv");
  std::string good1, good2;
  std::getline(train, good1);
  std::getline(train, good2);
  std::ofstream(in) << good1 << "\n\nnot\ta\tsample\n" << good2 << "\n";
  TrainerOptions o = Kind(JobKind::kPredict);
  o.predict_input = in;
  o.predict_output = out;
  std::unique_ptr<ps::JobRuntime> job = testing_local::LocalRuntime(c, 2);
  Trainer trainer(job.get(), c, o);
  ASSERT_TRUE(trainer.Init().ok());
  ASSERT_TRUE(trainer.LoadForInference().ok());
  int64_t rows = 0;
  const Status st = trainer.Predict(in, out, &rows);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(job->Finish().ok());
  EXPECT_EQ(rows, 2);
  std::ifstream scores(out);
  std::vector<std::string> lines;
  for (std::string l; std::getline(scores, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1], "nan");
  EXPECT_EQ(lines[2], "nan");
  for (int i : {0, 3}) {
    const double p = std::stod(lines[i]);
    EXPECT_TRUE(p > 0 && p < 1) << lines[i];
  }
}

TEST(TrustTest, ALossThatBecomesNanStopsTrainingNamingTheStepBeforeACheckpoint) {
  const std::string dir = FreshDir("diverge");
  WriteData(dir, 400, 4);
  config::JobConfig c = Config(dir, "base {}");
  // Bypasses validation (which refuses it) to make training diverge.
  c.mutable_dense_optimizer()->set_kind(config::DenseOptimizerConfig::SGD);
  c.mutable_dense_optimizer()->set_learning_rate(1e30f);
  c.mutable_checkpoint()->set_every_steps(1);
  const Status st = RunLocally(c, TrainerOptions());
  ExpectError(st, {"training diverged at step ", "before writing a checkpoint"});
  const size_t at = st.message().find("at step ") + 8;
  const int step = std::atoi(st.message().c_str() + at);
  EXPECT_FALSE(fs::exists(dir + "/ckpt/" + StepDirName(step))) << st.ToString();
  std::string latest;
  if (ReadLatest(dir + "/ckpt", &latest).ok()) {
    EXPECT_LT(std::atoi(fs::path(latest).filename().c_str() + 5), step);
  }
}

TEST(TrustTest, EveryPathIsCheckedAtStartNamingTheSetting) {
  const std::string dir = FreshDir("paths");
  WriteData(dir, 100, 5);
  const config::JobConfig good = Config(dir, "base {}");
  config::JobConfig c = good;
  c.mutable_data()->set_test_path(dir + "/missing_test.tsv");
  ExpectError(RunLocally(c, TrainerOptions()), {"data.test_path", "missing_test.tsv"});
  EXPECT_FALSE(fs::exists(dir + "/ckpt/LATEST")) << "trained before noticing";
  c = good;
  c.mutable_data()->set_train_path(dir);
  ExpectError(RunLocally(c, TrainerOptions()), {"data.train_path", "not a regular file"});
  const std::string under_a_file = dir + "/train.tsv/sub";  // a file where a directory must be
  c = good;
  c.mutable_metrics()->set_out_path(under_a_file + "/m.jsonl");
  ExpectError(RunLocally(c, TrainerOptions()), {"metrics.out_path", under_a_file});
  c = good;
  c.mutable_checkpoint()->set_dir(under_a_file);
  ExpectError(RunLocally(c, TrainerOptions()), {under_a_file});
  TrainerOptions predict = Kind(JobKind::kPredict);
  predict.predict_input = dir + "/train.tsv";
  predict.predict_output = under_a_file + "/p.txt";
  ExpectError(RunLocally(good, predict), {"--output", under_a_file});
}

TEST(TrustTest, AnEmptyOrBlankTrainFileIsAnError) {
  const std::string dir = FreshDir("empty");
  WriteData(dir, 10, 6);
  config::JobConfig c = Config(dir, "base {}");
  std::ofstream(dir + "/train.tsv", std::ios::trunc);
  ExpectError(RunLocally(c, TrainerOptions()), {"data.train_path", "is empty"});
  std::ofstream(dir + "/train.tsv", std::ios::trunc) << "\n\n\n";
  c.mutable_data()->set_max_bad_fraction(1);
  ExpectError(RunLocally(c, TrainerOptions()), {"data.train_path", "no valid sample"});
}

TEST(TrustTest, LatestMustNameAStepDirectoryInsideTheCheckpointDirectory) {
  const std::string dir = FreshDir("latest");
  std::string step;
  std::ofstream(dir + "/LATEST") << "step-../../etc\n";
  ExpectError(ReadLatest(dir, &step), {"LATEST", "must hold step-<N>"});
  std::ofstream(dir + "/LATEST", std::ios::trunc) << "/etc/passwd";
  EXPECT_FALSE(ReadLatest(dir, &step).ok());
  std::ofstream(dir + "/LATEST", std::ios::trunc) << "step-12\x1b[2J\n";
  const Status st = ReadLatest(dir, &step);
  EXPECT_EQ(st.ToString().find('\x1b'), std::string::npos) << "raw bytes in the message";
  std::ofstream(dir + "/LATEST", std::ios::trunc) << "step-12\r\n";  // edited on Windows
  ASSERT_TRUE(ReadLatest(dir, &step).ok());
  EXPECT_EQ(step, dir + "/step-12");
}

}  // namespace
}  // namespace attnps::worker
