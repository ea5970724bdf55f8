#include "ops/norm.h"

#include <gtest/gtest.h>

#include <random>

#include "ops/blas.h"
#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomTensor;

// ---- LayerNorm ----------------------------------------------------------------------------------

struct LayerNormCase {
  int64_t n, c;
};

class LayerNormGradTest : public ::testing::TestWithParam<LayerNormCase> {};

TEST_P(LayerNormGradTest, MatchesFiniteDifferences) {
  const LayerNormCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.n * 100 + c.c));
  Tensor x = RandomTensor({c.n, c.c}, &rng, -2.0f, 2.0f);
  Tensor gamma = RandomTensor({c.c}, &rng, 0.5f, 1.5f);
  Tensor beta = RandomTensor({c.c}, &rng);
  Tensor mean = Tensor::Empty({c.n}), rstd = Tensor::Empty({c.n});
  auto forward = [&] {
    Tensor y = Tensor::Empty({c.n, c.c});
    LayerNormForward(x, gamma, beta, kLayerNormEps, &y, &mean, &rstd);
    return std::vector<Tensor>{y};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    LayerNormBackward(x, gamma, mean, rstd, dy[0], &(*d)[0], &(*d)[1], &(*d)[2]);
  };
  testing::GradCheckOptions options;
  options.step = 2e-3;  // the normalization is strongly curved for small C
  EXPECT_TRUE(
      GradientsMatch({{"x", &x}, {"gamma", &gamma}, {"beta", &beta}}, forward, backward, options));
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormGradTest,
                         ::testing::Values(LayerNormCase{1, 5}, LayerNormCase{3, 5},
                                           LayerNormCase{17, 13}, LayerNormCase{4, 2},
                                           LayerNormCase{130, 3}));

TEST(LayerNormTest, HandComputedForward) {
  // Row 0: mean 2.5, variance 1.25; row 1: mean 0, variance 2.
  Tensor x = Tensor::FromVector({2, 4}, {1, 2, 3, 4, -2, 0, 0, 2});
  Tensor gamma = Tensor::FromVector({4}, {1.0f, 1.0f, 2.0f, 0.5f});
  Tensor beta = Tensor::FromVector({4}, {0.0f, 0.0f, 1.0f, -1.0f});
  Tensor y = Tensor::Empty({2, 4}), mean = Tensor::Empty({2}), rstd = Tensor::Empty({2});
  LayerNormForward(x, gamma, beta, 1e-5f, &y, &mean, &rstd);
  EXPECT_TRUE(
      AllClose(y, Tensor::FromVector({2, 4}, {-1.3416354f, -0.4472118f, 1.8944236f, -0.3291823f,
                                              -1.4142100f, 0.0f, 1.0f, -0.2928950f})));
  EXPECT_TRUE(AllClose(mean, Tensor::FromVector({2}, {2.5f, 0.0f})));
  EXPECT_TRUE(AllClose(rstd, Tensor::FromVector({2}, {0.8944236f, 0.7071050f})));
}

TEST(LayerNormDeathTest, MismatchedGammaNamesOpAndShapes) {
  Tensor x = Tensor::Zeros({4, 3}), y = Tensor::Zeros({4, 3});
  Tensor mean = Tensor::Zeros({4}), rstd = Tensor::Zeros({4});
  EXPECT_DEATH(LayerNormForward(x, Tensor::Zeros({5}), Tensor::Zeros({3}), 1e-5f, &y, &mean, &rstd),
               "layer_norm_forward: gamma dim 0 is 5, expected C=3 .*x=\\[4, 3\\] gamma=\\[5\\]");
  EXPECT_DEATH(LayerNormBackward(x, Tensor::Zeros({3}), Tensor::Zeros({3}), rstd, y, nullptr,
                                 nullptr, nullptr),
               "layer_norm_backward: mean dim 0 is 3, expected N=4");
}

// ---- Dropout ------------------------------------------------------------------------------------

Tensor DropoutMask(const Shape& shape, float rate, uint64_t seed) {
  Tensor x = Tensor::Filled(shape, 1.0f);
  Tensor mask = Tensor::Empty(shape), y = Tensor::Empty(shape);
  DropoutForward(x, rate, seed, Mode::kTraining, &mask, &y);
  return mask;
}

struct DropoutCase {
  Shape shape;
  float rate;
};

class DropoutGradTest : public ::testing::TestWithParam<DropoutCase> {};

TEST_P(DropoutGradTest, MatchesFiniteDifferences) {
  const DropoutCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(NumElements(c.shape)));
  Tensor x = RandomTensor(c.shape, &rng);
  Tensor mask = Tensor::Empty(c.shape);
  auto forward = [&] {
    Tensor y = Tensor::Empty(c.shape);
    DropoutForward(x, c.rate, 1234, Mode::kTraining, &mask, &y);
    return std::vector<Tensor>{y};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    DropoutBackward(mask, dy[0], &(*d)[0]);
  };
  EXPECT_TRUE(GradientsMatch({{"x", &x}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, DropoutGradTest,
                         ::testing::Values(DropoutCase{{1}, 0.5f}, DropoutCase{{3, 5, 7}, 0.3f},
                                           DropoutCase{{17, 13}, 0.5f},
                                           DropoutCase{{2, 1, 9}, 0.1f}));

TEST(DropoutTest, SameSeedGivesTheSameMask) {
  EXPECT_TRUE(AllClose(DropoutMask({50, 30}, 0.4f, 99), DropoutMask({50, 30}, 0.4f, 99), 0, 0));
}

TEST(DropoutTest, DifferentSeedsGiveDifferentMasks) {
  const Tensor a = DropoutMask({50, 30}, 0.4f, 99), b = DropoutMask({50, 30}, 0.4f, 100);
  int64_t differ = 0;
  for (int64_t i = 0; i < a.numel(); ++i) differ += a[i] != b[i];
  // Independent masks differ on 2 * 0.4 * 0.6 = 48% of the elements.
  EXPECT_GT(differ, a.numel() * 4 / 10);
}

TEST(DropoutTest, DropRateIsCloseToRateAndKeptValuesAreScaled) {
  const int64_t n = 100000;
  const float rate = 0.3f;
  const Tensor mask = DropoutMask({n}, rate, 7);
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (mask[i] == 0.0f) {
      ++dropped;
    } else {
      ASSERT_FLOAT_EQ(mask[i], 1.0f / 0.7f) << "at " << i;
    }
  }
  // The standard deviation of the observed rate is sqrt(0.21 / 1e5) ~ 0.0015.
  EXPECT_NEAR(static_cast<double>(dropped) / n, rate, 0.01);
}

TEST(DropoutTest, MaskDoesNotDependOnTheThreadCount) {
  const int threads = NumThreads();
  SetNumThreads(1);
  const Tensor one = DropoutMask({300, 333}, 0.5f, 5);
  SetNumThreads(4);
  const Tensor four = DropoutMask({300, 333}, 0.5f, 5);
  SetNumThreads(threads);
  EXPECT_TRUE(AllClose(one, four, 0, 0));
}

TEST(DropoutTest, SliceWithItsFirstIndexDrawsTheWholeTensorsMask) {
  const Tensor whole = DropoutMask({40, 7}, 0.5f, 11);
  for (int64_t begin : {0, 3, 17}) {  // odd and even flat offsets (rows of 7)
    const int64_t end = std::min<int64_t>(40, begin + 9);
    Tensor x = Tensor::Filled({end - begin, 7}, 1.0f);
    Tensor mask = Tensor::Empty(x.shape()), y = Tensor::Empty(x.shape());
    DropoutForward(x, 0.5f, 11, Mode::kTraining, &mask, &y, begin * 7);
    EXPECT_TRUE(AllClose(mask, whole.Rows(begin, end), 0, 0)) << "rows from " << begin;
  }
}

TEST(DropoutTest, ZeroRateAndInferenceAreIdentity) {
  std::mt19937 rng(1);
  Tensor x = RandomTensor({7, 11}, &rng);
  Tensor mask = Tensor::Empty({7, 11}), y = Tensor::Empty({7, 11});
  DropoutForward(x, 0.0f, 3, Mode::kTraining, &mask, &y);
  EXPECT_TRUE(AllClose(y, x, 0, 0));
  EXPECT_TRUE(AllClose(mask, Tensor::Filled({7, 11}, 1.0f), 0, 0));
  DropoutForward(x, 0.5f, 3, Mode::kInference, &mask, &y);
  EXPECT_TRUE(AllClose(y, x, 0, 0));
  Tensor dy = RandomTensor({7, 11}, &rng), dx = Tensor::Zeros({7, 11});
  DropoutBackward(mask, dy, &dx);
  EXPECT_TRUE(AllClose(dx, dy, 0, 0));
}

TEST(DropoutDeathTest, BadShapesAndRateNameOpAndShapes) {
  Tensor x = Tensor::Zeros({4, 3}), mask = Tensor::Zeros({4, 3}), y = Tensor::Zeros({3, 4});
  EXPECT_DEATH(DropoutForward(x, 0.5f, 1, Mode::kTraining, &mask, &y),
               "dropout_forward: y must have shape \\[4, 3\\] .*y=\\[3, 4\\]");
  EXPECT_DEATH(DropoutForward(x, 1.0f, 1, Mode::kTraining, &mask, &mask),
               "dropout_forward: requires 0 <= rate < 1");
  Tensor dx = Tensor::Zeros({12});
  EXPECT_DEATH(DropoutBackward(mask, mask, &dx), "dropout_backward: dx must have shape \\[4, 3\\]");
}

}  // namespace
}  // namespace attnps
