#include "worker/data/retrieval_examples.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

namespace attnps::data {
namespace {

// Items 11, 12, ... with categories 101, 102, ...
RetrievalSample Sequence(uint64_t user, size_t len) {
  RetrievalSample s;
  s.user = user;
  for (size_t i = 0; i < len; ++i) {
    s.items.push_back(11 + i);
    s.cates.push_back(101 + i);
  }
  return s;
}

std::vector<uint64_t> Ids(std::initializer_list<uint64_t> ids) { return ids; }

TEST(UserSplitTest, FractionsHoldAndEachUserHasOneGroup) {
  UserSplitOptions o;
  o.valid_fraction = 0.1;
  o.test_fraction = 0.2;
  o.seed = 7;
  ASSERT_TRUE(ValidateUserSplit(o).ok());
  int counts[3] = {0, 0, 0};
  const int users = 20000;
  for (uint64_t u = 1; u <= users; ++u) {
    const UserGroup g = GroupOfUser(u, o);
    EXPECT_EQ(g, GroupOfUser(u, o));
    ++counts[static_cast<int>(g)];
  }
  // Binomial: 3 std of 20000 draws at p = 0.2 is 170 users.
  EXPECT_NEAR(counts[static_cast<int>(UserGroup::kTest)], 0.2 * users, 170);
  EXPECT_NEAR(counts[static_cast<int>(UserGroup::kValid)], 0.1 * users, 130);
  // Another seed moves users between groups.
  UserSplitOptions other = o;
  other.seed = 8;
  int moved = 0;
  for (uint64_t u = 1; u <= 1000; ++u) moved += GroupOfUser(u, o) != GroupOfUser(u, other);
  EXPECT_GT(moved, 200);
}

TEST(UserSplitTest, BadFractionsAreRefusedByName) {
  UserSplitOptions o;
  o.valid_fraction = -0.1;
  EXPECT_NE(ValidateUserSplit(o).message().find("valid_fraction"), std::string::npos);
  o.valid_fraction = 0.5;
  o.test_fraction = 1.0;
  EXPECT_NE(ValidateUserSplit(o).message().find("test_fraction"), std::string::npos);
  o.test_fraction = 0.5;
  EXPECT_NE(ValidateUserSplit(o).message().find("valid_fraction + test_fraction"),
            std::string::npos);
}

TEST(NextItemExamplesTest, OnePerPositionWithTheLastWindowItems) {
  std::vector<RetrievalExample> out;
  CutNextItemExamples(Sequence(3, 5), /*window=*/2, /*min_history=*/1, &out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].hist_items, Ids({11}));
  EXPECT_EQ(out[0].target_items, Ids({12}));
  EXPECT_EQ(out[1].hist_items, Ids({11, 12}));
  EXPECT_EQ(out[3].hist_items, Ids({13, 14}));
  EXPECT_EQ(out[3].hist_cates, Ids({103, 104}));
  EXPECT_EQ(out[3].target_items, Ids({15}));
  EXPECT_EQ(out[3].target_cates, Ids({105}));
  EXPECT_EQ(out[3].user, 3u);
  out.clear();
  CutNextItemExamples(Sequence(3, 5), 2, /*min_history=*/4, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].target_items, Ids({15}));
  out.clear();
  CutNextItemExamples(Sequence(3, 1), 2, 1, &out);
  EXPECT_TRUE(out.empty());
}

TEST(SequenceWindowsTest, EveryPositionButTheFirstIsATargetOnce) {
  for (size_t len : {0, 1, 2, 5, 6, 7, 13}) {
    for (int window : {1, 2, 3, 50}) {
      std::vector<RetrievalExample> out;
      const RetrievalSample s = Sequence(1, len);
      CutSequenceWindows(s, window, &out);
      std::multiset<uint64_t> targets;
      for (const RetrievalExample& e : out) {
        ASSERT_EQ(e.hist_items.size(), e.target_items.size());
        ASSERT_LE(e.hist_items.size(), static_cast<size_t>(window));
        ASSERT_FALSE(e.hist_items.empty());
        for (size_t i = 0; i < e.hist_items.size(); ++i) {
          EXPECT_EQ(e.target_items[i], e.hist_items[i] + 1) << "len " << len << " w " << window;
          EXPECT_EQ(e.target_cates[i], e.hist_cates[i] + 1);
        }
        targets.insert(e.target_items.begin(), e.target_items.end());
      }
      std::multiset<uint64_t> want(s.items.begin() + std::min<size_t>(1, len), s.items.end());
      EXPECT_EQ(targets, want) << "len " << len << " window " << window;
      // Only the oldest window (the last cut) may be short.
      for (size_t i = 0; i + 1 < out.size(); ++i) {
        EXPECT_EQ(out[i].hist_items.size(), static_cast<size_t>(window));
      }
    }
  }
  std::vector<RetrievalExample> out;
  CutSequenceWindows(Sequence(1, 5), 2, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].hist_items, Ids({13, 14}));
  EXPECT_EQ(out[0].target_items, Ids({14, 15}));
  EXPECT_EQ(out[1].hist_items, Ids({11, 12}));
  EXPECT_EQ(out[1].target_items, Ids({12, 13}));
}

TEST(ComiRecQueryTest, FirstEightyPercentInTheRestToPredict) {
  RetrievalExample q;
  ASSERT_TRUE(ComiRecQuery(Sequence(9, 10), 0.8, /*window=*/50, &q));
  EXPECT_EQ(q.user, 9u);
  EXPECT_EQ(q.hist_items, Ids({11, 12, 13, 14, 15, 16, 17, 18}));
  EXPECT_EQ(q.target_items, Ids({19, 20}));
  EXPECT_EQ(q.target_cates, Ids({109, 110}));
  ASSERT_TRUE(ComiRecQuery(Sequence(9, 10), 0.8, /*window=*/3, &q));
  EXPECT_EQ(q.hist_items, Ids({16, 17, 18}));
  EXPECT_EQ(q.target_items, Ids({19, 20}));
  ASSERT_TRUE(ComiRecQuery(Sequence(9, 7), 0.8, 50, &q));  // floor(5.6) = 5 in, 2 out
  EXPECT_EQ(q.hist_items.size(), 5u);
  EXPECT_EQ(q.target_items, Ids({16, 17}));
  EXPECT_FALSE(ComiRecQuery(Sequence(9, 1), 0.8, 50, &q));  // nothing in
  EXPECT_FALSE(ComiRecQuery(Sequence(9, 4), 1.0, 50, &q));  // nothing left out
}

TEST(LeaveOneOutQueryTest, TheLastIsTheTarget) {
  RetrievalExample q;
  ASSERT_TRUE(LeaveOneOutQuery(Sequence(2, 6), /*window=*/3, &q));
  EXPECT_EQ(q.hist_items, Ids({13, 14, 15}));
  EXPECT_EQ(q.target_items, Ids({16}));
  EXPECT_FALSE(LeaveOneOutQuery(Sequence(2, 1), 3, &q));
}

TEST(SampleUnseenItemsTest, DistinctUnseenAndReproducible) {
  RetrievalSample s = Sequence(5, 30);  // items 11..40
  s.items.push_back(11);                // a repeat
  s.cates.push_back(101);
  std::vector<uint64_t> a, b;
  SampleUnseenItems(s, 1000, 100, /*seed=*/3, &a);
  SampleUnseenItems(s, 1000, 100, 3, &b);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 100u);
  std::set<uint64_t> distinct(a.begin(), a.end());
  EXPECT_EQ(distinct.size(), 100u);
  for (uint64_t i : a) {
    EXPECT_GE(i, 1u);
    EXPECT_LE(i, 1000u);
    EXPECT_TRUE(i < 11 || i > 40) << i;
  }
  SampleUnseenItems(s, 1000, 100, 4, &b);
  EXPECT_NE(a, b);
  // Few unseen items left: all of them, or `count` of them.
  SampleUnseenItems(s, 45, 100, 3, &a);
  std::sort(a.begin(), a.end());
  EXPECT_EQ(a, Ids({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 41, 42, 43, 44, 45}));
  SampleUnseenItems(s, 45, 10, 3, &a);
  distinct = std::set<uint64_t>(a.begin(), a.end());
  EXPECT_EQ(distinct.size(), 10u);
  for (uint64_t i : a) EXPECT_TRUE(i < 11 || i > 40) << i;
}

// Uniform over the unseen items: each of 200 unseen ids is drawn about equally often.
TEST(SampleUnseenItemsTest, UniformOverTheUnseen) {
  RetrievalSample s = Sequence(0, 20);  // items 11..30 seen
  std::vector<int> hits(221, 0);
  std::vector<uint64_t> out;
  const int users = 2000;
  for (int u = 0; u < users; ++u) {
    s.user = static_cast<uint64_t>(u);
    SampleUnseenItems(s, 220, 10, 1, &out);
    for (uint64_t i : out) ++hits[i];
  }
  // 20000 draws over 200 ids: 100 each, binomial std about 10.
  for (uint64_t i = 1; i <= 220; ++i) {
    if (i >= 11 && i <= 30) {
      EXPECT_EQ(hits[i], 0);
    } else {
      EXPECT_NEAR(hits[i], 100, 45) << i;
    }
  }
}

}  // namespace
}  // namespace attnps::data
