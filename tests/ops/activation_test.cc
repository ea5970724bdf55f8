#include "ops/activation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomAwayFromZero;
using testing::RandomTensor;

// ---- ReLU, sigmoid, tanh ----------------------------------------------------------------------

enum class Unary { kRelu, kSigmoid, kTanh };

void UnaryForward(Unary op, const Tensor& x, Tensor* y) {
  switch (op) {
    case Unary::kRelu:
      return ReluForward(x, y);
    case Unary::kSigmoid:
      return SigmoidForward(x, y);
    case Unary::kTanh:
      return TanhForward(x, y);
  }
}

void UnaryBackward(Unary op, const Tensor& y, const Tensor& dy, Tensor* dx) {
  switch (op) {
    case Unary::kRelu:
      return ReluBackward(y, dy, dx);
    case Unary::kSigmoid:
      return SigmoidBackward(y, dy, dx);
    case Unary::kTanh:
      return TanhBackward(y, dy, dx);
  }
}

struct UnaryCase {
  Unary op;
  Shape shape;
};

class ElementwiseGradTest : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(ElementwiseGradTest, MatchesFiniteDifferences) {
  const UnaryCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(NumElements(c.shape)));
  // Away from ReLU's kink; spread over [-3, 3] to reach the saturating parts of sigmoid / tanh.
  Tensor x = RandomAwayFromZero(c.shape, &rng, 0.1f, 3.0f);
  Tensor y = Tensor::Empty(c.shape);
  auto forward = [&] {
    UnaryForward(c.op, x, &y);
    return std::vector<Tensor>{y.Clone()};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    UnaryBackward(c.op, y, dy[0], &(*d)[0]);
  };
  EXPECT_TRUE(GradientsMatch({{"x", &x}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ElementwiseGradTest,
    ::testing::Values(UnaryCase{Unary::kRelu, {1}}, UnaryCase{Unary::kRelu, {3, 5, 7}},
                      UnaryCase{Unary::kRelu, {17, 13}}, UnaryCase{Unary::kSigmoid, {1, 1}},
                      UnaryCase{Unary::kSigmoid, {3, 5, 7}}, UnaryCase{Unary::kSigmoid, {17, 13}},
                      UnaryCase{Unary::kTanh, {1}}, UnaryCase{Unary::kTanh, {3, 5, 7}},
                      UnaryCase{Unary::kTanh, {17, 13}}));

TEST(ElementwiseTest, HandComputedForward) {
  // sigmoid(ln 3) = 3/4, tanh(ln 2) = (4 - 1) / (4 + 1) = 0.6.
  const float ln2 = std::log(2.0f), ln3 = std::log(3.0f);
  Tensor x = Tensor::FromVector({2, 2}, {-1.0f, 0.0f, ln3, -ln3});
  Tensor y = Tensor::Empty({2, 2});
  ReluForward(x, &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({2, 2}, {0, 0, ln3, 0})));
  SigmoidForward(x, &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({2, 2}, {0.26894142f, 0.5f, 0.75f, 0.25f})));
  Tensor xt = Tensor::FromVector({3}, {0.0f, ln2, -ln2});
  Tensor yt = Tensor::Empty({3});
  TanhForward(xt, &yt);
  EXPECT_TRUE(AllClose(yt, Tensor::FromVector({3}, {0.0f, 0.6f, -0.6f})));
}

TEST(ElementwiseTest, BackwardAccumulates) {
  Tensor y = Tensor::FromVector({2}, {0.5f, 0.0f});
  Tensor dy = Tensor::FromVector({2}, {2.0f, 2.0f});
  Tensor dx = Tensor::Filled({2}, 1.0f);
  SigmoidBackward(y, dy, &dx);  // += 2 * 0.25, += 0
  EXPECT_TRUE(AllClose(dx, Tensor::FromVector({2}, {1.5f, 1.0f})));
  ReluBackward(y, dy, &dx);  // += 2 where y > 0
  EXPECT_TRUE(AllClose(dx, Tensor::FromVector({2}, {3.5f, 1.0f})));
}

TEST(ElementwiseDeathTest, MismatchedShapesNameOpAndShapes) {
  Tensor x = Tensor::Zeros({2, 3});
  Tensor y = Tensor::Zeros({3, 2});
  EXPECT_DEATH(ReluForward(x, &y), "relu_forward: y must have shape \\[2, 3\\] .*y=\\[3, 2\\]");
  EXPECT_DEATH(SigmoidForward(x, &y), "sigmoid_forward: y must have shape \\[2, 3\\]");
  Tensor dx = Tensor::Zeros({6});
  EXPECT_DEATH(TanhBackward(x, x, &dx),
               "tanh_backward: dx must have shape \\[2, 3\\] .*dx=\\[6\\]");
}

// ---- PReLU --------------------------------------------------------------------------------------

struct RowsCase {
  int64_t n, c;
};

class PreluGradTest : public ::testing::TestWithParam<RowsCase> {};

TEST_P(PreluGradTest, MatchesFiniteDifferences) {
  const RowsCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.n * 100 + c.c));
  Tensor x = RandomAwayFromZero({c.n, c.c}, &rng);
  Tensor alpha = RandomTensor({c.c}, &rng, -0.5f, 0.5f);
  auto forward = [&] {
    Tensor y = Tensor::Empty({c.n, c.c});
    PreluForward(x, alpha, &y);
    return std::vector<Tensor>{y};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    PreluBackward(x, alpha, dy[0], &(*d)[0], &(*d)[1]);
  };
  EXPECT_TRUE(GradientsMatch({{"x", &x}, {"alpha", &alpha}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, PreluGradTest,
                         ::testing::Values(RowsCase{1, 1}, RowsCase{3, 5}, RowsCase{17, 13},
                                           RowsCase{1, 9}, RowsCase{70, 3}));

TEST(PreluTest, HandComputedForward) {
  Tensor x = Tensor::FromVector({2, 2}, {2.0f, -1.0f, -3.0f, 0.5f});
  Tensor alpha = Tensor::FromVector({2}, {0.1f, -2.0f});
  Tensor y = Tensor::Empty({2, 2});
  PreluForward(x, alpha, &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({2, 2}, {2.0f, 2.0f, -0.3f, 0.5f})));
}

TEST(PreluDeathTest, MismatchedAlphaNamesOpAndShapes) {
  Tensor x = Tensor::Zeros({4, 3});
  Tensor y = Tensor::Zeros({4, 3});
  EXPECT_DEATH(PreluForward(x, Tensor::Zeros({4}), &y),
               "prelu_forward: alpha dim 0 is 4, expected C=3 .*x=\\[4, 3\\] alpha=\\[4\\]");
  Tensor dalpha = Tensor::Zeros({2});
  EXPECT_DEATH(PreluBackward(x, Tensor::Zeros({3}), y, nullptr, &dalpha),
               "prelu_backward: dalpha dim 0 is 2, expected C=3");
}

// ---- Dice ---------------------------------------------------------------------------------------

// Dice with its caller-owned state.
struct DiceState {
  Tensor running_mean, running_var, saved_mean, saved_rstd;

  static DiceState Make(int64_t c) {
    return {Tensor::Zeros({c}), Tensor::Filled({c}, 1.0f), Tensor::Empty({c}), Tensor::Empty({c})};
  }
  void Forward(const Tensor& x, const Tensor& alpha, Mode mode, Tensor* y,
               const DiceOptions& options = {}) {
    DiceForward(x, alpha, mode, options, &running_mean, &running_var, y, &saved_mean, &saved_rstd);
  }
};

struct DiceCase {
  int64_t n, c;
  Mode mode;
};

class DiceGradTest : public ::testing::TestWithParam<DiceCase> {};

TEST_P(DiceGradTest, MatchesFiniteDifferences) {
  const DiceCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.n * 100 + c.c));
  Tensor x = RandomTensor({c.n, c.c}, &rng, -2.0f, 2.0f);
  Tensor alpha = RandomTensor({c.c}, &rng, -0.5f, 0.5f);
  DiceState state = DiceState::Make(c.c);
  state.running_mean = RandomTensor({c.c}, &rng, -0.5f, 0.5f);
  state.running_var = RandomTensor({c.c}, &rng, 0.5f, 1.5f);
  Tensor y = Tensor::Empty({c.n, c.c});
  auto forward = [&] {
    state.Forward(x, alpha, c.mode, &y);
    return std::vector<Tensor>{y.Clone()};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    DiceBackward(x, alpha, c.mode, state.saved_mean, state.saved_rstd, dy[0], &(*d)[0], &(*d)[1]);
  };
  const Tensor first_y = forward()[0];
  const Tensor first_running_mean = state.running_mean.Clone();
  EXPECT_TRUE(GradientsMatch({{"x", &x}, {"alpha", &alpha}}, forward, backward));
  // Every forward call above updated the running statistics in training; the output must only
  // depend on them in inference, where they are not updated.
  EXPECT_TRUE(AllClose(y, first_y, 0.0f, 0.0f));
  if (c.mode == Mode::kTraining && c.n > 1) {
    EXPECT_FALSE(AllClose(state.running_mean, first_running_mean, 1e-6f, 0.0f));
  } else if (c.mode == Mode::kInference) {
    EXPECT_TRUE(AllClose(state.running_mean, first_running_mean, 0.0f, 0.0f));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DiceGradTest,
    ::testing::Values(DiceCase{3, 5, Mode::kTraining}, DiceCase{17, 13, Mode::kTraining},
                      DiceCase{1, 4, Mode::kTraining}, DiceCase{2, 7, Mode::kTraining},
                      DiceCase{40, 3, Mode::kTraining}, DiceCase{8, 3, Mode::kInference},
                      DiceCase{1, 1, Mode::kInference}, DiceCase{17, 13, Mode::kInference}));

TEST(DiceTest, TrainingUsesBatchStatisticsAndUpdatesRunningStats) {
  // One channel, x = 1, 2, 6: mean 3, biased variance 14/3, unbiased 7; alpha = 0.5.
  Tensor x = Tensor::FromVector({3, 1}, {1, 2, 6});
  Tensor alpha = Tensor::FromVector({1}, {0.5f});
  DiceState state = DiceState::Make(1);  // running mean 0, running var 1
  Tensor y = Tensor::Empty({3, 1});
  state.Forward(x, alpha, Mode::kTraining, &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({3, 1}, {0.6418867473768484f, 1.386295706708136f,
                                                      5.401168323470687f})));
  EXPECT_TRUE(AllClose(state.running_mean, Tensor::FromVector({1}, {0.3f})));  // 0.9*0 + 0.1*3
  EXPECT_TRUE(AllClose(state.running_var, Tensor::FromVector({1}, {1.6f})));   // 0.9*1 + 0.1*7
  EXPECT_TRUE(AllClose(state.saved_mean, Tensor::FromVector({1}, {3.0f})));
  EXPECT_TRUE(AllClose(state.saved_rstd, Tensor::FromVector({1}, {0.46291004988627577f})));
}

TEST(DiceTest, InferenceUsesMovingAverages) {
  Tensor x = Tensor::FromVector({2, 2}, {3.0f, -1.5f, -1.0f, 0.5f});
  Tensor alpha = Tensor::FromVector({2}, {0.25f, -0.5f});
  DiceState state = DiceState::Make(2);
  state.running_mean = Tensor::FromVector({2}, {1.0f, -1.0f});
  state.running_var = Tensor::FromVector({2}, {4.0f, 0.25f});
  Tensor y = Tensor::Empty({2, 2});
  state.Forward(x, alpha, Mode::kInference, &y);
  // p = sigmoid((x - running_mean) / sqrt(running_var + eps)), y = p x + (1 - p) alpha x.
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({2, 2}, {2.39488180136454f, 0.14488179306997417f,
                                                      -0.45170606621182f, 0.46443059308387524f})));
  EXPECT_TRUE(AllClose(state.running_mean, Tensor::FromVector({2}, {1.0f, -1.0f}), 0.0f, 0.0f));
  EXPECT_TRUE(AllClose(state.running_var, Tensor::FromVector({2}, {4.0f, 0.25f}), 0.0f, 0.0f));
}

TEST(DiceTest, RunningStatisticsConvergeToTheDataStatistics) {
  const int64_t n = 64, c = 3;
  const float mu[c] = {2.0f, -1.0f, 0.5f}, sigma[c] = {0.5f, 2.0f, 1.0f};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  Tensor x = Tensor::Empty({n, c}), y = Tensor::Empty({n, c});
  Tensor alpha = Tensor::Zeros({c});
  DiceState state = DiceState::Make(c);
  for (int step = 0; step < 300; ++step) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < c; ++j) x[r * c + j] = mu[j] + sigma[j] * normal(rng);
    state.Forward(x, alpha, Mode::kTraining, &y);
  }
  for (int64_t j = 0; j < c; ++j) {
    EXPECT_NEAR(state.running_mean[j], mu[j], 0.15f * sigma[j]) << "channel " << j;
    EXPECT_NEAR(state.running_var[j], sigma[j] * sigma[j], 0.15f * sigma[j] * sigma[j])
        << "channel " << j;
  }
}

TEST(DiceTest, SingleRowTrainingGivesHalfGateWithoutNaN) {
  // N = 1: the batch variance is 0, so p = sigmoid(0) = 1/2 and y = x (1 + alpha) / 2.
  Tensor x = Tensor::FromVector({1, 3}, {2.0f, -4.0f, 0.0f});
  Tensor alpha = Tensor::FromVector({3}, {0.5f, -1.0f, 0.25f});
  DiceState state = DiceState::Make(3);
  Tensor y = Tensor::Empty({1, 3});
  state.Forward(x, alpha, Mode::kTraining, &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({1, 3}, {1.5f, 0.0f, 0.0f})));
  Tensor dy = Tensor::FromVector({1, 3}, {1.0f, 1.0f, 1.0f});
  Tensor dx = Tensor::Zeros({1, 3}), dalpha = Tensor::Zeros({3});
  DiceBackward(x, alpha, Mode::kTraining, state.saved_mean, state.saved_rstd, dy, &dx, &dalpha);
  // dx = (1 + alpha) / 2 (the statistics move with x), dalpha = x / 2.
  EXPECT_TRUE(AllClose(dx, Tensor::FromVector({1, 3}, {0.75f, 0.0f, 0.625f})));
  EXPECT_TRUE(AllClose(dalpha, Tensor::FromVector({3}, {1.0f, -2.0f, 0.0f})));
  EXPECT_TRUE(AllClose(state.running_var, Tensor::Filled({3}, 1.0f)));  // left unchanged
}

TEST(DiceDeathTest, BadShapesAndOptionsNameOpAndShapes) {
  DiceState state = DiceState::Make(3);
  Tensor x = Tensor::Zeros({4, 3}), y = Tensor::Zeros({4, 3});
  EXPECT_DEATH(state.Forward(x, Tensor::Zeros({4}), Mode::kTraining, &y),
               "dice_forward: alpha dim 0 is 4, expected C=3 .*x=\\[4, 3\\] alpha=\\[4\\]");
  EXPECT_DEATH(state.Forward(x, Tensor::Zeros({3}), Mode::kTraining, &y, DiceOptions{0.1f, 0.0f}),
               "dice_forward: requires eps > 0");
  Tensor dx = Tensor::Zeros({3, 4});
  EXPECT_DEATH(DiceBackward(x, Tensor::Zeros({3}), Mode::kTraining, state.saved_mean,
                            state.saved_rstd, y, &dx, nullptr),
               "dice_backward: dx dim 0 is 3, expected N=4 .*dx=\\[3, 4\\]");
}

}  // namespace
}  // namespace attnps
