#include "ops/jagged.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "ops/din_attention.h"
#include "ops/pooling.h"
#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomTensor;

// A random ragged batch with lengths in [0, T], held both padded and jagged. With B >= 2 the
// first sample is empty and the last has length T.
struct RaggedBatch {
  int64_t b = 0, t = 0, d = 0;
  std::vector<int64_t> offsets;  // [B + 1]
  std::vector<int32_t> offsets32;
  Tensor mask;      // [B, T] prefix mask of the lengths
  Tensor k_padded;  // [B, T, D], random at the padding too (it must be ignored)
  Tensor k;         // [N, D] the valid rows of k_padded
  int64_t n() const { return offsets.back(); }
};

// The valid rows [N, X] of a padded [B, T, X] (or [B, T]) tensor.
Tensor GatherValid(const Tensor& padded, const RaggedBatch& r) {
  const int64_t x = padded.numel() / (r.b * r.t);
  Tensor out = Tensor::Empty(padded.ndim() == 2 ? Shape{r.n()} : Shape{r.n(), x});
  for (int64_t b = 0; b < r.b; ++b)
    for (int64_t i = 0; i < r.offsets[b + 1] - r.offsets[b]; ++i)
      for (int64_t j = 0; j < x; ++j)
        out[(r.offsets[b] + i) * x + j] = padded[(b * r.t + i) * x + j];
  return out;
}

RaggedBatch MakeRagged(int64_t b, int64_t t, int64_t d, std::mt19937* rng) {
  RaggedBatch r;
  r.b = b;
  r.t = t;
  r.d = d;
  std::uniform_int_distribution<int64_t> len_dist(0, t);
  std::vector<int64_t> lengths(b);
  for (int64_t& len : lengths) len = len_dist(*rng);
  if (b >= 2) lengths[0] = 0;
  lengths[b - 1] = t;
  r.offsets.assign(1, 0);
  for (int64_t len : lengths) r.offsets.push_back(r.offsets.back() + len);
  r.offsets32.assign(r.offsets.begin(), r.offsets.end());
  r.mask = Tensor::Zeros({b, t});
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < lengths[i]; ++j) r.mask[i * t + j] = 1.0f;
  r.k_padded = RandomTensor({b, t, d}, rng);
  r.k = GatherValid(r.k_padded, r);
  return r;
}

DinAttentionParams RandomParams(int64_t d, int64_t h1, int64_t h2, std::mt19937* rng) {
  return {RandomTensor({4 * d, h1}, rng), RandomTensor({h1}, rng),    RandomTensor({h1, h2}, rng),
          RandomTensor({h2}, rng),        RandomTensor({h2, 1}, rng), RandomTensor({1}, rng)};
}

DinAttentionParams CloneParams(const DinAttentionParams& p) {
  return {p.w1.Clone(), p.b1.Clone(), p.w2.Clone(), p.b2.Clone(), p.w3.Clone(), p.b3.Clone()};
}

// Tolerance of the jagged-vs-padded comparisons: they differ in summation order and, for blocks of
// long samples, in how the first layer is factored (k M_b against [k, q*k] [Wk - Wd; Wp]).
constexpr float kAtol = 1e-5f, kRtol = 1e-4f;
// The weight gradients are sums over every row of the batch (up to ~1600 here) whose terms cancel
// (random signs): either order's rounding is about eps * sum |terms|, which can be 1e-5 where the
// result itself is only a few hundredths (seen: 0.028329 against 0.028342 in the ASan build).
constexpr float kGradAtol = 1e-4f;

::testing::AssertionResult ParamsClose(const DinAttentionParams& got,
                                       const DinAttentionParams& want) {
  const char* names[] = {"w1", "b1", "w2", "b2", "w3", "b3"};
  const Tensor* g[] = {&got.w1, &got.b1, &got.w2, &got.b2, &got.w3, &got.b3};
  const Tensor* w[] = {&want.w1, &want.b1, &want.w2, &want.b2, &want.w3, &want.b3};
  for (int i = 0; i < 6; ++i) {
    ::testing::AssertionResult r = AllClose(*g[i], *w[i], kGradAtol, kRtol);
    if (!r) return ::testing::AssertionFailure() << "grads." << names[i] << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

struct JaggedCase {
  int64_t b, t, d, h1, h2;
  AttentionNormalization norm;
  DinActivation act;
  bool use_d_weights;
};

class JaggedDinAttentionVsPaddedTest : public ::testing::TestWithParam<JaggedCase> {};

// Forward outputs and every gradient of the jagged unit equal the padded unit's with the prefix
// mask of the same lengths; the gradient buffers start non-zero, so += is checked as well.
TEST_P(JaggedDinAttentionVsPaddedTest, EqualsPaddedUnitWithPrefixMask) {
  const JaggedCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 131 + c.t * 7 + c.d + 3 * c.use_d_weights));
  const RaggedBatch r = MakeRagged(c.b, c.t, c.d, &rng);
  const int64_t n = r.n();
  Tensor q = RandomTensor({c.b, c.d}, &rng);
  const DinAttentionParams p = RandomParams(c.d, c.h1, c.h2, &rng);
  const DinAttentionOptions options{c.norm, c.act};

  DinAttentionWorkspace pws = DinAttentionWorkspace::Allocate(c.b, c.t, c.d, c.h1, c.h2);
  Tensor pw = Tensor::Empty({c.b, c.t}), ppooled = Tensor::Empty({c.b, c.d});
  DinAttentionForward(q, r.k_padded, r.mask, p, options, &pws, &pw, &ppooled);

  JaggedDinAttentionWorkspace jws = JaggedDinAttentionWorkspace::Allocate(n, c.b, c.d, c.h1, c.h2);
  Tensor jw = Tensor::Empty({n}), jpooled = Tensor::Empty({c.b, c.d});
  JaggedDinAttentionForward(q, r.k, r.offsets, p, options, &jws, &jw, &jpooled);
  EXPECT_TRUE(AllClose(jw, GatherValid(pw, r), kAtol, kRtol)) << "weights";
  EXPECT_TRUE(AllClose(jpooled, ppooled, kAtol, kRtol)) << "pooled";
  if (c.b >= 2) {  // sample 0 is empty
    for (int64_t j = 0; j < c.d; ++j) EXPECT_EQ(jpooled[j], 0.0f) << "empty sample pools to 0";
  }

  // Random d_weights at the padding too: the padded unit must ignore them there.
  Tensor pdw = c.use_d_weights ? RandomTensor({c.b, c.t}, &rng) : Tensor();
  Tensor jdw = c.use_d_weights ? GatherValid(pdw, r) : Tensor();
  Tensor d_pooled = RandomTensor({c.b, c.d}, &rng);
  Tensor pdq = RandomTensor({c.b, c.d}, &rng), jdq = pdq.Clone();
  Tensor pdk = RandomTensor({c.b, c.t, c.d}, &rng), jdk = GatherValid(pdk, r);
  DinAttentionParams pgrads = RandomParams(c.d, c.h1, c.h2, &rng), jgrads = CloneParams(pgrads);
  DinAttentionBackward(q, r.k_padded, r.mask, p, options, pw, pdw, d_pooled, &pws, &pdq, &pdk,
                       &pgrads);
  JaggedDinAttentionBackward(q, r.k, r.offsets, p, options, jw, jdw, d_pooled, &jws, &jdq, &jdk,
                             &jgrads);
  EXPECT_TRUE(AllClose(jdq, pdq, kAtol, kRtol)) << "dq";
  EXPECT_TRUE(AllClose(jdk, GatherValid(pdk, r), kAtol, kRtol)) << "dk";
  EXPECT_TRUE(ParamsClose(jgrads, pgrads));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, JaggedDinAttentionVsPaddedTest,
    ::testing::Values(
        JaggedCase{6, 5, 4, 6, 3, AttentionNormalization::kNone, DinActivation::kSigmoid, true},
        JaggedCase{6, 5, 4, 6, 3, AttentionNormalization::kSoftmax, DinActivation::kSigmoid, true},
        JaggedCase{5, 7, 5, 7, 3, AttentionNormalization::kNone, DinActivation::kRelu, true},
        JaggedCase{5, 7, 5, 7, 3, AttentionNormalization::kSoftmax, DinActivation::kRelu, true},
        JaggedCase{4, 6, 3, 5, 2, AttentionNormalization::kSoftmax, DinActivation::kSigmoid, false},
        JaggedCase{1, 1, 3, 5, 2, AttentionNormalization::kSoftmax, DinActivation::kRelu, false},
        // Many blocks of whole samples (blocks hold 32..256 rows), DIN-like sizes.
        JaggedCase{64, 50, 12, 16, 8, AttentionNormalization::kSoftmax, DinActivation::kSigmoid,
                   false},
        JaggedCase{64, 50, 12, 16, 8, AttentionNormalization::kNone, DinActivation::kRelu, true},
        // One sample longer than a block.
        JaggedCase{3, 300, 4, 6, 3, AttentionNormalization::kSoftmax, DinActivation::kSigmoid,
                   true}));

struct GradCase {
  int64_t b, t, d, h1, h2;
  AttentionNormalization norm;
  DinActivation act;
};

class JaggedDinAttentionGradTest : public ::testing::TestWithParam<GradCase> {};

TEST_P(JaggedDinAttentionGradTest, MatchesFiniteDifferences) {
  const GradCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 1000 + c.t * 10 + c.d));
  RaggedBatch r = MakeRagged(c.b, c.t, c.d, &rng);
  const int64_t n = r.n();
  Tensor q = RandomTensor({c.b, c.d}, &rng);
  DinAttentionParams p = RandomParams(c.d, c.h1, c.h2, &rng);
  const DinAttentionOptions options{c.norm, c.act};
  JaggedDinAttentionWorkspace ws = JaggedDinAttentionWorkspace::Allocate(n, c.b, c.d, c.h1, c.h2);
  Tensor weights = Tensor::Empty({n});
  auto forward = [&] {
    Tensor pooled = Tensor::Empty({c.b, c.d});
    JaggedDinAttentionForward(q, r.k, r.offsets, p, options, &ws, &weights, &pooled);
    return std::vector<Tensor>{weights.Clone(), pooled};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* g) {
    DinAttentionParams grads{(*g)[2], (*g)[3], (*g)[4], (*g)[5], (*g)[6], (*g)[7]};
    JaggedDinAttentionBackward(q, r.k, r.offsets, p, options, weights, dy[0], dy[1], &ws, &(*g)[0],
                               &(*g)[1], &grads);
  };
  testing::GradCheckOptions opts;
  if (c.act == DinActivation::kRelu) opts.step = 2e-3;  // stay clear of the kinks
  EXPECT_TRUE(GradientsMatch({{"q", &q},
                              {"k", &r.k},
                              {"w1", &p.w1},
                              {"b1", &p.b1},
                              {"w2", &p.w2},
                              {"b2", &p.b2},
                              {"w3", &p.w3},
                              {"b3", &p.b3}},
                             forward, backward, opts));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, JaggedDinAttentionGradTest,
    ::testing::Values(
        GradCase{4, 5, 4, 6, 3, AttentionNormalization::kNone, DinActivation::kSigmoid},
        GradCase{4, 5, 4, 6, 3, AttentionNormalization::kSoftmax, DinActivation::kSigmoid},
        GradCase{3, 6, 5, 7, 3, AttentionNormalization::kNone, DinActivation::kRelu},
        GradCase{3, 6, 5, 7, 3, AttentionNormalization::kSoftmax, DinActivation::kRelu},
        GradCase{1, 1, 3, 5, 2, AttentionNormalization::kSoftmax, DinActivation::kSigmoid},
        // Long samples: blocks whose first layer runs one sample at a time (mean >= 16 rows),
        // beside blocks of short ones.
        GradCase{4, 60, 3, 4, 2, AttentionNormalization::kNone, DinActivation::kSigmoid},
        GradCase{4, 60, 3, 4, 2, AttentionNormalization::kSoftmax, DinActivation::kRelu}));

// A workspace allocated too small grows in the forward; a later, smaller batch reuses it.
TEST(JaggedDinAttentionTest, WorkspaceGrowsAndIsReused) {
  std::mt19937 rng(11);
  const int64_t d = 4, h1 = 6, h2 = 3;
  const DinAttentionParams p = RandomParams(d, h1, h2, &rng);
  const DinAttentionOptions options{AttentionNormalization::kSoftmax, DinActivation::kSigmoid};
  JaggedDinAttentionWorkspace ws = JaggedDinAttentionWorkspace::Allocate(1, 1, d, h1, h2);
  const float* grown = nullptr;
  for (int64_t b : {9, 5}) {
    const RaggedBatch r = MakeRagged(b, 8, d, &rng);
    Tensor q = RandomTensor({b, d}, &rng);
    Tensor jw = Tensor::Empty({r.n()}), jpooled = Tensor::Empty({b, d});
    JaggedDinAttentionForward(q, r.k, r.offsets32, p, options, &ws, &jw, &jpooled);
    EXPECT_GE(ws.row_capacity(), r.n());
    EXPECT_GE(ws.batch_capacity(), b);
    if (grown) {
      EXPECT_EQ(ws.x.data(), grown) << "the smaller batch reallocated";
    }
    grown = ws.x.data();
    DinAttentionWorkspace pws = DinAttentionWorkspace::Allocate(b, 8, d, h1, h2);
    Tensor pw = Tensor::Empty({b, 8}), ppooled = Tensor::Empty({b, d});
    DinAttentionForward(q, r.k_padded, r.mask, p, options, &pws, &pw, &ppooled);
    EXPECT_TRUE(AllClose(jpooled, ppooled, kAtol, kRtol));
    Tensor d_pooled = RandomTensor({b, d}, &rng);
    Tensor pdq = Tensor::Zeros({b, d}), jdq = Tensor::Zeros({b, d});
    DinAttentionParams pg = DinAttentionParams::Zeros(d, h1, h2);
    DinAttentionParams jg = DinAttentionParams::Zeros(d, h1, h2);
    DinAttentionBackward(q, r.k_padded, r.mask, p, options, pw, Tensor(), d_pooled, &pws, &pdq,
                         nullptr, &pg);
    JaggedDinAttentionBackward(q, r.k, r.offsets32, p, options, jw, Tensor(), d_pooled, &ws, &jdq,
                               nullptr, &jg);
    EXPECT_TRUE(AllClose(jdq, pdq, kAtol, kRtol));
    EXPECT_TRUE(ParamsClose(jg, pg));
  }
}

// Called on every thread of an enclosing parallel region (its own region is then inactive), each
// with its own workspace, the unit (one block of a long sample: the per-sample scratch) gives
// exactly the results of the same call made outside.
TEST(JaggedDinAttentionTest, RunsOnAnyThreadOfAnEnclosingParallelRegion) {
  std::mt19937 rng(13);
  const int64_t b = 1, t = 20, d = 3, h1 = 4, h2 = 2;
  const RaggedBatch r = MakeRagged(b, t, d, &rng);  // one sample of length t: one block
  Tensor q = RandomTensor({b, d}, &rng);
  const DinAttentionParams p = RandomParams(d, h1, h2, &rng);
  const DinAttentionOptions options{AttentionNormalization::kSoftmax, DinActivation::kSigmoid};
  Tensor d_pooled = RandomTensor({b, d}, &rng);
  auto run = [&](Tensor* dq) {
    JaggedDinAttentionWorkspace ws = JaggedDinAttentionWorkspace::Allocate(1, 1, d, h1, h2);
    Tensor w = Tensor::Empty({r.n()}), pooled = Tensor::Empty({b, d});
    JaggedDinAttentionForward(q, r.k, r.offsets32, p, options, &ws, &w, &pooled);
    DinAttentionParams g = DinAttentionParams::Zeros(d, h1, h2);
    JaggedDinAttentionBackward(q, r.k, r.offsets32, p, options, w, Tensor(), d_pooled, &ws, dq,
                               nullptr, &g);
  };
  Tensor want = Tensor::Zeros({b, d});
  run(&want);
  std::vector<Tensor> got(4);
#pragma omp parallel num_threads(4)
  {
    const int th = omp_get_thread_num();
    got[th] = Tensor::Zeros({b, d});
    run(&got[th]);
  }
  for (const Tensor& g : got) {
    if (g.empty()) continue;  // a thread the runtime did not start
    EXPECT_TRUE(AllClose(g, want, 0.0f, 0.0f));
  }
}

TEST(JaggedDinAttentionTest, Int32AndInt64OffsetsAgree) {
  std::mt19937 rng(12);
  const RaggedBatch r = MakeRagged(7, 6, 3, &rng);
  Tensor q = RandomTensor({7, 3}, &rng);
  const DinAttentionParams p = RandomParams(3, 4, 2, &rng);
  JaggedDinAttentionWorkspace ws = JaggedDinAttentionWorkspace::Allocate(r.n(), 7, 3, 4, 2);
  Tensor w64 = Tensor::Empty({r.n()}), pooled64 = Tensor::Empty({7, 3});
  Tensor w32 = Tensor::Empty({r.n()}), pooled32 = Tensor::Empty({7, 3});
  JaggedDinAttentionForward(q, r.k, r.offsets, p, {}, &ws, &w64, &pooled64);
  JaggedDinAttentionForward(q, r.k, JaggedOffsets(r.offsets32.data(), 7), p, {}, &ws, &w32,
                            &pooled32);
  EXPECT_TRUE(AllClose(w32, w64, 0.0f, 0.0f));
  EXPECT_TRUE(AllClose(pooled32, pooled64, 0.0f, 0.0f));
}

// Every sample empty (N = 0): pooled is 0, nothing is NaN and the gradients stay unchanged.
TEST(JaggedDinAttentionTest, AllEmptySamplesPoolToZeroAndLeaveGradients) {
  std::mt19937 rng(13);
  const int64_t b = 3, d = 4, h1 = 5, h2 = 2;
  const std::vector<int64_t> offsets = {0, 0, 0, 0};
  Tensor q = RandomTensor({b, d}, &rng), k = Tensor::Empty({0, d});
  const DinAttentionParams p = RandomParams(d, h1, h2, &rng);
  JaggedDinAttentionWorkspace ws = JaggedDinAttentionWorkspace::Allocate(0, b, d, h1, h2);
  Tensor weights = Tensor::Empty({0}), pooled = Tensor::Filled({b, d}, 7.0f);
  for (auto norm : {AttentionNormalization::kNone, AttentionNormalization::kSoftmax}) {
    const DinAttentionOptions options{norm, DinActivation::kSigmoid};
    JaggedDinAttentionForward(q, k, offsets, p, options, &ws, &weights, &pooled);
    EXPECT_TRUE(AllClose(pooled, Tensor::Zeros({b, d}), 0.0f, 0.0f));
    Tensor dq = RandomTensor({b, d}, &rng), dq0 = dq.Clone(), dk = Tensor::Empty({0, d});
    DinAttentionParams grads = RandomParams(d, h1, h2, &rng), grads0 = CloneParams(grads);
    JaggedDinAttentionBackward(q, k, offsets, p, options, weights, Tensor(),
                               RandomTensor({b, d}, &rng), &ws, &dq, &dk, &grads);
    EXPECT_TRUE(AllClose(dq, dq0, 0.0f, 0.0f));
    EXPECT_TRUE(ParamsClose(grads, grads0));
  }
}

TEST(SegmentSumPoolTest, EqualsMaskedSumPool) {
  std::mt19937 rng(21);
  for (int64_t b : {1, 6, 40}) {
    const RaggedBatch r = MakeRagged(b, 9, 5, &rng);
    Tensor want = Tensor::Empty({b, 5}), got = Tensor::Filled({b, 5}, 3.0f);
    MaskedSumPoolForward(r.k_padded, r.mask, &want);
    SegmentSumPoolForward(r.k, r.offsets, &got);
    EXPECT_TRUE(AllClose(got, want, kAtol, kRtol));
    Tensor dy = RandomTensor({b, 5}, &rng);
    Tensor pdx = RandomTensor({b, 9, 5}, &rng), jdx = GatherValid(pdx, r);
    MaskedSumPoolBackward(r.mask, dy, &pdx);
    SegmentSumPoolBackward(r.offsets32, dy, &jdx);
    EXPECT_TRUE(AllClose(jdx, GatherValid(pdx, r), kAtol, kRtol));
  }
}

TEST(JaggedToPaddedTest, PadsWithZerosAndAddsGradientsBack) {
  std::mt19937 rng(23);
  for (int64_t b : {1, 5, 17}) {
    const RaggedBatch r = MakeRagged(b, 7, 3, &rng);
    Tensor padded = Tensor::Filled({b, 7, 3}, 5.0f), mask = Tensor::Filled({b, 7}, 5.0f);
    JaggedToPadded(r.k, r.offsets, &padded, &mask);
    EXPECT_TRUE(AllClose(mask, r.mask, 0.0f, 0.0f));
    for (int64_t i = 0; i < padded.numel(); ++i) {
      EXPECT_EQ(padded[i], r.mask[i / 3] != 0.0f ? r.k_padded[i] : 0.0f) << i;
    }
    const Tensor dpadded = RandomTensor({b, 7, 3}, &rng);
    Tensor dx = RandomTensor({r.n(), 3}, &rng);
    const Tensor before = dx.Clone(), valid = GatherValid(dpadded, r);
    PaddedToJaggedAdd(dpadded, r.offsets32, &dx);
    for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_FLOAT_EQ(dx[i], before[i] + valid[i]);
  }
}

TEST(SegmentSumPoolTest, MatchesFiniteDifferences) {
  std::mt19937 rng(22);
  RaggedBatch r = MakeRagged(4, 5, 3, &rng);
  auto forward = [&] {
    Tensor y = Tensor::Empty({4, 3});
    SegmentSumPoolForward(r.k, r.offsets, &y);
    return std::vector<Tensor>{y};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* g) {
    SegmentSumPoolBackward(r.offsets, dy[0], &(*g)[0]);
  };
  EXPECT_TRUE(GradientsMatch({{"x", &r.k}}, forward, backward));
}

TEST(JaggedDeathTest, BadOffsetsAndShapesNameTheProblem) {
  const int64_t d = 4;
  Tensor q = Tensor::Zeros({2, d}), k = Tensor::Zeros({5, d});
  const DinAttentionParams p = DinAttentionParams::Zeros(d, 3, 2);
  JaggedDinAttentionWorkspace ws = JaggedDinAttentionWorkspace::Allocate(5, 2, d, 3, 2);
  Tensor weights = Tensor::Empty({5}), pooled = Tensor::Empty({2, d});
  EXPECT_DEATH(
      JaggedDinAttentionForward(q, k, std::vector<int64_t>{0, 4, 3}, p, {}, &ws, &weights, &pooled),
      "jagged_din_attention_forward: requires non-decreasing offsets "
      "\\(offsets\\[2\\]=3 < offsets\\[1\\]=4\\)");
  EXPECT_DEATH(
      JaggedDinAttentionForward(q, k, std::vector<int64_t>{1, 4, 5}, p, {}, &ws, &weights, &pooled),
      "requires offsets\\[0\\] = 0");
  EXPECT_DEATH(
      JaggedDinAttentionForward(q, k, std::vector<int32_t>{0, 2, 6}, p, {}, &ws, &weights, &pooled),
      "jagged_din_attention_forward: k dim 0 is 5, expected N=6 .*k=\\[5, 4\\]");
  Tensor y = Tensor::Empty({3, d});
  EXPECT_DEATH(SegmentSumPoolForward(k, std::vector<int64_t>{0, 2, 5}, &y),
               "segment_sum_pool_forward: y dim 0 is 3, expected B=2");
}

}  // namespace
}  // namespace attnps
