// Every file of a 2-server checkpoint step directory, deleted, truncated (to nothing and to half),
// bit-flipped, or swapped in from another step, is refused by eval and by resume with a message
// naming it; so are an extra file and an extra shard directory. The other step stays loadable.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "tests/worker/local_job.h"
#include "worker/checkpoint.h"

namespace attnps::worker {
namespace {

namespace fs = std::filesystem;
using testing_local::Config;
using testing_local::RunLocally;
using testing_local::WriteData;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<std::string> FilesUnder(const fs::path& root) {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), root).generic_string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class CheckpointCorruptionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // ctest runs each test in its own process, two at a time: one directory per process.
    dir_ = new std::string(testing::TempDir() + "/corruption_" + std::to_string(::getpid()));
    fs::remove_all(*dir_);
    WriteData(*dir_, 400, 7);
    config::JobConfig c = Config(*dir_, "din {}");
    c.mutable_train()->set_max_steps(20);
    c.mutable_checkpoint()->set_every_steps(10);
    TrainerOptions train;
    const Status st = RunLocally(c, train, /*servers=*/2);
    ASSERT_TRUE(st.ok()) << st.ToString();
    fs::copy(*dir_ + "/ckpt/step-20", *dir_ + "/pristine", fs::copy_options::recursive);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    ASSERT_TRUE(fs::exists(*dir_ + "/pristine")) << "the suite's training failed";
    Restore();
  }
  static std::string Step20() { return *dir_ + "/ckpt/step-20"; }
  static std::string Step10() { return *dir_ + "/ckpt/step-10"; }
  static void Restore() {
    fs::remove_all(Step20());
    fs::copy(*dir_ + "/pristine", Step20(), fs::copy_options::recursive);
  }

  // eval (of LATEST = step-20) and resume must both refuse, naming `name`.
  static void ExpectRefused(const std::string& variant, const std::string& name) {
    config::JobConfig c = Config(*dir_, "din {}");
    c.mutable_train()->set_max_steps(30);
    TrainerOptions eval;
    eval.kind = JobKind::kEval;
    TrainerOptions resume;
    resume.resume = true;
    for (const TrainerOptions& o : {eval, resume}) {
      const Status st = RunLocally(c, o, /*servers=*/2);
      const char* what = o.resume ? "resume" : "eval";
      EXPECT_FALSE(st.ok()) << variant << ": " << what << " loaded it";
      EXPECT_NE(st.message().find(name), std::string::npos)
          << variant << ": " << what << " did not name " << name << ": " << st.ToString();
    }
  }
  static Status EvalOf(const std::string& step_dir) {
    TrainerOptions eval;
    eval.kind = JobKind::kEval;
    eval.checkpoint_step = step_dir;
    return RunLocally(Config(*dir_, "din {}"), eval, /*servers=*/1);
  }

  static std::string* dir_;
};
std::string* CheckpointCorruptionTest::dir_ = nullptr;

TEST_F(CheckpointCorruptionTest, TheIntactCheckpointLoadsWithEitherServerCount) {
  EXPECT_TRUE(EvalOf(Step20()).ok());
  TrainerOptions eval;
  eval.kind = JobKind::kEval;
  EXPECT_TRUE(RunLocally(Config(*dir_, "din {}"), eval, /*servers=*/2).ok());
}

TEST_F(CheckpointCorruptionTest, EveryFileDeletedTruncatedFlippedOrSwappedIsRefusedByName) {
  const std::vector<std::string> files = FilesUnder(Step20());
  ASSERT_GE(files.size(), 6u);
  int servers_seen = 0;
  for (const std::string& f : files) servers_seen += f.rfind("server-1/", 0) == 0;
  ASSERT_GT(servers_seen, 0) << "expected shards of 2 servers";
  int refused = 0, identical_swaps = 0;
  for (const std::string& f : files) {
    SCOPED_TRACE(f);
    const fs::path path = fs::path(Step20()) / f;
    const std::string bytes = ReadAll(path);
    const std::string name = f;  // the message names the file by its path in the step directory
    std::vector<std::pair<std::string, std::function<void()>>> variants = {
        {"deleted", [&] { fs::remove(path); }},
        {"truncated to nothing", [&] { WriteAll(path, ""); }},
    };
    if (bytes.size() > 1) {
      variants.push_back(
          {"truncated to half", [&] { WriteAll(path, bytes.substr(0, bytes.size() / 2)); }});
    }
    if (!bytes.empty()) {
      variants.push_back({"one bit flipped", [&] {
                            std::string b = bytes;
                            b[b.size() / 2] ^= 0x10;
                            WriteAll(path, b);
                          }});
    }
    const fs::path older = fs::path(Step10()) / f;
    if (fs::exists(older) && ReadAll(older) != bytes) {
      variants.push_back({"swapped in from step-10", [&] {
                            fs::copy_file(older, path, fs::copy_options::overwrite_existing);
                          }});
    } else {
      ++identical_swaps;  // the same bytes in both steps (or absent there): nothing to swap
    }
    for (auto& [variant, apply] : variants) {
      if (bytes.empty() && variant == "truncated to nothing") continue;  // no change
      Restore();
      apply();
      ExpectRefused(f + " " + variant, name);
      ++refused;
    }
    EXPECT_TRUE(EvalOf(Step10()).ok()) << "step-10 no longer loads with " << f << " damaged";
  }
  Restore();
  EXPECT_TRUE(EvalOf(Step20()).ok());
  std::printf("refused %d damaged variants of %zu files (%d files identical in both steps)\n",
              refused, files.size(), identical_swaps);
}

TEST_F(CheckpointCorruptionTest, AnExtraFileOrShardDirectoryIsRefusedByName) {
  WriteAll(fs::path(Step20()) / "notes.txt", "x");
  ExpectRefused("extra file", "notes.txt");
  Restore();
  fs::copy(fs::path(Step20()) / "server-1", fs::path(Step20()) / "server-2",
           fs::copy_options::recursive);
  ExpectRefused("extra server directory", "server-2");
  Restore();
  fs::create_directories(fs::path(Step20()) / "server-0" / "shard-9");
  ExpectRefused("extra empty shard directory", "shard-9");
}

TEST_F(CheckpointCorruptionTest, AMissingShardDirectoryIsRefusedByName) {
  fs::remove_all(fs::path(Step20()) / "server-1");
  ExpectRefused("server-1 deleted", "server-1/");
}

TEST_F(CheckpointCorruptionTest, ResumeFromTheOlderStepRecoversWhileTheNewerIsDamaged) {
  fs::remove(fs::path(Step20()) / "dense.bin");
  config::JobConfig c = Config(*dir_, "din {}");
  c.mutable_train()->set_max_steps(15);
  TrainerOptions resume;
  resume.resume = true;
  resume.checkpoint_step = Step10();
  const Status st = RunLocally(c, resume, /*servers=*/2);
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::string latest;
  ASSERT_TRUE(ReadLatest(*dir_ + "/ckpt", &latest).ok());
  EXPECT_EQ(fs::path(latest).filename(), "step-15");
  EXPECT_TRUE(EvalOf(latest).ok());
  fs::remove_all(latest);
  ASSERT_TRUE(PublishLatest(*dir_ + "/ckpt", "step-20").ok());
}

}  // namespace
}  // namespace attnps::worker
