#include "worker/topk_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace attnps::worker {
namespace {

using metrics::ScoredItem;

// The top k of query q by brute force: (score desc, id asc).
std::vector<uint64_t> BruteTopK(const std::vector<float>& x, const std::vector<uint64_t>& ids,
                                const float* q, int64_t d, int k) {
  std::vector<ScoredItem> all;
  for (size_t i = 0; i < ids.size(); ++i) {
    float s = 0;
    for (int64_t j = 0; j < d; ++j) s += x[i * d + j] * q[j];
    all.push_back({ids[i], s});
  }
  std::sort(all.begin(), all.end(),
            [](const ScoredItem& a, const ScoredItem& b) { return a.score > b.score; });
  std::vector<uint64_t> out;
  for (int i = 0; i < k; ++i) out.push_back(all[i].item);
  return out;
}

struct Corpus {
  int64_t n = 2000, d = 16;
  std::vector<float> x;
  std::vector<uint64_t> ids;
  std::vector<float> queries;
  Corpus() {
    std::mt19937 rng(3);
    std::normal_distribution<float> g;
    for (int64_t i = 0; i < n * d; ++i) x.push_back(g(rng));
    for (int64_t i = 0; i < n; ++i) ids.push_back(1000 + 7 * i);  // ids are not positions
    for (int64_t i = 0; i < 50 * d; ++i) queries.push_back(g(rng));
  }
};

TEST(TopKIndexTest, ExactMatchesBruteForce) {
  Corpus c;
  std::unique_ptr<TopKIndex> index;
  ASSERT_TRUE(TopKIndex::Build({}, c.x.data(), c.n, c.d, c.ids, &index).ok());
  std::vector<std::vector<ScoredItem>> got;
  index->Search(c.queries.data(), 50, 20, &got);
  ASSERT_EQ(got.size(), 50u);
  for (int q = 0; q < 50; ++q) {
    ASSERT_EQ(got[q].size(), 20u);
    std::vector<uint64_t> items;
    for (size_t j = 0; j < got[q].size(); ++j) {
      items.push_back(got[q][j].item);
      if (j > 0) {
        EXPECT_GE(got[q][j - 1].score, got[q][j].score);
      }
    }
    EXPECT_EQ(items, BruteTopK(c.x, c.ids, c.queries.data() + q * c.d, c.d, 20)) << "query " << q;
  }
  // k past the corpus: every item.
  index->Search(c.queries.data(), 1, 5000, &got);
  EXPECT_EQ(got[0].size(), 2000u);
}

// The approximate indexes find most of the exact top 20 (recall@20 over 50 queries).
TEST(TopKIndexTest, ApproximateIndexesRecallMostOfTheExactTopK) {
  Corpus c;
  for (auto kind : {TopKIndexOptions::Kind::kHnsw, TopKIndexOptions::Kind::kIvf}) {
    TopKIndexOptions o;
    o.kind = kind;
    o.ivf_probe = 48;  // of about 179 lists: isotropic Gaussian vectors are IVF's worst case
    std::unique_ptr<TopKIndex> index;
    ASSERT_TRUE(TopKIndex::Build(o, c.x.data(), c.n, c.d, c.ids, &index).ok());
    std::vector<std::vector<ScoredItem>> got;
    index->Search(c.queries.data(), 50, 20, &got);
    int found = 0;
    for (int q = 0; q < 50; ++q) {
      const auto want = BruteTopK(c.x, c.ids, c.queries.data() + q * c.d, c.d, 20);
      for (const ScoredItem& s : got[q]) found += std::count(want.begin(), want.end(), s.item);
    }
    EXPECT_GT(found, 0.8 * 50 * 20) << "kind " << static_cast<int>(kind) << " found " << found;
  }
}

TEST(TopKIndexTest, BadSizesAndOptionsAreRefusedByName) {
  Corpus c;
  std::unique_ptr<TopKIndex> index;
  EXPECT_NE(TopKIndex::Build({}, c.x.data(), c.n, c.d, {1, 2}, &index).message().find("ids"),
            std::string::npos);
  EXPECT_NE(TopKIndex::Build({}, c.x.data(), 0, c.d, {}, &index).message().find("no vectors"),
            std::string::npos);
  TopKIndexOptions o;
  o.kind = TopKIndexOptions::Kind::kIvf;
  o.ivf_lists = 5000;
  EXPECT_NE(TopKIndex::Build(o, c.x.data(), c.n, c.d, c.ids, &index).message().find("ivf_lists"),
            std::string::npos);
  o.ivf_lists = 0;
  o.ivf_probe = 0;
  EXPECT_NE(TopKIndex::Build(o, c.x.data(), c.n, c.d, c.ids, &index).message().find("ivf_probe"),
            std::string::npos);
  EXPECT_EQ(index, nullptr);
}

}  // namespace
}  // namespace attnps::worker
