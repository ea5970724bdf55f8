#include "worker/topk_index.h"

#include <faiss/IndexFlat.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "ops/blas.h"

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

// ---- the exact search against a brute-force ranking, exactly ---------------------------------

// The whole ranking of query qv by brute force in int64 arithmetic (integer-valued data: every
// float inner product is exact whatever the summation order), (score desc, id asc), the first k.
std::vector<ScoredItem> BruteRanking(const std::vector<float>& x, const std::vector<uint64_t>& ids,
                                     const float* qv, int64_t d, int64_t k) {
  std::vector<ScoredItem> all;
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t s = 0;
    for (int64_t j = 0; j < d; ++j) {
      s += static_cast<int64_t>(x[i * d + j]) * static_cast<int64_t>(qv[j]);
    }
    all.push_back({ids[i], static_cast<float>(s)});
  }
  std::sort(all.begin(), all.end(), [](const ScoredItem& a, const ScoredItem& b) {
    return a.score > b.score || (a.score == b.score && a.item < b.item);
  });
  all.resize(std::min<size_t>(all.size(), static_cast<size_t>(std::max<int64_t>(k, 0))));
  return all;
}

// Small integers in [-r, r] (many ties), ids a shuffled permutation (ids are not positions, and
// their order is not the rows' order); `copies` > 1 repeats each vector (under other ids).
struct IntCorpus {
  int64_t n, d, q;
  std::vector<float> x, queries;
  std::vector<uint64_t> ids;
  IntCorpus(int64_t n_, int64_t d_, int64_t q_, int r, int copies = 1, uint32_t seed = 5)
      : n(n_), d(d_), q(q_) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> v(-r, r);
    for (int64_t i = 0; i < n; i += copies) {
      std::vector<float> row(d);
      for (float& f : row) f = static_cast<float>(v(rng));
      for (int c = 0; c < copies && i + c < n; ++c) x.insert(x.end(), row.begin(), row.end());
    }
    for (int64_t i = 0; i < q * d; ++i) queries.push_back(static_cast<float>(v(rng)));
    ids.resize(n);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    for (uint64_t& id : ids) id = 1000 + 7 * id;
  }
};

// Every query's list equals the brute-force ranking: the same ids and the same (exact) scores.
void ExpectExact(const IntCorpus& c, int k, int query_block, int item_block) {
  TopKIndexOptions o;
  o.exact_query_block = query_block;
  o.exact_item_block = item_block;
  std::unique_ptr<TopKIndex> index;
  ASSERT_TRUE(TopKIndex::Build(o, c.x.data(), c.n, c.d, c.ids, &index).ok());
  std::vector<std::vector<ScoredItem>> got;
  index->Search(c.queries.data(), c.q, k, &got);
  ASSERT_EQ(got.size(), static_cast<size_t>(c.q));
  for (int64_t i = 0; i < c.q; ++i) {
    const std::vector<ScoredItem> want =
        BruteRanking(c.x, c.ids, c.queries.data() + i * c.d, c.d, k);
    ASSERT_EQ(got[i].size(), want.size()) << "query " << i;
    for (size_t j = 0; j < want.size(); ++j) {
      ASSERT_EQ(got[i][j].item, want[j].item) << "query " << i << " rank " << j;
      ASSERT_EQ(got[i][j].score, want[j].score) << "query " << i << " rank " << j;
    }
  }
}

TEST(TopKIndexExactTest, EqualsBruteForceWithTiesOnOddSizes) {
  struct Case {
    int64_t n, d, q;
    int k, query_block, item_block;
  };
  for (const Case& t : std::vector<Case>{
           {1000, 8, 37, 10, 0, 0},    // defaults: one item block
           {1037, 5, 13, 25, 4, 64},   // n, q not multiples of the blocks
           {5000, 16, 300, 50, 0, 0},  // several default blocks and chunks
           {2500, 7, 1, 30, 0, 100},   // q = 1 (items split over the threads)
           {2, 3, 3, 1, 0, 0},         // tiny
           {1, 4, 5, 3, 0, 0},         // n = 1, k > n
           {300, 3, 9, 500, 2, 32},    // k > n: every item
           {300, 3, 9, 300, 2, 32},    // k = n
           {299, 3, 9, 298, 0, 0},     // k = n - 1
           {513, 1, 17, 40, 3, 50},    // d = 1: only 7 distinct scores per query
           {4097, 1, 2, 4097, 0, 0},   // d = 1, k = n, all ties broken by id
       }) {
    SCOPED_TRACE(::testing::Message() << "n=" << t.n << " d=" << t.d << " q=" << t.q << " k=" << t.k
                                      << " blocks=" << t.query_block << "x" << t.item_block);
    ExpectExact(IntCorpus(t.n, t.d, t.q, 3), t.k, t.query_block, t.item_block);
  }
}

TEST(TopKIndexExactTest, DuplicateVectorsTieBySmallerId) {
  // Each vector 3 times under shuffled ids: every score comes in (at least) threes.
  const IntCorpus c(3000, 6, 20, 2, /*copies=*/3);
  ExpectExact(c, 50, 0, 0);
  ExpectExact(c, 50, 7, 97);
  ExpectExact(c, 1, 0, 256);
}

TEST(TopKIndexExactTest, SameResultAtEveryThreadCount) {
  // Few queries split the items over the threads, merged after; many queries split by chunks.
  const int saved = NumThreads();
  for (int threads : {1, 2, 3, 5}) {
    SetNumThreads(threads);
    SCOPED_TRACE(::testing::Message() << "threads=" << threads);
    ExpectExact(IntCorpus(3001, 4, 1, 3), 20, 0, 128);
    ExpectExact(IntCorpus(3001, 4, 2, 3), 2000, 0, 128);
    ExpectExact(IntCorpus(1500, 4, 41, 3), 33, 8, 256);
  }
  SetNumThreads(saved);
}

TEST(TopKIndexExactTest, NoQueriesOrKZeroGiveEmptyListsAndNaNItemsAreSkipped) {
  IntCorpus c(100, 4, 3, 3);
  std::unique_ptr<TopKIndex> index;
  ASSERT_TRUE(TopKIndex::Build({}, c.x.data(), c.n, c.d, c.ids, &index).ok());
  std::vector<std::vector<ScoredItem>> got(7);
  index->Search(c.queries.data(), 3, 0, &got);
  ASSERT_EQ(got.size(), 3u);
  for (const auto& list : got) EXPECT_TRUE(list.empty());
  index->Search(c.queries.data(), 0, 5, &got);
  EXPECT_TRUE(got.empty());
  // An item with a NaN component scores NaN for every query: never returned.
  c.x[10 * c.d + 1] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(TopKIndex::Build({}, c.x.data(), c.n, c.d, c.ids, &index).ok());
  index->Search(c.queries.data(), 3, 100, &got);
  for (const auto& list : got) {
    EXPECT_EQ(list.size(), 99u);
    for (const ScoredItem& s : list) EXPECT_NE(s.item, c.ids[10]);
  }
}

// Gaussian data against FAISS's IndexFlatIP: the same id at every rank unless the two scores
// there are a rounding apart (both sum in their own order), and the scores within rounding.
TEST(TopKIndexExactTest, MatchesFaissIndexFlatIP) {
  const int64_t n = 7777, d = 24, q = 64;
  const int k = 40;
  std::mt19937 rng(11);
  std::normal_distribution<float> g;
  std::vector<float> x(n * d), queries(q * d);
  for (float& f : x) f = g(rng);
  for (float& f : queries) f = g(rng);
  std::vector<uint64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::unique_ptr<TopKIndex> index;
  ASSERT_TRUE(TopKIndex::Build({}, x.data(), n, d, ids, &index).ok());
  std::vector<std::vector<ScoredItem>> got;
  index->Search(queries.data(), q, k, &got);
  faiss::IndexFlatIP flat(d);
  flat.add(n, x.data());
  std::vector<float> scores(q * k);
  std::vector<faiss::Index::idx_t> labels(q * k);
  flat.search(q, queries.data(), k, scores.data(), labels.data());
  int same = 0;
  for (int64_t i = 0; i < q; ++i) {
    ASSERT_EQ(got[i].size(), static_cast<size_t>(k));
    for (int j = 0; j < k; ++j) {
      EXPECT_NEAR(got[i][j].score, scores[i * k + j], 1e-4f) << "query " << i << " rank " << j;
      if (got[i][j].item == static_cast<uint64_t>(labels[i * k + j])) ++same;
      if (j > 0) {
        EXPECT_GE(got[i][j - 1].score, got[i][j].score);
      }
    }
  }
  EXPECT_GE(same, q * k - 4);  // near-ties may swap
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
  TopKIndexOptions e;
  e.exact_query_block = -1;
  EXPECT_NE(
      TopKIndex::Build(e, c.x.data(), c.n, c.d, c.ids, &index).message().find("exact_query_block"),
      std::string::npos);
  e.exact_query_block = 0;
  e.exact_item_block = -2;
  EXPECT_NE(
      TopKIndex::Build(e, c.x.data(), c.n, c.d, c.ids, &index).message().find("exact_item_block"),
      std::string::npos);
  EXPECT_EQ(index, nullptr);
}

}  // namespace
}  // namespace attnps::worker
