// Geometric user lengths (prepare --lengths=geometric): most users short, a long tail; the
// default (uniform) draw is untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "worker/data/prepare.h"
#include "worker/data/synthetic.h"

namespace attnps::data {
namespace {

std::vector<size_t> Lengths(const SyntheticOptions& o, int users) {
  SyntheticWorld world(o, 3);
  std::mt19937_64 rng(5);
  std::vector<size_t> lengths;
  std::vector<uint64_t> items;
  for (int u = 0; u < users; ++u) {
    world.DrawUser(&rng, &items);
    lengths.push_back(items.size());
  }
  std::sort(lengths.begin(), lengths.end());
  return lengths;
}

TEST(SyntheticLengthsTest, GeometricLengthsHaveTheMeanAndALongTail) {
  SyntheticOptions o;
  o.users = 100;
  o.items = 1000;
  o.clusters = 20;
  o.events_per_user = 9;
  o.geometric_lengths = true;
  const std::vector<size_t> g = Lengths(o, 20000);
  double mean = 0;
  for (size_t n : g) mean += static_cast<double>(n) / g.size();
  EXPECT_NEAR(mean, 9.0, 0.3);
  EXPECT_EQ(g.front(), 3u);
  EXPECT_LE(g[g.size() / 2], 7u) << "median";
  EXPECT_GE(g.back(), 50u) << "no long tail";
  o.geometric_lengths = false;
  const std::vector<size_t> u = Lengths(o, 20000);
  EXPECT_GE(u.front(), 4u);  // uniform in [0.5, 1.5) x 9
  EXPECT_LE(u.back(), 14u);
}

TEST(SyntheticLengthsTest, TheLengthsFlagTakesUniformOrGeometric) {
  PrepareOptions o;
  bool help = false;
  ASSERT_TRUE(ParsePrepareFlags({"--format=synthetic", "--lengths=geometric"}, &o, &help).ok());
  EXPECT_TRUE(o.synthetic.geometric_lengths);
  const Status bad = ParsePrepareFlags({"--format=synthetic", "--lengths=zipf"}, &o, &help);
  EXPECT_NE(bad.message().find("lengths"), std::string::npos) << bad.ToString();
}

}  // namespace
}  // namespace attnps::data
