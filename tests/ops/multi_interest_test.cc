#include "ops/multi_interest.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomTensor;

// ---- ComiRec-SA ---------------------------------------------------------------------------------

struct SaCase {
  int64_t b, t, d, da, k;
  bool fully_masked_row;
};

class ComiRecSaGradTest : public ::testing::TestWithParam<SaCase> {};

TEST_P(ComiRecSaGradTest, MatchesFiniteDifferences) {
  const SaCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 1000 + c.t * 100 + c.d * 10 + c.k));
  Tensor h = RandomTensor({c.b, c.t, c.d}, &rng);
  Tensor mask = testing::RandomPrefixMask(c.b, c.t, &rng, 1);
  if (c.fully_masked_row) testing::MaskOutRow(&mask, 0);
  ComiRecSaParams p{RandomTensor({c.t, c.d}, &rng), RandomTensor({c.d, c.da}, &rng),
                    RandomTensor({c.da, c.k}, &rng)};
  ComiRecSaWorkspace ws = ComiRecSaWorkspace::Allocate(c.b, c.t, c.d, c.da, c.k);
  auto forward = [&] {
    Tensor v = Tensor::Empty({c.b, c.k, c.d});
    ComiRecSaForward(h, mask, p, &ws, &v);
    return std::vector<Tensor>{v};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* g) {
    ComiRecSaParams grads{(*g)[1], (*g)[2], (*g)[3]};
    ComiRecSaBackward(h, mask, p, dy[0], &ws, &(*g)[0], &grads);
  };
  EXPECT_TRUE(GradientsMatch({{"h", &h}, {"position", &p.position}, {"w1", &p.w1}, {"w2", &p.w2}},
                             forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ComiRecSaGradTest,
                         ::testing::Values(SaCase{1, 1, 1, 1, 1, false},   // T = 1, B = 1
                                           SaCase{3, 5, 4, 7, 3, false},   // odd sizes
                                           SaCase{1, 6, 3, 4, 2, false},   // B = 1
                                           SaCase{4, 1, 2, 3, 4, false},   // T = 1
                                           SaCase{3, 4, 5, 6, 2, true}));  // fully masked row

TEST(ComiRecSaTest, HandComputedForward) {
  // T = 2, D = 2, Da = 1, K = 2. H + P = [[1, 0], [0.5, 1.5]]; W1 = [1, 1]^T -> hidden
  // [tanh(1), tanh(2)] = [0.76159416, 0.96402758]; W2 = [2, -1] -> scores k0 [1.52318831,
  // 1.92805516], k1 [-0.76159416, -0.96402758]. Softmax over T: k0 [0.40014359, 0.59985641],
  // k1 [0.55043624, 0.44956376]. V = A H with H = [[1, 0], [0, 2]] (no P).
  // Row 2 masks position 1: attention [1, 0] for both interests, V = H[0].
  Tensor h = Tensor::FromVector({2, 2, 2}, {1, 0, 0, 2, 1, 0, 0, 2});
  Tensor mask = Tensor::FromVector({2, 2}, {1, 1, 1, 0});
  ComiRecSaParams p{Tensor::FromVector({2, 2}, {0, 0, 0.5f, -0.5f}),
                    Tensor::FromVector({2, 1}, {1, 1}), Tensor::FromVector({1, 2}, {2, -1})};
  ComiRecSaWorkspace ws = ComiRecSaWorkspace::Allocate(2, 2, 2, 1, 2);
  Tensor v = Tensor::Empty({2, 2, 2});
  ComiRecSaForward(h, mask, p, &ws, &v);
  EXPECT_TRUE(
      AllClose(ws.attention, Tensor::FromVector({2, 2, 2}, {0.40014359f, 0.59985641f, 0.55043624f,
                                                            0.44956376f, 1, 0, 1, 0})));
  EXPECT_TRUE(AllClose(v, Tensor::FromVector({2, 2, 2}, {0.40014359f, 1.19971282f, 0.55043624f,
                                                         0.89912753f, 1, 0, 1, 0})));
}

TEST(ComiRecSaTest, FullyMaskedRowGivesZeroInterests) {
  std::mt19937 rng(4);
  const int64_t b = 2, t = 3, d = 4, da = 5, k = 2;
  Tensor h = RandomTensor({b, t, d}, &rng);
  Tensor mask = Tensor::FromVector({b, t}, {1, 1, 0, 0, 0, 0});
  ComiRecSaParams p{RandomTensor({t, d}, &rng), RandomTensor({d, da}, &rng),
                    RandomTensor({da, k}, &rng)};
  ComiRecSaWorkspace ws = ComiRecSaWorkspace::Allocate(b, t, d, da, k);
  Tensor v = Tensor::Empty({b, k, d});
  ComiRecSaForward(h, mask, p, &ws, &v);
  for (int64_t i = k * d; i < 2 * k * d; ++i) EXPECT_EQ(v[i], 0.0f);
  Tensor dh = Tensor::Zeros({b, t, d});
  ComiRecSaBackward(h, mask, p, RandomTensor({b, k, d}, &rng), &ws, &dh, nullptr);
  for (int64_t i = t * d; i < 2 * t * d; ++i) EXPECT_EQ(dh[i], 0.0f);
  for (int64_t i = 0; i < dh.numel(); ++i) EXPECT_FALSE(std::isnan(dh[i]));
}

TEST(ComiRecSaDeathTest, BadShapesNameOpAndShapes) {
  const int64_t b = 2, t = 3, d = 4, da = 5, k = 2;
  Tensor h = Tensor::Zeros({b, t, d}), mask = Tensor::Zeros({b, t});
  ComiRecSaParams p = ComiRecSaParams::Zeros(t, d, da, k);
  ComiRecSaWorkspace ws = ComiRecSaWorkspace::Allocate(b, t, d, da, k);
  Tensor v = Tensor::Zeros({b, k, d});
  p.w2 = Tensor::Zeros({da + 1, k});
  EXPECT_DEATH(ComiRecSaForward(h, mask, p, &ws, &v),
               "comirec_sa_forward: w2 dim 0 is 6, expected Da=5 .*w1=\\[4, 5\\] w2=\\[6, 2\\]");
  p.w2 = Tensor::Zeros({da, k});
  p.position = Tensor::Zeros({t + 1, d});
  EXPECT_DEATH(ComiRecSaForward(h, mask, p, &ws, &v),
               "comirec_sa_forward: position dim 0 is 4, expected T=3");
  p.position = Tensor::Zeros({t, d});
  EXPECT_DEATH(ComiRecSaBackward(h, mask, p, Tensor::Zeros({b, k + 1, d}), &ws, nullptr, nullptr),
               "comirec_sa_backward: d_interests dim 1 is 3, expected K=2");
}

// ---- capsules -----------------------------------------------------------------------------------

struct CapsuleCase {
  int64_t b, t, d, k, dc;
};

class BilinearCapsuleMapGradTest : public ::testing::TestWithParam<CapsuleCase> {};

TEST_P(BilinearCapsuleMapGradTest, MatchesFiniteDifferences) {
  const CapsuleCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 1000 + c.t * 100 + c.d * 10 + c.k));
  Tensor e = RandomTensor({c.b, c.t, c.d}, &rng);
  Tensor w = RandomTensor({c.t, c.k, c.dc, c.d}, &rng);
  auto forward = [&] {
    Tensor u = Tensor::Empty({c.b, c.t, c.k, c.dc});
    BilinearCapsuleMapForward(e, w, &u);
    return std::vector<Tensor>{u};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* g) {
    BilinearCapsuleMapBackward(e, w, dy[0], &(*g)[0], &(*g)[1]);
  };
  EXPECT_TRUE(GradientsMatch({{"e", &e}, {"w", &w}}, forward, backward));
}

class RoutedCapsulesGradTest : public ::testing::TestWithParam<CapsuleCase> {};

TEST_P(RoutedCapsulesGradTest, MatchesFiniteDifferencesWithFixedCoupling) {
  const CapsuleCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 1000 + c.t * 100 + c.dc * 10 + c.k));
  Tensor u_hat = RandomTensor({c.b, c.t, c.k, c.dc}, &rng);
  Tensor mask = testing::RandomPrefixMask(c.b, c.t, &rng, 1);
  for (int64_t j = 0; j < c.t; ++j) mask[(c.b - 1) * c.t + j] = 0.0f;  // last row fully masked
  Tensor coupling = Tensor::Empty({c.b, c.k, c.t});
  DynamicRoutingCoefficients(u_hat, mask, 3, &coupling);  // then held fixed
  Tensor s = Tensor::Empty({c.b, c.k, c.dc});
  auto forward = [&] {
    Tensor v = Tensor::Empty({c.b, c.k, c.dc});
    RoutedCapsulesForward(u_hat, coupling, &s, &v);
    return std::vector<Tensor>{v};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* g) {
    RoutedCapsulesBackward(u_hat, coupling, s, dy[0], &(*g)[0]);
  };
  EXPECT_TRUE(GradientsMatch({{"u_hat", &u_hat}}, forward, backward));
}

const auto kCapsuleShapes = ::testing::Values(
    CapsuleCase{1, 1, 1, 1, 1}, CapsuleCase{3, 5, 4, 3, 7}, CapsuleCase{1, 6, 3, 4, 2},
    CapsuleCase{4, 1, 5, 2, 3}, CapsuleCase{2, 7, 6, 4, 5});
INSTANTIATE_TEST_SUITE_P(Shapes, BilinearCapsuleMapGradTest, kCapsuleShapes);
INSTANTIATE_TEST_SUITE_P(Shapes, RoutedCapsulesGradTest, kCapsuleShapes);

TEST(BilinearCapsuleMapTest, HandComputedForward) {
  // B = 1, T = 2, D = 2, K = 2, Dc = 1: one 1x2 matrix per (position, interest).
  Tensor e = Tensor::FromVector({1, 2, 2}, {1, 2, 3, -1});
  Tensor w = Tensor::FromVector({2, 2, 1, 2}, {1, 0, 0, 1, 2, 1, -1, 3});
  Tensor u = Tensor::Empty({1, 2, 2, 1});
  BilinearCapsuleMapForward(e, w, &u);
  // t0: [1 0].(1,2) = 1, [0 1].(1,2) = 2; t1: [2 1].(3,-1) = 5, [-1 3].(3,-1) = -6.
  EXPECT_TRUE(AllClose(u, Tensor::FromVector({1, 2, 2, 1}, {1, 2, 5, -6})));
}

TEST(RoutedCapsulesTest, HandComputedSquash) {
  // B = 1, T = 2, K = 2, Dc = 2. Interest 0: s = 1 * (3, 4) + 0 * (7, 7) = (3, 4), |s|^2 = 25,
  // v = 25/26 * (0.6, 0.8). Interest 1: s = 0.5 * (1, -1) + 0.5 * (-1, 1) = 0 -> v = 0.
  Tensor u_hat = Tensor::FromVector({1, 2, 2, 2}, {3, 4, 1, -1, 7, 7, -1, 1});
  Tensor coupling = Tensor::FromVector({1, 2, 2}, {1, 0, 0.5f, 0.5f});
  Tensor s = Tensor::Empty({1, 2, 2}), v = Tensor::Empty({1, 2, 2});
  RoutedCapsulesForward(u_hat, coupling, &s, &v);
  EXPECT_TRUE(AllClose(s, Tensor::FromVector({1, 2, 2}, {3, 4, 0, 0})));
  EXPECT_TRUE(AllClose(v, Tensor::FromVector({1, 2, 2}, {0.57692308f, 0.76923077f, 0, 0})));
  // The zero capsule has a zero (not NaN) gradient.
  Tensor du = Tensor::Zeros({1, 2, 2, 2});
  RoutedCapsulesBackward(u_hat, coupling, s, Tensor::Filled({1, 2, 2}, 1.0f), &du);
  for (int64_t i : {2, 3, 6, 7}) EXPECT_EQ(du[i], 0.0f);
  for (int64_t i : {4, 5}) EXPECT_EQ(du[i], 0.0f);  // zero coupling
  EXPECT_NE(du[0], 0.0f);
}

TEST(DynamicRoutingTest, CoefficientsSumToOneAtValidPositionsAndZeroAtPadding) {
  std::mt19937 rng(8);
  const int64_t b = 4, t = 6, k = 4, dc = 5;
  Tensor u_hat = RandomTensor({b, t, k, dc}, &rng, -2.0f, 2.0f);
  Tensor mask = testing::RandomPrefixMask(b, t, &rng, 0);
  for (int64_t j = 0; j < t; ++j) mask[j] = 0.0f;  // row 0 fully masked
  mask[t + t - 1] = 0.0f;                          // row 1 has padding
  Tensor c = Tensor::Empty({b, k, t});
  DynamicRoutingCoefficients(u_hat, mask, 3, &c);
  bool routed_non_uniformly = false;
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i < t; ++i) {
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) {
        const float cji = c[(r * k + j) * t + i];
        EXPECT_GE(cji, 0.0f);
        if (std::fabs(cji - 1.0f / k) > 1e-3f) routed_non_uniformly = true;
        sum += cji;
      }
      EXPECT_NEAR(sum, mask[r * t + i] != 0.0f ? 1.0f : 0.0f, 1e-5f) << r << ", " << i;
    }
  }
  EXPECT_TRUE(routed_non_uniformly);
}

TEST(DynamicRoutingTest, OneIterationIsUniformAndTwoFollowAgreement) {
  std::mt19937 rng(9);
  const int64_t b = 2, t = 3, k = 3, dc = 2;
  Tensor u_hat = RandomTensor({b, t, k, dc}, &rng, -2.0f, 2.0f);
  Tensor mask = Tensor::FromVector({b, t}, {1, 1, 1, 1, 1, 0});
  Tensor c1 = Tensor::Empty({b, k, t});
  DynamicRoutingCoefficients(u_hat, mask, 1, &c1);
  Tensor uniform = Tensor::FromVector(
      {b, k, t}, {1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3,
                  1.0f / 3, 1.0f / 3, 1.0f / 3, 0, 1.0f / 3, 1.0f / 3, 0, 1.0f / 3, 1.0f / 3, 0});
  EXPECT_TRUE(AllClose(c1, uniform));
  // Round 2: logits b_ji = u_hat_ij . v_j with v = squash of the uniformly routed sum.
  Tensor s = Tensor::Empty({b, k, dc}), v = Tensor::Empty({b, k, dc});
  RoutedCapsulesForward(u_hat, uniform, &s, &v);
  Tensor want = Tensor::Zeros({b, k, t});
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i < t; ++i) {
      if (mask[r * t + i] == 0.0f) continue;
      double logits[k], sum = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        logits[j] = 0.0;
        for (int64_t e = 0; e < dc; ++e)
          logits[j] += u_hat[((r * t + i) * k + j) * dc + e] * v[(r * k + j) * dc + e];
        sum += std::exp(logits[j]);
      }
      for (int64_t j = 0; j < k; ++j) want[(r * k + j) * t + i] = std::exp(logits[j]) / sum;
    }
  }
  Tensor c2 = Tensor::Empty({b, k, t});
  DynamicRoutingCoefficients(u_hat, mask, 2, &c2);
  EXPECT_TRUE(AllClose(c2, want));
}

TEST(CapsuleDeathTest, BadShapesNameOpAndShapes) {
  const int64_t b = 2, t = 3, d = 4, k = 2, dc = 5;
  Tensor e = Tensor::Zeros({b, t, d}), u = Tensor::Zeros({b, t, k, dc});
  EXPECT_DEATH(BilinearCapsuleMapForward(e, Tensor::Zeros({t + 1, k, dc, d}), &u),
               "bilinear_capsule_map_forward: w dim 0 is 4, expected T=3 .*e=\\[2, 3, 4\\]");
  Tensor w = Tensor::Zeros({t, k, dc, d});
  Tensor de_bad = Tensor::Zeros({b, t, d + 1});
  EXPECT_DEATH(BilinearCapsuleMapBackward(e, w, u, &de_bad, nullptr),
               "bilinear_capsule_map_backward: de must have shape \\[2, 3, 4\\]");
  Tensor c = Tensor::Zeros({b, k, t});
  EXPECT_DEATH(DynamicRoutingCoefficients(u, Tensor::Zeros({b, t}), 0, &c),
               "dynamic_routing_coefficients: requires iterations >= 1, got 0");
  EXPECT_DEATH(DynamicRoutingCoefficients(u, Tensor::Zeros({b, t}), 3, &u),
               "dynamic_routing_coefficients: coupling has rank 4, expected \\[B, K, T\\]");
  Tensor s = Tensor::Zeros({b, k, dc}), v = Tensor::Zeros({b, k, dc});
  EXPECT_DEATH(
      RoutedCapsulesForward(u, Tensor::Zeros({b, k + 1, t}), &s, &v),
      "routed_capsules_forward: coupling dim 1 is 3, expected K=2 .*u_hat=\\[2, 3, 2, 5\\]");
  EXPECT_DEATH(RoutedCapsulesBackward(u, c, s, Tensor::Zeros({b, k, dc + 1}), nullptr),
               "routed_capsules_backward: dv must have shape \\[2, 2, 5\\]");
}

}  // namespace
}  // namespace attnps
