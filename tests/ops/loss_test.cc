#include "ops/loss.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomTensor;

// The checker probes tensors: wrap a scalar loss as a [1] tensor.
std::vector<Tensor> AsOutput(double loss) {
  return {Tensor::FromVector({1}, {static_cast<float>(loss)})};
}

bool AllFinite(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t[i])) return false;
  return true;
}

// ---- BCE with logits -----------------------------------------------------------------------

struct BceCase {
  int64_t n;
  bool weighted;
};

class BceWithLogitsGradTest : public ::testing::TestWithParam<BceCase> {};

TEST_P(BceWithLogitsGradTest, MatchesFiniteDifferences) {
  const BceCase c = GetParam();
  std::mt19937 rng(c.n * 2 + c.weighted);
  Tensor x = RandomTensor({c.n}, &rng, -3.0f, 3.0f);
  Tensor y = Tensor::Empty({c.n});
  for (int64_t i = 0; i < c.n; ++i) y[i] = static_cast<float>(i % 2);
  Tensor w = c.weighted ? RandomTensor({c.n}, &rng, 0.5f, 2.0f) : Tensor();
  auto forward = [&] { return AsOutput(BceWithLogitsForward(x, y, w)); };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    BceWithLogitsBackward(x, y, w, dy[0][0], &(*d)[0]);
  };
  EXPECT_TRUE(GradientsMatch({{"logits", &x}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, BceWithLogitsGradTest,
                         ::testing::Values(BceCase{1, false}, BceCase{7, true}, BceCase{13, false},
                                           BceCase{1, true}));

TEST(BceWithLogitsTest, ZeroLogitCostsLogTwo) {
  Tensor x = Tensor::Zeros({2});
  Tensor y = Tensor::FromVector({2}, {0, 1});
  EXPECT_NEAR(BceWithLogitsForward(x, y, Tensor()), std::log(2.0), 1e-6);
}

TEST(BceWithLogitsTest, HandComputedWeightedLossAndGradient) {
  // Per-sample losses log 2, softplus(-2), softplus(-3), weighted [1, 2, 0.5], mean over N = 3.
  Tensor x = Tensor::FromVector({3}, {0, 2, -3});
  Tensor y = Tensor::FromVector({3}, {1, 1, 0});
  Tensor w = Tensor::FromVector({3}, {1, 2, 0.5f});
  EXPECT_NEAR(BceWithLogitsForward(x, y, w), 0.3237656261442538, 1e-6);
  Tensor g = Tensor::Zeros({3});
  BceWithLogitsBackward(x, y, w, 1.0f, &g);
  EXPECT_TRUE(AllClose(g, Tensor::FromVector({3}, {-0.16666666666666666f, -0.0794686146814118f,
                                                   0.00790431219626113f})));
}

TEST(BceWithLogitsTest, LargeLogitsStayFinite) {
  Tensor x = Tensor::FromVector({4}, {100, 100, -100, -100});
  Tensor y = Tensor::FromVector({4}, {1, 0, 1, 0});
  EXPECT_NEAR(BceWithLogitsForward(x, y, Tensor()), 50.0, 1e-4);  // (0 + 100 + 100 + 0) / 4
  Tensor g = Tensor::Zeros({4});
  BceWithLogitsBackward(x, y, Tensor(), 4.0f, &g);
  EXPECT_TRUE(AllClose(g, Tensor::FromVector({4}, {0, 1, -1, 0})));
}

TEST(BceWithLogitsTest, ProbabilitiesAreSigmoid) {
  Tensor p = Tensor::Empty({3});
  SigmoidProbabilities(Tensor::FromVector({3}, {0, std::log(3.0f), -100}), &p);
  EXPECT_TRUE(AllClose(p, Tensor::FromVector({3}, {0.5f, 0.75f, 0})));
}

TEST(BceWithLogitsDeathTest, MismatchedLabelsNameOpAndShapes) {
  Tensor x = Tensor::Zeros({4}), y = Tensor::Zeros({5});
  EXPECT_DEATH(BceWithLogitsForward(x, y, Tensor()),
               "bce_with_logits_forward: labels dim 0 is 5, expected N=4 .*logits=\\[4\\]");
  Tensor g = Tensor::Zeros({3});
  EXPECT_DEATH(BceWithLogitsBackward(x, x, Tensor(), 1.0f, &g),
               "bce_with_logits_backward: dlogits must have shape \\[4\\]");
}

// ---- Sampled softmax -------------------------------------------------------------------------

struct SoftmaxCase {
  int64_t b, d, s;
  AccidentalHits hits;
};

class SampledSoftmaxGradTest : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(SampledSoftmaxGradTest, MatchesFiniteDifferences) {
  const SoftmaxCase c = GetParam();
  std::mt19937 rng(c.b * 100 + c.d * 10 + c.s);
  Tensor u = RandomTensor({c.b, c.d}, &rng), pos = RandomTensor({c.b, c.d}, &rng);
  Tensor neg = RandomTensor({c.s, c.d}, &rng);
  Tensor log_q_pos = RandomTensor({c.b}, &rng, -3.0f, -1.0f);
  Tensor log_q_neg = RandomTensor({c.s}, &rng, -3.0f, -1.0f);
  std::vector<int64_t> pos_ids(c.b), neg_ids(c.s);
  for (int64_t i = 0; i < c.b; ++i) pos_ids[i] = i % 3;
  for (int64_t j = 0; j < c.s; ++j) neg_ids[j] = (j * 2) % 5;  // hits ids 0 and 2 at least
  const SampledSoftmaxOptions options{c.hits, pos_ids, neg_ids};
  SampledSoftmaxWorkspace ws = SampledSoftmaxWorkspace::Allocate(c.b, c.s);
  auto forward = [&] {
    return AsOutput(SampledSoftmaxForward(u, pos, neg, log_q_pos, log_q_neg, options, &ws));
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    SampledSoftmaxBackward(u, pos, neg, log_q_pos, log_q_neg, dy[0][0], &ws, &(*d)[0], &(*d)[1],
                           &(*d)[2]);
  };
  EXPECT_TRUE(GradientsMatch({{"u", &u}, {"pos", &pos}, {"neg", &neg}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, SampledSoftmaxGradTest,
                         ::testing::Values(SoftmaxCase{1, 1, 1, AccidentalHits::kKeep},
                                           SoftmaxCase{3, 5, 7, AccidentalHits::kKeep},
                                           SoftmaxCase{4, 3, 6, AccidentalHits::kRemove},
                                           SoftmaxCase{2, 8, 1, AccidentalHits::kRemove}));

TEST(SampledSoftmaxTest, EqualLogitsCostLogOnePlusS) {
  const int64_t b = 2, d = 3, s = 4;
  SampledSoftmaxWorkspace ws = SampledSoftmaxWorkspace::Allocate(b, s);
  const double loss = SampledSoftmaxForward(
      Tensor::Zeros({b, d}), Tensor::Filled({b, d}, 1.0f), Tensor::Filled({s, d}, -1.0f),
      Tensor::Filled({b}, -2.0f), Tensor::Filled({s}, -2.0f), {}, &ws);
  EXPECT_NEAR(loss, std::log(5.0), 1e-6);
  EXPECT_TRUE(AllClose(ws.probs, Tensor::Filled({b, s + 1}, 0.2f)));
}

TEST(SampledSoftmaxTest, HandComputedLogQCorrection) {
  // logits = [2 - ln 0.5, 1 - ln 0.25, 0 - ln 0.25].
  SampledSoftmaxWorkspace ws = SampledSoftmaxWorkspace::Allocate(1, 2);
  const double loss = SampledSoftmaxForward(
      Tensor::FromVector({1, 1}, {1}), Tensor::FromVector({1, 1}, {2}),
      Tensor::FromVector({2, 1}, {1, 0}), Tensor::FromVector({1}, {std::log(0.5f)}),
      Tensor::FromVector({2}, {std::log(0.25f), std::log(0.25f)}), {}, &ws);
  EXPECT_NEAR(loss, 0.6963567487889981, 1e-5);
  EXPECT_TRUE(AllClose(
      ws.probs, Tensor::FromVector(
                    {1, 3}, {0.49839778846450256f, 0.3667005998028079f, 0.1349016117326896f})));
}

TEST(SampledSoftmaxTest, AccidentalHitsAreRemoved) {
  // Row 0 (id 7) has two hits among the negatives, row 1 (id 8) none; all logits are equal.
  const int64_t b = 2, d = 2, s = 4;
  const std::vector<int64_t> pos_ids = {7, 8}, neg_ids = {7, 3, 7, 9};
  const SampledSoftmaxOptions options{AccidentalHits::kRemove, pos_ids, neg_ids};
  Tensor u = Tensor::Zeros({b, d}), pos = Tensor::Filled({b, d}, 1.0f);
  Tensor neg = Tensor::Filled({s, d}, 1.0f);
  Tensor lq_pos = Tensor::Zeros({b}), lq_neg = Tensor::Zeros({s});
  SampledSoftmaxWorkspace ws = SampledSoftmaxWorkspace::Allocate(b, s);
  const double loss = SampledSoftmaxForward(u, pos, neg, lq_pos, lq_neg, options, &ws);
  EXPECT_NEAR(loss, (std::log(3.0) + std::log(5.0)) / 2, 1e-6);
  const float third = 1.0f / 3;
  EXPECT_TRUE(AllClose(ws.probs, Tensor::FromVector({b, s + 1}, {third, 0, third, 0, third, 0.2f,
                                                                 0.2f, 0.2f, 0.2f, 0.2f})));
  // With u_1 = 0 only row 0 feeds dneg (dneg_s = sum_b dlogit_bs u_b): its removed negatives 0
  // and 2 get nothing, the kept ones do.
  Tensor du = Tensor::Zeros({b, d}), dpos = Tensor::Zeros({b, d}), dneg = Tensor::Zeros({s, d});
  Tensor u1 = Tensor::FromVector({b, d}, {1, 1, 0, 0});
  SampledSoftmaxForward(u1, pos, neg, lq_pos, lq_neg, options, &ws);
  SampledSoftmaxBackward(u1, pos, neg, lq_pos, lq_neg, 1.0f, &ws, &du, &dpos, &dneg);
  EXPECT_EQ(dneg[0], 0.0f);
  EXPECT_EQ(dneg[4], 0.0f);
  EXPECT_NE(dneg[2], 0.0f);
  EXPECT_TRUE(AllFinite(du) && AllFinite(dpos));
}

TEST(SampledSoftmaxTest, LargeLogitsStayFinite) {
  // Logits [100, -100, 100]: loss = log(1 + e^-200 + 1) = log 2.
  SampledSoftmaxWorkspace ws = SampledSoftmaxWorkspace::Allocate(1, 2);
  Tensor u = Tensor::FromVector({1, 1}, {10}), pos = Tensor::FromVector({1, 1}, {10});
  Tensor neg = Tensor::FromVector({2, 1}, {-10, 10});
  Tensor lq_pos = Tensor::Zeros({1}), lq_neg = Tensor::Zeros({2});
  EXPECT_NEAR(SampledSoftmaxForward(u, pos, neg, lq_pos, lq_neg, {}, &ws), std::log(2.0), 1e-5);
  Tensor du = Tensor::Zeros({1, 1}), dpos = Tensor::Zeros({1, 1}), dneg = Tensor::Zeros({2, 1});
  SampledSoftmaxBackward(u, pos, neg, lq_pos, lq_neg, 1.0f, &ws, &du, &dpos, &dneg);
  // dlogits = [-1/2, 0, 1/2]: du = -pos/2 + neg_1/2 = 0, dpos = -u/2, dneg_1 = u/2.
  EXPECT_TRUE(AllClose(du, Tensor::FromVector({1, 1}, {0})));
  EXPECT_TRUE(AllClose(dpos, Tensor::FromVector({1, 1}, {-5})));
  EXPECT_TRUE(AllClose(dneg, Tensor::FromVector({2, 1}, {0, 5})));
}

TEST(SampledSoftmaxDeathTest, BadShapesNameOpAndShapes) {
  Tensor u = Tensor::Zeros({2, 3}), neg = Tensor::Zeros({5, 4});
  SampledSoftmaxWorkspace ws = SampledSoftmaxWorkspace::Allocate(2, 5);
  EXPECT_DEATH(SampledSoftmaxForward(u, u, neg, Tensor::Zeros({2}), Tensor::Zeros({5}), {}, &ws),
               "sampled_softmax_forward: neg dim 1 is 4, expected D=3 .*u=\\[2, 3\\]");
  const std::vector<int64_t> pos_ids = {1, 2}, neg_ids = {1, 2, 3, 4};
  const SampledSoftmaxOptions options{AccidentalHits::kRemove, pos_ids, neg_ids};
  EXPECT_DEATH(SampledSoftmaxForward(u, u, Tensor::Zeros({5, 3}), Tensor::Zeros({2}),
                                     Tensor::Zeros({5}), options, &ws),
               "sampled_softmax_forward: requires neg_ids of size S=5 \\(got 4\\)");
  SampledSoftmaxWorkspace small = SampledSoftmaxWorkspace::Allocate(2, 4);
  EXPECT_DEATH(SampledSoftmaxBackward(u, u, Tensor::Zeros({5, 3}), Tensor::Zeros({2}),
                                      Tensor::Zeros({5}), 1.0f, &small, nullptr, nullptr, nullptr),
               "sampled_softmax_backward: ws.probs dim 1 is 5, expected 1\\+S=6");
}

// ---- DIEN auxiliary loss -----------------------------------------------------------------------

struct DienCase {
  int64_t b, t, d;
  bool masked_row;  // row 0 fully masked
};

class DienAuxLossGradTest : public ::testing::TestWithParam<DienCase> {};

TEST_P(DienAuxLossGradTest, MatchesFiniteDifferences) {
  const DienCase c = GetParam();
  std::mt19937 rng(c.b * 100 + c.t * 10 + c.d);
  Tensor h = RandomTensor({c.b, c.t, c.d}, &rng), e_pos = RandomTensor({c.b, c.t, c.d}, &rng);
  Tensor e_neg = RandomTensor({c.b, c.t, c.d}, &rng);
  Tensor mask = testing::RandomPrefixMask(c.b, c.t, &rng, 1);
  if (c.masked_row)
    for (int64_t i = 0; i < c.t; ++i) mask[i] = 0.0f;
  auto forward = [&] { return AsOutput(DienAuxLossForward(h, e_pos, e_neg, mask)); };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    DienAuxLossBackward(h, e_pos, e_neg, mask, dy[0][0], &(*d)[0], &(*d)[1], &(*d)[2]);
  };
  EXPECT_TRUE(GradientsMatch({{"h", &h}, {"e_pos", &e_pos}, {"e_neg", &e_neg}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, DienAuxLossGradTest,
                         ::testing::Values(DienCase{1, 1, 1, false}, DienCase{3, 4, 5, true},
                                           DienCase{2, 7, 3, false}, DienCase{4, 1, 6, true}));

TEST(DienAuxLossTest, HandComputedLoss) {
  // Valid pair t = 0 only: softplus(-2) + softplus(-1) (h.e_pos = 2, h.e_neg = -1).
  Tensor h = Tensor::FromVector({1, 2, 1}, {1, 5});
  Tensor e_pos = Tensor::FromVector({1, 2, 1}, {2, 9});
  Tensor e_neg = Tensor::FromVector({1, 2, 1}, {-1, 9});
  Tensor mask = Tensor::FromVector({1, 2}, {1, 0});
  EXPECT_NEAR(DienAuxLossForward(h, e_pos, e_neg, mask), 0.4401896985611954, 1e-6);
  // Zero inner products: each valid pair costs 2 log 2.
  Tensor zeros = Tensor::Zeros({2, 3, 4});
  EXPECT_NEAR(DienAuxLossForward(zeros, zeros, zeros, Tensor::Filled({2, 3}, 1.0f)),
              2 * std::log(2.0), 1e-6);
}

TEST(DienAuxLossTest, FullyMaskedBatchGivesZeroLossAndGradients) {
  std::mt19937 rng(5);
  Tensor h = RandomTensor({2, 3, 4}, &rng), e = RandomTensor({2, 3, 4}, &rng);
  Tensor mask = Tensor::Zeros({2, 3});
  EXPECT_EQ(DienAuxLossForward(h, e, e, mask), 0.0);
  Tensor dh = Tensor::Zeros({2, 3, 4}), de_pos = Tensor::Zeros({2, 3, 4});
  Tensor de_neg = Tensor::Zeros({2, 3, 4});
  DienAuxLossBackward(h, e, e, mask, 1.0f, &dh, &de_pos, &de_neg);
  EXPECT_TRUE(AllClose(dh, Tensor::Zeros({2, 3, 4}), 0.0f, 0.0f));
  EXPECT_TRUE(AllClose(de_neg, Tensor::Zeros({2, 3, 4}), 0.0f, 0.0f));
}

TEST(DienAuxLossTest, LargeLogitsStayFinite) {
  Tensor h = Tensor::FromVector({1, 2, 1}, {10, 10});
  Tensor e_pos = Tensor::FromVector({1, 2, 1}, {10, -10});  // h.e_pos = 100, -100
  Tensor e_neg = Tensor::FromVector({1, 2, 1}, {-10, 10});  // h.e_neg = -100, 100
  Tensor mask = Tensor::Filled({1, 2}, 1.0f);
  EXPECT_NEAR(DienAuxLossForward(h, e_pos, e_neg, mask), 100.0, 1e-3);  // (0 + 200) / 2
  Tensor dh = Tensor::Zeros({1, 2, 1}), de_pos = Tensor::Zeros({1, 2, 1});
  Tensor de_neg = Tensor::Zeros({1, 2, 1});
  DienAuxLossBackward(h, e_pos, e_neg, mask, 1.0f, &dh, &de_pos, &de_neg);
  // Pair 1: d/dx_pos = -1/2, d/dx_neg = 1/2 -> dh = -e_pos/2 + e_neg/2 = 10.
  EXPECT_TRUE(AllClose(dh, Tensor::FromVector({1, 2, 1}, {0, 10})));
  EXPECT_TRUE(AllClose(de_pos, Tensor::FromVector({1, 2, 1}, {0, -5})));
  EXPECT_TRUE(AllClose(de_neg, Tensor::FromVector({1, 2, 1}, {0, 5})));
}

TEST(DienAuxLossDeathTest, BadShapesNameOpAndShapes) {
  Tensor h = Tensor::Zeros({2, 4, 3});
  EXPECT_DEATH(DienAuxLossForward(h, h, h, Tensor::Zeros({2, 5})),
               "dien_aux_loss_forward: mask dim 1 is 5, expected T=4 .*h=\\[2, 4, 3\\]");
  Tensor dh = Tensor::Zeros({2, 4, 2});
  EXPECT_DEATH(DienAuxLossBackward(h, h, h, Tensor::Zeros({2, 4}), 1.0f, &dh, nullptr, nullptr),
               "dien_aux_loss_backward: dh must have shape \\[2, 4, 3\\]");
}

}  // namespace
}  // namespace attnps
