#include "ps/sparse_optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace attnps::ps {
namespace {

// Plain scalar re-statements of each update rule, in double precision, one coordinate at a time.
struct ScalarState {
  double w = 0, a = 0, m = 0, v = 0, z = 0, n = 0;
  int t = 0;
};

// `global_t`: the push's global step + 1 (Adam's GLOBAL_STEP correction).
void ScalarStep(const SparseOptimizerConfig& c, double g, int global_t, ScalarState* s) {
  switch (c.kind) {
    case SparseOptimizerKind::kSgd:
      s->w -= c.learning_rate * g;
      break;
    case SparseOptimizerKind::kAdagrad:
      s->a += g * g;
      s->w -= c.learning_rate * g / (std::sqrt(s->a) + c.epsilon);
      break;
    case SparseOptimizerKind::kAdam: {
      s->t += 1;
      const int t = c.adam_bias_correction == AdamBiasCorrection::kRowStep ? s->t : global_t;
      s->m = c.beta1 * s->m + (1 - c.beta1) * g;
      s->v = c.beta2 * s->v + (1 - c.beta2) * g * g;
      const double mhat = s->m / (1 - std::pow(c.beta1, t));
      const double vhat = s->v / (1 - std::pow(c.beta2, t));
      s->w -= c.learning_rate * mhat / (std::sqrt(vhat) + c.epsilon);
      break;
    }
    case SparseOptimizerKind::kFtrl: {
      const double sigma = (std::sqrt(s->n + g * g) - std::sqrt(s->n)) / c.ftrl_alpha;
      s->z += g - sigma * s->w;
      s->n += g * g;
      s->w = std::fabs(s->z) <= c.ftrl_l1
                 ? 0.0
                 : -(s->z - (s->z > 0 ? 1 : -1) * c.ftrl_l1) /
                       ((c.ftrl_beta + std::sqrt(s->n)) / c.ftrl_alpha + c.ftrl_l2);
      break;
    }
  }
}

// Every kind, and Adam in both bias-correction modes.
struct OptimizerCase {
  SparseOptimizerKind kind;
  AdamBiasCorrection correction = AdamBiasCorrection::kGlobalStep;
};

class SparseOptimizerTest : public ::testing::TestWithParam<OptimizerCase> {};

TEST_P(SparseOptimizerTest, MatchesScalarUpdateRuleOverSteps) {
  SparseOptimizerConfig c;
  c.kind = GetParam().kind;
  c.adam_bias_correction = GetParam().correction;
  c.learning_rate = 0.05f;
  c.initial_accumulator = 0.1f;
  c.ftrl_l1 = 0.01f;
  c.ftrl_l2 = 0.1f;
  const int dim = 5;
  std::vector<float> row(dim + StateWidth(c.kind, dim));
  std::vector<ScalarState> ref(dim);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int i = 0; i < dim; ++i) ref[i].w = row[i] = u(rng);
  InitOptimizerState(c, dim, row.data() + dim);
  for (auto& s : ref) s.a = c.initial_accumulator;
  // Pushed at every other global step from 100 on: the row's count and the global step differ.
  for (int push = 0; push < 20; ++push) {
    const uint64_t step = 100 + 2 * push;
    std::vector<float> g(dim);
    for (float& x : g) x = u(rng);
    ApplySparseUpdate(c, PrepareSparseStep(c, step), dim, g.data(), row.data(), row.data() + dim);
    for (int i = 0; i < dim; ++i) ScalarStep(c, g[i], static_cast<int>(step) + 1, &ref[i]);
    for (int i = 0; i < dim; ++i) {
      ASSERT_NEAR(row[i], ref[i].w, 1e-5 + 1e-4 * std::fabs(ref[i].w))
          << "push " << push << " coordinate " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, SparseOptimizerTest,
    ::testing::Values(OptimizerCase{SparseOptimizerKind::kSgd},
                      OptimizerCase{SparseOptimizerKind::kAdagrad},
                      OptimizerCase{SparseOptimizerKind::kAdam, AdamBiasCorrection::kGlobalStep},
                      OptimizerCase{SparseOptimizerKind::kAdam, AdamBiasCorrection::kRowStep},
                      OptimizerCase{SparseOptimizerKind::kFtrl}));

TEST(AdagradTest, AccumulatorGrowsWithSquaredGradient) {
  SparseOptimizerConfig c;
  c.kind = SparseOptimizerKind::kAdagrad;
  c.initial_accumulator = 0.5f;
  float row[2] = {0.0f, 0.0f};
  InitOptimizerState(c, 1, row + 1);
  const float g = 3.0f;
  ApplySparseUpdate(c, PrepareSparseStep(c, 0), 1, &g, row, row + 1);
  EXPECT_FLOAT_EQ(row[1], 9.5f);
}

// A row's first update at global step 999 (t = 1000).
float FirstUpdateLate(AdamBiasCorrection correction) {
  SparseOptimizerConfig c;
  c.kind = SparseOptimizerKind::kAdam;
  c.learning_rate = 0.1f;
  c.adam_bias_correction = correction;
  std::vector<float> row(1 + StateWidth(c.kind, 1));
  InitOptimizerState(c, 1, row.data() + 1);
  const float g = 1.0f;
  ApplySparseUpdate(c, PrepareSparseStep(c, 999), 1, &g, row.data(), row.data() + 1);
  return row[0];
}

TEST(AdamTest, RowStepCorrectionMovesAFreshRowByTheLearningRate) {
  EXPECT_NEAR(FirstUpdateLate(AdamBiasCorrection::kRowStep), -0.1f, 1e-5f);
}

TEST(AdamTest, GlobalStepCorrectionIsTorchSparseAdams) {
  // m = 0.1, v = 0.001, corrections 1 - 0.9^1000 and 1 - 0.999^1000 (torch.optim.SparseAdam).
  const double c2 = 1 - std::pow(0.999, 1000);
  const double expected = -0.1 * 0.1 / (std::sqrt(0.001 / c2) + 1e-8);
  EXPECT_NEAR(FirstUpdateLate(AdamBiasCorrection::kGlobalStep), expected, 1e-5);
  EXPECT_LT(FirstUpdateLate(AdamBiasCorrection::kGlobalStep), -0.15f);  // well beyond lr
}

TEST(AdamTest, BothCorrectionsKeepTheRowCount) {
  // The count is kept in either mode, so a checkpoint resumes under the other.
  for (const AdamBiasCorrection correction :
       {AdamBiasCorrection::kGlobalStep, AdamBiasCorrection::kRowStep}) {
    SparseOptimizerConfig c;
    c.kind = SparseOptimizerKind::kAdam;
    c.adam_bias_correction = correction;
    std::vector<float> row(1 + StateWidth(c.kind, 1));
    InitOptimizerState(c, 1, row.data() + 1);
    const float g = 0.5f;
    for (uint64_t step = 0; step < 3; ++step) {
      ApplySparseUpdate(c, PrepareSparseStep(c, 10 * step), 1, &g, row.data(), row.data() + 1);
    }
    uint32_t count = 0;
    std::memcpy(&count, row.data() + 3, sizeof(count));
    EXPECT_EQ(count, 3u);
  }
}

TEST(FtrlTest, L1KeepsSmallWeightsAtZero) {
  SparseOptimizerConfig c;
  c.kind = SparseOptimizerKind::kFtrl;
  c.ftrl_l1 = 10.0f;
  std::vector<float> row(1 + StateWidth(c.kind, 1));
  InitOptimizerState(c, 1, row.data() + 1);
  const float g = 0.5f;
  for (int i = 0; i < 3; ++i) {
    ApplySparseUpdate(c, PrepareSparseStep(c, i), 1, &g, row.data(), row.data() + 1);
  }
  EXPECT_EQ(row[0], 0.0f);
}

}  // namespace
}  // namespace attnps::ps
