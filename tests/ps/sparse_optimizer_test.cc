#include "ps/sparse_optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace attnps::ps {
namespace {

// Plain scalar re-statements of each update rule, in double precision, one coordinate at a time.
struct ScalarState {
  double w = 0, a = 0, m = 0, v = 0, z = 0, n = 0;
  int t = 0;
};

void ScalarStep(const SparseOptimizerConfig& c, double g, ScalarState* s) {
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
      s->m = c.beta1 * s->m + (1 - c.beta1) * g;
      s->v = c.beta2 * s->v + (1 - c.beta2) * g * g;
      const double mhat = s->m / (1 - std::pow(c.beta1, s->t));
      const double vhat = s->v / (1 - std::pow(c.beta2, s->t));
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

class SparseOptimizerTest : public ::testing::TestWithParam<SparseOptimizerKind> {};

TEST_P(SparseOptimizerTest, MatchesScalarUpdateRuleOverSteps) {
  SparseOptimizerConfig c;
  c.kind = GetParam();
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
  for (int step = 0; step < 20; ++step) {
    std::vector<float> g(dim);
    for (float& x : g) x = u(rng);
    ApplySparseUpdate(c, dim, g.data(), row.data(), row.data() + dim);
    for (int i = 0; i < dim; ++i) ScalarStep(c, g[i], &ref[i]);
    for (int i = 0; i < dim; ++i) {
      ASSERT_NEAR(row[i], ref[i].w, 1e-5 + 1e-4 * std::fabs(ref[i].w))
          << "step " << step << " coordinate " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, SparseOptimizerTest,
                         ::testing::Values(SparseOptimizerKind::kSgd, SparseOptimizerKind::kAdagrad,
                                           SparseOptimizerKind::kAdam, SparseOptimizerKind::kFtrl));

TEST(AdagradTest, AccumulatorGrowsWithSquaredGradient) {
  SparseOptimizerConfig c;
  c.kind = SparseOptimizerKind::kAdagrad;
  c.initial_accumulator = 0.5f;
  float row[2] = {0.0f, 0.0f};
  InitOptimizerState(c, 1, row + 1);
  const float g = 3.0f;
  ApplySparseUpdate(c, 1, &g, row, row + 1);
  EXPECT_FLOAT_EQ(row[1], 9.5f);
}

TEST(AdamTest, LazyStepCountIsPerRow) {
  SparseOptimizerConfig c;
  c.kind = SparseOptimizerKind::kAdam;
  c.learning_rate = 0.1f;
  std::vector<float> a(1 + StateWidth(c.kind, 1)), b(a.size());
  InitOptimizerState(c, 1, a.data() + 1);
  InitOptimizerState(c, 1, b.data() + 1);
  const float g = 1.0f;
  for (int i = 0; i < 5; ++i) ApplySparseUpdate(c, 1, &g, a.data(), a.data() + 1);
  ApplySparseUpdate(c, 1, &g, b.data(), b.data() + 1);
  // A row's first update moves it by ~lr whatever the other rows' step counts are.
  EXPECT_NEAR(b[0], -0.1f, 1e-5f);
}

TEST(FtrlTest, L1KeepsSmallWeightsAtZero) {
  SparseOptimizerConfig c;
  c.kind = SparseOptimizerKind::kFtrl;
  c.ftrl_l1 = 10.0f;
  std::vector<float> row(1 + StateWidth(c.kind, 1));
  InitOptimizerState(c, 1, row.data() + 1);
  const float g = 0.5f;
  for (int i = 0; i < 3; ++i) ApplySparseUpdate(c, 1, &g, row.data(), row.data() + 1);
  EXPECT_EQ(row[0], 0.0f);
}

}  // namespace
}  // namespace attnps::ps
