#include "ops/interaction.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomTensor;

// Biases that keep every relu input x w + b at least 0.3 away from 0 for all x with
// |x_i| <= x_max[i]: b_j = +-(sum_i |w_ij| x_max[i] + 0.3), of random sign unless positive_only.
// Sets *y_max to the bounds of the relu outputs (0 for units that are always off).
Tensor SafeBiases(const Tensor& w, const std::vector<float>& x_max, std::mt19937* rng,
                  bool positive_only, std::vector<float>* y_max) {
  const int64_t in = w.dim(0), out = w.dim(1);
  Tensor b = Tensor::Empty({out});
  y_max->assign(out, 0.0f);
  std::bernoulli_distribution negative(positive_only ? 0.0 : 0.5);
  for (int64_t j = 0; j < out; ++j) {
    float bound = 0.0f;
    for (int64_t i = 0; i < in; ++i) bound += std::fabs(w[i * out + j]) * x_max[i];
    b[j] = negative(*rng) ? -(bound + 0.3f) : bound + 0.3f;
    if (b[j] > 0.0f) (*y_max)[j] = 2.0f * bound + 0.3f;
  }
  return b;
}

// ---- SENet ---------------------------------------------------------------------------------

struct SenetCase {
  int64_t b, f, d, ratio;
  bool mixed_signs;  // biases of both signs: some relu units off
};

class SenetGradTest : public ::testing::TestWithParam<SenetCase> {};

TEST_P(SenetGradTest, MatchesFiniteDifferences) {
  const SenetCase c = GetParam();
  const int64_t r = SenetHiddenSize(c.f, c.ratio);
  std::mt19937 rng(c.b * 1000 + c.f * 100 + c.d * 10 + c.ratio);
  Tensor e = RandomTensor({c.b, c.f, c.d}, &rng);
  std::vector<float> z_max(c.f, 1.0f), hidden_max, a_max;
  SenetParams p;
  p.w1 = RandomTensor({c.f, r}, &rng);
  p.b1 = SafeBiases(p.w1, z_max, &rng, !c.mixed_signs, &hidden_max);
  p.w2 = RandomTensor({r, c.f}, &rng);
  p.b2 = SafeBiases(p.w2, hidden_max, &rng, !c.mixed_signs, &a_max);
  ASSERT_GT(*std::max_element(a_max.begin(), a_max.end()), 0.0f) << "every field weight is 0";
  SenetWorkspace ws = SenetWorkspace::Allocate(c.b, c.f, r);
  auto forward = [&] {
    Tensor out = Tensor::Empty({c.b, c.f, c.d});
    SenetForward(e, p, &ws, &out);
    return std::vector<Tensor>{out};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    SenetParams g{(*d)[1], (*d)[2], (*d)[3], (*d)[4]};
    SenetBackward(e, p, dy[0], &ws, &(*d)[0], &g);
  };
  EXPECT_TRUE(GradientsMatch(
      {{"e", &e}, {"w1", &p.w1}, {"b1", &p.b1}, {"w2", &p.w2}, {"b2", &p.b2}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, SenetGradTest,
                         ::testing::Values(SenetCase{1, 1, 1, 1, false},
                                           SenetCase{3, 5, 7, 2, true}, SenetCase{2, 4, 3, 3, true},
                                           SenetCase{1, 3, 5, 1, false}));

TEST(SenetTest, HiddenSizeRoundsUp) {
  EXPECT_EQ(SenetHiddenSize(8, 3), 3);
  EXPECT_EQ(SenetHiddenSize(9, 3), 3);
  EXPECT_EQ(SenetHiddenSize(1, 4), 1);
}

TEST(SenetTest, HandComputedForward) {
  // z = [2, -1]; hidden = relu(2 * 0.5 - 1 * 1 + 0.25) = 0.25;
  // a = relu(0.25 * [2, -1] + [1, 0.5]) = [1.5, 0.25].
  Tensor e = Tensor::FromVector({1, 2, 2}, {1, 3, -2, 0});
  SenetParams p{Tensor::FromVector({2, 1}, {0.5f, 1.0f}), Tensor::FromVector({1}, {0.25f}),
                Tensor::FromVector({1, 2}, {2.0f, -1.0f}), Tensor::FromVector({2}, {1.0f, 0.5f})};
  SenetWorkspace ws = SenetWorkspace::Allocate(1, 2, 1);
  Tensor out = Tensor::Empty({1, 2, 2});
  SenetForward(e, p, &ws, &out);
  EXPECT_TRUE(AllClose(ws.z, Tensor::FromVector({1, 2}, {2, -1})));
  EXPECT_TRUE(AllClose(ws.a, Tensor::FromVector({1, 2}, {1.5f, 0.25f})));
  EXPECT_TRUE(AllClose(out, Tensor::FromVector({1, 2, 2}, {1.5f, 4.5f, -0.5f, 0})));
}

TEST(SenetDeathTest, MismatchedFieldsNameOpAndShapes) {
  Tensor e = Tensor::Zeros({2, 3, 4});
  SenetParams p = SenetParams::Zeros(4, 2);
  SenetWorkspace ws = SenetWorkspace::Allocate(2, 3, 2);
  Tensor out = Tensor::Zeros({2, 3, 4});
  EXPECT_DEATH(SenetForward(e, p, &ws, &out),
               "senet_forward: w1 dim 0 is 4, expected F=3 .*e=\\[2, 3, 4\\] w1=\\[4, 2\\]");
  SenetParams good = SenetParams::Zeros(3, 2);
  Tensor bad_dout = Tensor::Zeros({2, 3, 5});
  EXPECT_DEATH(SenetBackward(e, good, bad_dout, &ws, nullptr, nullptr),
               "senet_backward: dout must have shape \\[2, 3, 4\\]");
}

// ---- Scaled sigmoid gate -------------------------------------------------------------------

struct GateCase {
  int64_t n, c;
  float scale;
};

class ScaledSigmoidGateGradTest : public ::testing::TestWithParam<GateCase> {};

TEST_P(ScaledSigmoidGateGradTest, MatchesFiniteDifferences) {
  const GateCase c = GetParam();
  std::mt19937 rng(c.n * 10 + c.c);
  Tensor h = RandomTensor({c.n, c.c}, &rng);
  Tensor g = RandomTensor({c.n, c.c}, &rng, -3.0f, 3.0f);
  auto forward = [&] {
    Tensor out = Tensor::Empty({c.n, c.c});
    ScaledSigmoidGateForward(h, g, c.scale, &out);
    return std::vector<Tensor>{out};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    ScaledSigmoidGateBackward(h, g, c.scale, dy[0], &(*d)[0], &(*d)[1]);
  };
  EXPECT_TRUE(GradientsMatch({{"h", &h}, {"g", &g}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ScaledSigmoidGateGradTest,
                         ::testing::Values(GateCase{1, 1, 2.0f}, GateCase{3, 7, 2.0f},
                                           GateCase{5, 4, 0.5f}, GateCase{1, 9, 3.0f}));

// h = [1, -2, 3], g = [0, ln 3, -ln 3]: sigmoid(g) = [1/2, 3/4, 1/4].
Tensor GateH() { return Tensor::FromVector({1, 3}, {1, -2, 3}); }
Tensor GateG() { return Tensor::FromVector({1, 3}, {0, std::log(3.0f), -std::log(3.0f)}); }

TEST(ScaledSigmoidGateTest, HandComputedForwardAndBackward) {
  Tensor out = Tensor::Empty({1, 3});
  PosoGateForward(GateH(), GateG(), &out);  // C = 2
  EXPECT_TRUE(AllClose(out, Tensor::FromVector({1, 3}, {1, -3, 1.5f})));
  PosoGateForward(GateH(), GateG(), &out, 3.0f);
  EXPECT_TRUE(AllClose(out, Tensor::FromVector({1, 3}, {1.5f, -4.5f, 2.25f})));
  LhucForward(GateH(), GateG(), &out);
  EXPECT_TRUE(AllClose(out, Tensor::FromVector({1, 3}, {1, -3, 1.5f})));

  // dh = 2 s dout; dg = 2 h s (1 - s) dout, with dout = 1; accumulated onto 1.
  Tensor dh = Tensor::Filled({1, 3}, 1.0f), dg = Tensor::Filled({1, 3}, 1.0f);
  LhucBackward(GateH(), GateG(), Tensor::Filled({1, 3}, 1.0f), &dh, &dg);
  EXPECT_TRUE(AllClose(dh, Tensor::FromVector({1, 3}, {2, 2.5f, 1.5f})));
  EXPECT_TRUE(AllClose(dg, Tensor::FromVector({1, 3}, {1.5f, 0.25f, 2.125f})));
}

TEST(ScaledSigmoidGateDeathTest, MismatchedGateNamesOpAndShapes) {
  Tensor h = Tensor::Zeros({2, 3}), g = Tensor::Zeros({2, 4}), out = Tensor::Zeros({2, 3});
  EXPECT_DEATH(PosoGateForward(h, g, &out),
               "poso_gate_forward: g dim 1 is 4, expected C=3 .*h=\\[2, 3\\] g=\\[2, 4\\]");
  EXPECT_DEATH(LhucForward(h, g, &out), "lhuc_forward: g dim 1 is 4, expected C=3");
  Tensor dh = Tensor::Zeros({3, 3});
  EXPECT_DEATH(ScaledSigmoidGateBackward(h, h, 2.0f, h, &dh, nullptr),
               "scaled_sigmoid_gate_backward: dh must have shape \\[2, 3\\]");
}

// ---- AFM -------------------------------------------------------------------------------------

struct AfmCase {
  int64_t b, f, d, a;
};

class AfmGradTest : public ::testing::TestWithParam<AfmCase> {};

TEST_P(AfmGradTest, MatchesFiniteDifferences) {
  const AfmCase c = GetParam();
  std::mt19937 rng(c.b * 1000 + c.f * 100 + c.d * 10 + c.a);
  Tensor v = RandomTensor({c.b, c.f, c.d}, &rng);
  std::vector<float> pair_max(c.d, 1.0f), hidden_max;
  AfmParams p;
  p.w = RandomTensor({c.d, c.a}, &rng);
  p.b = SafeBiases(p.w, pair_max, &rng, false, &hidden_max);
  p.h = RandomTensor({c.a}, &rng, -0.5f, 0.5f);
  AfmWorkspace ws = AfmWorkspace::Allocate(c.b, c.f, c.d, c.a);
  auto forward = [&] {
    Tensor out = Tensor::Empty({c.b, c.d});
    AfmForward(v, p, &ws, &out);
    return std::vector<Tensor>{out};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    AfmParams g{(*d)[1], (*d)[2], (*d)[3]};
    AfmBackward(v, p, dy[0], &ws, &(*d)[0], &g);
  };
  EXPECT_TRUE(
      GradientsMatch({{"v", &v}, {"w", &p.w}, {"b", &p.b}, {"h", &p.h}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AfmGradTest,
                         ::testing::Values(AfmCase{1, 2, 1, 1}, AfmCase{3, 4, 5, 3},
                                           AfmCase{2, 5, 3, 4}, AfmCase{1, 3, 7, 2}));

TEST(AfmTest, OnePairIsItsProduct) {
  Tensor v = Tensor::FromVector({1, 2, 3}, {1, 2, 3, 4, 5, -6});
  std::mt19937 rng(3);
  AfmParams p{RandomTensor({3, 2}, &rng), RandomTensor({2}, &rng), RandomTensor({2}, &rng)};
  AfmWorkspace ws = AfmWorkspace::Allocate(1, 2, 3, 2);
  Tensor out = Tensor::Empty({1, 3});
  AfmForward(v, p, &ws, &out);
  EXPECT_TRUE(AllClose(out, Tensor::FromVector({1, 3}, {4, 10, -18})));
  EXPECT_TRUE(AllClose(ws.attn, Tensor::FromVector({1, 1}, {1})));
}

TEST(AfmTest, HandComputedForwardOverThreePairs) {
  // d = A = 1, w = h = 1, b = 0: pairs (0,1) = 2, (0,2) = -1, (1,2) = -2; scores relu = [2, 0, 0];
  // a = [e^2, 1, 1] / (e^2 + 2); out = 2 a0 - a1 - 2 a2.
  Tensor v = Tensor::FromVector({1, 3, 1}, {1, 2, -1});
  AfmParams p{Tensor::FromVector({1, 1}, {1}), Tensor::FromVector({1}, {0}),
              Tensor::FromVector({1}, {1})};
  AfmWorkspace ws = AfmWorkspace::Allocate(1, 3, 1, 1);
  Tensor out = Tensor::Empty({1, 1});
  AfmForward(v, p, &ws, &out);
  EXPECT_TRUE(AllClose(
      ws.attn, Tensor::FromVector(
                   {1, 3}, {0.7869860421615985f, 0.10650697891920075f, 0.10650697891920075f})));
  EXPECT_TRUE(AllClose(out, Tensor::FromVector({1, 1}, {1.2544511475655948f})));
}

TEST(AfmDeathTest, BadShapesNameOpAndShapes) {
  Tensor v = Tensor::Zeros({2, 3, 4});
  AfmParams p = AfmParams::Zeros(5, 2);
  AfmWorkspace ws = AfmWorkspace::Allocate(2, 3, 4, 2);
  Tensor out = Tensor::Zeros({2, 4});
  EXPECT_DEATH(AfmForward(v, p, &ws, &out),
               "afm_forward: w dim 0 is 5, expected d=4 .*v=\\[2, 3, 4\\] w=\\[5, 2\\]");
  Tensor one_field = Tensor::Zeros({2, 1, 4});
  EXPECT_DEATH(AfmForward(one_field, AfmParams::Zeros(4, 2), &ws, &out),
               "afm_forward: requires F >= 2 .*v=\\[2, 1, 4\\]");
  Tensor bad_dout = Tensor::Zeros({2, 3});
  EXPECT_DEATH(AfmBackward(v, AfmParams::Zeros(4, 2), bad_dout, &ws, nullptr, nullptr),
               "afm_backward: dout dim 1 is 3, expected d=4");
}

}  // namespace
}  // namespace attnps
