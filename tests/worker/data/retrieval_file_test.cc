#include "worker/data/retrieval_file.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/worker/data/test_util.h"
#include "worker/data/sample.h"

namespace attnps::data {
namespace {

using testing_util::FreshDir;
using testing_util::ReadLines;
using testing_util::WriteFile;

// Users 1..n, user u with u + 2 items u*100 + 1, ... (categories item % 7 + 1).
std::string Sequences(int n) {
  std::string out;
  for (int u = 1; u <= n; ++u) {
    RetrievalSample s;
    s.user = u;
    for (int i = 1; i <= u % 9 + 3; ++i) {
      s.items.push_back(u * 100 + i);
      s.cates.push_back((u * 100 + i) % 7 + 1);
    }
    AppendRetrievalLine(s, &out);
  }
  return out;
}

std::vector<CtrSample> ReadAll(const std::string& path, int extra_columns) {
  std::vector<CtrSample> out;
  for (const std::string& line : ReadLines(path)) {
    CtrSample s;
    EXPECT_TRUE(ParseCtrLine(line, extra_columns, &s).ok()) << line;
    out.push_back(s);
  }
  return out;
}

TEST(RetrievalFileTest, WritesEveryTrainUsersNextItemExamplesOnce) {
  const std::string dir = FreshDir("d");
  WriteFile(dir + "/sequences.tsv", Sequences(300));
  RetrievalTrainOptions o;
  o.window = 4;
  o.min_history = 2;
  o.split.test_fraction = 0.2;
  RetrievalTrainStats stats;
  ASSERT_TRUE(WriteRetrievalTrainFile(dir + "/sequences.tsv", o, dir + "/train.tsv", &stats).ok());
  EXPECT_EQ(stats.lines, 300u);
  EXPECT_EQ(stats.train_users + stats.held_out_users, 300u);
  EXPECT_GT(stats.held_out_users, 30u);
  const std::vector<CtrSample> rows = ReadAll(dir + "/train.tsv", 0);
  EXPECT_EQ(rows.size(), stats.examples);
  uint64_t want = 0;
  for (uint64_t u = 1; u <= 300; ++u) {
    if (GroupOfUser(u, o.split) == UserGroup::kTrain) want += u % 9 + 3 - 2;
  }
  EXPECT_EQ(stats.examples, want);
  for (const CtrSample& r : rows) {
    EXPECT_EQ(r.label, 1.0f);
    EXPECT_EQ(GroupOfUser(r.user, o.split), UserGroup::kTrain);
    ASSERT_FALSE(r.hist_items.empty());
    EXPECT_LE(r.hist_items.size(), 4u);
    EXPECT_EQ(r.item, r.hist_items.back() + 1);  // the next item of the user
    EXPECT_EQ(r.cate, r.item % 7 + 1);
    EXPECT_GE(r.item % 100, 3u);  // min_history 2: the first target is the third item
  }
  // Shuffled: not in the users' order.
  EXPECT_FALSE(std::is_sorted(rows.begin(), rows.end(), [](const CtrSample& a, const CtrSample& b) {
    return a.user < b.user;
  }));
  // The same options write the same file.
  ASSERT_TRUE(WriteRetrievalTrainFile(dir + "/sequences.tsv", o, dir + "/again.tsv", &stats).ok());
  EXPECT_EQ(ReadLines(dir + "/again.tsv"), ReadLines(dir + "/train.tsv"));
}

TEST(RetrievalFileTest, EncoderWindowsCarryEveryTargetInTheExtraFields) {
  const std::string dir = FreshDir("d");
  WriteFile(dir + "/sequences.tsv", Sequences(50));
  RetrievalTrainOptions o;
  o.window = 3;
  o.sequence_windows = true;
  o.split.valid_fraction = 0;
  o.split.test_fraction = 0;
  RetrievalTrainStats stats;
  ASSERT_TRUE(WriteRetrievalTrainFile(dir + "/sequences.tsv", o, dir + "/train.tsv", &stats).ok());
  uint64_t targets = 0;
  for (const CtrSample& r : ReadAll(dir + "/train.tsv", 2)) {
    ASSERT_EQ(r.extra.size(), 2u);
    ASSERT_EQ(r.extra[0].size(), r.hist_items.size());
    for (size_t i = 0; i < r.hist_items.size(); ++i) {
      EXPECT_EQ(r.extra[0][i], r.hist_items[i] + 1);
      EXPECT_EQ(r.extra[1][i], r.extra[0][i] % 7 + 1);
    }
    EXPECT_EQ(r.item, r.extra[0].back());
    targets += r.extra[0].size();
  }
  uint64_t want = 0;
  for (int u = 1; u <= 50; ++u) want += u % 9 + 3 - 1;  // every item but the first
  EXPECT_EQ(targets, want);
}

TEST(RetrievalFileTest, MalformedLinesAreSkippedAndTooManyFailNamingTheLine) {
  const std::string dir = FreshDir("d");
  const std::string good = Sequences(3);
  WriteFile(dir + "/sequences.tsv", good + "7\t1,x\t1,1\n\n" + "8\t1,2\n");
  RetrievalTrainOptions o;
  o.split.test_fraction = 0;
  o.split.valid_fraction = 0;
  o.max_bad_fraction = 0.5;
  RetrievalTrainStats stats;
  ASSERT_TRUE(WriteRetrievalTrainFile(dir + "/sequences.tsv", o, dir + "/train.tsv", &stats).ok());
  EXPECT_EQ(stats.bad_lines, 2u);
  EXPECT_EQ(stats.lines, 5u);
  EXPECT_EQ(stats.train_users, 3u);
  o.max_bad_fraction = 0.1;
  const Status s = WriteRetrievalTrainFile(dir + "/sequences.tsv", o, dir + "/bad.tsv", &stats);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("sequences.tsv:4: field 2 (items)"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.tsv"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.tsv.tmp"));
}

TEST(RetrievalFileTest, BadOptionsAndAMissingFileAreRefused) {
  RetrievalTrainOptions o;
  RetrievalTrainStats stats;
  o.window = 0;
  EXPECT_NE(WriteRetrievalTrainFile("x", o, "y", &stats).message().find("window"),
            std::string::npos);
  o.window = 5;
  o.min_history = 0;
  EXPECT_NE(ValidateRetrievalTrainOptions(o).message().find("min_history"), std::string::npos);
  o.min_history = 1;
  o.split.test_fraction = 2;
  EXPECT_NE(ValidateRetrievalTrainOptions(o).message().find("test_fraction"), std::string::npos);
  o.split.test_fraction = 0.1;
  EXPECT_EQ(WriteRetrievalTrainFile(FreshDir("d") + "/none.tsv", o, "y", &stats).code(),
            Status::Code::kNotFound);
}

}  // namespace
}  // namespace attnps::data
