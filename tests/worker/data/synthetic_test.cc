#include "worker/data/synthetic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/worker/data/test_util.h"
#include "worker/data/prepare.h"
#include "worker/data/sample.h"

namespace attnps::data {
namespace {

using testing_util::FreshDir;
using testing_util::ReadFile;
using testing_util::ReadLines;

PrepareOptions SmallSynthetic(const std::string& out) {
  PrepareOptions o;
  o.format = "synthetic";
  o.out = out;
  o.seed = 11;
  o.progress = false;
  o.synthetic.users = 400;
  o.synthetic.items = 3000;
  o.synthetic.clusters = 30;
  o.synthetic.events_per_user = 30;
  o.shuffle_memory_bytes = 64 << 10;  // exercise the bucket spill path
  return o;
}

// Fraction of samples whose target category occurs in their history.
double CateInHistoryRate(const std::vector<CtrSample>& samples, float label) {
  int n = 0, hit = 0;
  for (const CtrSample& s : samples) {
    if (s.label != label) continue;
    ++n;
    hit += std::count(s.hist_cates.begin(), s.hist_cates.end(), s.cate) > 0;
  }
  return n == 0 ? 0 : static_cast<double>(hit) / n;
}

std::vector<CtrSample> ReadCtr(const std::string& path) {
  std::vector<CtrSample> out;
  CtrFileReader reader;
  EXPECT_TRUE(reader.Open(path, {}).ok());
  CtrSample s;
  bool eof = false;
  while (reader.Next(&s, &eof).ok() && !eof) out.push_back(s);
  return out;
}

TEST(SyntheticTest, StreamsTheDinRecipeWithTheExpectedRowCounts) {
  std::string dir = FreshDir("d");
  PrepareOptions o = SmallSynthetic(dir);
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::vector<std::string> seq_lines = ReadLines(dir + "/sequences.tsv");
  ASSERT_EQ(seq_lines.size(), 400u);
  uint64_t expected_train = 0;
  std::map<uint64_t, RetrievalSample> seqs;
  for (const std::string& line : seq_lines) {
    RetrievalSample s;
    ASSERT_TRUE(ParseRetrievalLine(line, &s).ok());
    ASSERT_GE(s.items.size(), 3u);
    expected_train += 2 * (s.items.size() - 2);
    seqs[s.user] = s;
  }
  EXPECT_EQ(r.train_rows, expected_train);
  EXPECT_EQ(r.test_rows, 800u);
  EXPECT_EQ(r.users, 400u);
  EXPECT_EQ(r.cates, 30u);
  EXPECT_EQ(ReadLines(dir + "/item_cates.tsv").size(), 3000u);
  std::vector<CtrSample> train = ReadCtr(dir + "/train.tsv");
  EXPECT_EQ(train.size(), expected_train);

  // Every test positive is the user's last event; every negative is outside the user's set.
  std::vector<CtrSample> test = ReadCtr(dir + "/test.tsv");
  ASSERT_EQ(test.size(), 800u);
  for (const CtrSample& s : test) {
    const RetrievalSample& seq = seqs.at(s.user);
    if (s.label == 1) {
      EXPECT_EQ(s.item, seq.items.back());
      EXPECT_EQ(s.hist_items.size(), std::min<size_t>(50, seq.items.size() - 1));
    } else {
      EXPECT_EQ(std::count(seq.items.begin(), seq.items.end(), s.item), 0);
    }
  }
}

TEST(SyntheticTest, SameSeedGivesIdenticalBytes) {
  std::string dir = FreshDir("d");
  PrepareReport r;
  PrepareOptions a = SmallSynthetic(dir + "/a");
  a.synthetic.users = 100;
  PrepareOptions b = a;
  b.out = dir + "/b";
  b.shuffle_memory_bytes = 1 << 30;  // in memory: same bytes as with spilling
  ASSERT_TRUE(Prepare(a, &r).ok());
  ASSERT_TRUE(Prepare(b, &r).ok());
  for (const char* f : {"train.tsv", "test.tsv", "sequences.tsv", "item_cates.tsv"}) {
    EXPECT_EQ(ReadFile(a.out + "/" + f), ReadFile(b.out + "/" + f)) << f;
  }
}

TEST(SyntheticTest, PositivesShareACategoryWithTheHistoryFarMoreThanNegatives) {
  for (bool popularity : {false, true}) {
    std::string dir = FreshDir(popularity ? "pop" : "uni");
    PrepareOptions o = SmallSynthetic(dir);
    o.synthetic.popularity_negatives = popularity;
    PrepareReport r;
    ASSERT_TRUE(Prepare(o, &r).ok());
    std::vector<CtrSample> train = ReadCtr(dir + "/train.tsv");
    double pos = CateInHistoryRate(train, 1), neg = CateInHistoryRate(train, 0);
    EXPECT_GT(pos, 0.8) << "popularity=" << popularity;
    EXPECT_GT(pos, neg + 0.3) << "popularity=" << popularity << " neg=" << neg;
  }
}

// Stale negatives come from clusters the user clicked earlier and no longer holds as interests:
// drawn directly, each one's cluster is such a cluster (or, with none, any popular item); in the
// files, negatives then share a category with the history at least as often as positives.
TEST(SyntheticTest, StaleNegativesComeFromDroppedClusters) {
  SyntheticOptions o;
  o.items = 3000;
  o.clusters = 30;
  o.drift = 0.3;
  const SyntheticWorld world(o, 5);
  std::mt19937_64 rng(9);
  const size_t k = static_cast<size_t>(o.interests_per_user);
  int stale_draws = 0;
  for (int u = 0; u < 50; ++u) {
    std::vector<uint64_t> items, current;
    world.DrawUser(&rng, &items, &current);
    ASSERT_EQ(current.size(), items.size() * k);
    for (size_t t = 1; t < items.size(); ++t) {
      std::vector<uint64_t> stale;
      for (size_t j = 0; j < t; ++j) {
        const uint64_t c = world.item_cate()[items[j]] - 1;
        if (std::find(current.begin() + t * k, current.begin() + (t + 1) * k, c) ==
            current.begin() + (t + 1) * k) {
          stale.push_back(c);
        }
      }
      const uint64_t c = world.item_cate()[world.DrawStaleItem(items, current, t, &rng)] - 1;
      if (stale.empty()) continue;
      ++stale_draws;
      EXPECT_NE(std::find(stale.begin(), stale.end(), c), stale.end()) << "user " << u << " t " << t;
    }
  }
  EXPECT_GT(stale_draws, 500);

  std::string dir = FreshDir("stale");
  PrepareOptions p = SmallSynthetic(dir);
  p.synthetic.drift = 0.3;
  p.synthetic.stale_negatives = true;
  PrepareReport r;
  ASSERT_TRUE(Prepare(p, &r).ok());
  std::vector<CtrSample> train = ReadCtr(dir + "/train.tsv");
  EXPECT_GT(CateInHistoryRate(train, 0), CateInHistoryRate(train, 1));
}

TEST(SyntheticTest, RejectsInvalidParameters) {
  SyntheticOptions o;
  o.items = 10;
  o.clusters = 20;
  EXPECT_FALSE(ValidateSyntheticOptions(o).ok());
  o = SyntheticOptions();
  o.drift = 1.5;
  EXPECT_FALSE(ValidateSyntheticOptions(o).ok());
  EXPECT_TRUE(ValidateSyntheticOptions(SyntheticOptions()).ok());
}

}  // namespace
}  // namespace attnps::data
