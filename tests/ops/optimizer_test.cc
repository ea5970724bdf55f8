#include "ops/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::RandomTensor;

// ---- Scalar double-precision re-implementations of the update rules --------------------------

struct RefState {
  std::vector<double> p, s1, s2;  // params and up to two state vectors
  int64_t t = 0;
};

RefState MakeRef(const Tensor& params, const DenseOptimizerOptions& o) {
  RefState r;
  const size_t n = static_cast<size_t>(params.numel());
  r.p.assign(params.data(), params.data() + n);
  const double init =
      o.kind == DenseOptimizerKind::kAdagrad ? o.adagrad.initial_accumulator_value : 0.0;
  r.s1.assign(n, init);
  r.s2.assign(n, 0.0);
  return r;
}

void RefStep(const DenseOptimizerOptions& o, const Tensor& grads, RefState* r) {
  const double lr = o.learning_rate;
  ++r->t;
  for (size_t i = 0; i < r->p.size(); ++i) {
    double g = grads[static_cast<int64_t>(i)];
    double& p = r->p[i];
    switch (o.kind) {
      case DenseOptimizerKind::kSgd: {
        const SgdOptions& s = o.sgd;
        g += s.weight_decay * p;
        if (s.momentum == 0.0f) {
          p -= lr * g;
        } else {
          double& buf = r->s1[i];
          buf = s.momentum * buf + g;
          p -= lr * (s.momentum_kind == MomentumKind::kNesterov ? g + s.momentum * buf : buf);
        }
        break;
      }
      case DenseOptimizerKind::kAdam: {
        const AdamOptions& a = o.adam;
        if (a.weight_decay_kind == WeightDecayKind::kDecoupled) {
          p -= lr * a.weight_decay * p;
        } else {
          g += a.weight_decay * p;
        }
        double& m = r->s1[i];
        double& v = r->s2[i];
        m = a.beta1 * m + (1 - a.beta1) * g;
        v = a.beta2 * v + (1 - a.beta2) * g * g;
        const double m_hat = m / (1 - std::pow(double{a.beta1}, r->t));
        const double v_hat = v / (1 - std::pow(double{a.beta2}, r->t));
        p -= lr * m_hat / (std::sqrt(v_hat) + a.eps);
        break;
      }
      case DenseOptimizerKind::kAdagrad: {
        double& acc = r->s1[i];
        acc += g * g;
        p -= lr * g / (std::sqrt(acc) + o.adagrad.eps);
        break;
      }
    }
  }
}

Tensor ToTensor(const std::vector<double>& v) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t[static_cast<int64_t>(i)] = static_cast<float>(v[i]);
  return t;
}

// ---- Optimizers against the reference ---------------------------------------------------------

struct OptimizerCase {
  const char* name;
  DenseOptimizerOptions options;
};

DenseOptimizerOptions Sgd(float lr, float momentum, MomentumKind kind, float wd) {
  DenseOptimizerOptions o;
  o.kind = DenseOptimizerKind::kSgd;
  o.learning_rate = lr;
  o.sgd = {momentum, kind, wd};
  return o;
}

DenseOptimizerOptions Adam(float lr, float wd, WeightDecayKind kind) {
  DenseOptimizerOptions o;
  o.kind = DenseOptimizerKind::kAdam;
  o.learning_rate = lr;
  o.adam.weight_decay = wd;
  o.adam.weight_decay_kind = kind;
  return o;
}

DenseOptimizerOptions Adagrad(float lr, float init, float eps) {
  DenseOptimizerOptions o;
  o.kind = DenseOptimizerKind::kAdagrad;
  o.learning_rate = lr;
  o.adagrad = {init, eps};
  return o;
}

class DenseOptimizerTest : public ::testing::TestWithParam<OptimizerCase> {};

TEST_P(DenseOptimizerTest, MatchesScalarReferenceOverSeveralSteps) {
  const DenseOptimizerOptions& o = GetParam().options;
  // More than two parallel chunks, the last one partial.
  const int64_t n = 3 * (1 << 14) + 5;
  std::mt19937 rng(11);
  Tensor params = RandomTensor({n}, &rng);
  RefState ref = MakeRef(params, o);
  std::unique_ptr<DenseOptimizer> opt = MakeDenseOptimizer(o, n);
  for (int step = 1; step <= 6; ++step) {
    Tensor grads = RandomTensor({n}, &rng, -2.0f, 2.0f);
    opt->Step(grads, &params);
    RefStep(o, grads, &ref);
    ASSERT_EQ(opt->step_count(), step);
    ASSERT_TRUE(AllClose(params, ToTensor(ref.p), 1e-5f, 1e-4f)) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, DenseOptimizerTest,
    ::testing::Values(OptimizerCase{"sgd", Sgd(0.1f, 0.0f, MomentumKind::kClassic, 0.01f)},
                      OptimizerCase{"momentum", Sgd(0.05f, 0.9f, MomentumKind::kClassic, 0.0f)},
                      OptimizerCase{"nesterov", Sgd(0.05f, 0.9f, MomentumKind::kNesterov, 1e-3f)},
                      OptimizerCase{"adam", Adam(1e-2f, 0.0f, WeightDecayKind::kL2)},
                      OptimizerCase{"adam_l2", Adam(1e-2f, 0.1f, WeightDecayKind::kL2)},
                      OptimizerCase{"adamw", Adam(1e-2f, 0.1f, WeightDecayKind::kDecoupled)},
                      OptimizerCase{"adagrad", Adagrad(0.1f, 0.1f, 1e-10f)},
                      OptimizerCase{"adagrad_zero_init", Adagrad(0.05f, 0.0f, 1e-7f)}),
    [](const ::testing::TestParamInfo<OptimizerCase>& info) {
      return std::string(info.param.name);
    });

TEST(AdamTest, FirstStepMovesEachParameterByLearningRate) {
  const float lr = 1e-3f;
  std::mt19937 rng(2);
  Tensor params = RandomTensor({1001}, &rng);
  const Tensor before = params.Clone();
  Tensor grads = testing::RandomAwayFromZero({1001}, &rng, 0.1f, 5.0f);
  std::unique_ptr<DenseOptimizer> opt =
      MakeDenseOptimizer(Adam(lr, 0.0f, WeightDecayKind::kL2), 1001);
  opt->Step(grads, &params);
  for (int64_t i = 0; i < params.numel(); ++i) {
    const float delta = params[i] - before[i];
    ASSERT_NEAR(std::fabs(delta), lr, 1e-6f) << i;
    ASSERT_LT(delta * grads[i], 0.0f) << i;
  }
}

TEST(AdagradTest, AccumulatorGrowsWithSquaredGradient) {
  std::unique_ptr<DenseOptimizer> opt = MakeDenseOptimizer(Adagrad(0.1f, 0.5f, 1e-10f), 2);
  Tensor params = Tensor::Zeros({2});
  opt->Step(Tensor::FromVector({2}, {1, -2}), &params);
  const std::vector<OptimizerSlot> slots = opt->Slots();
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0].name, "accumulator");
  EXPECT_TRUE(AllClose(slots[0].tensor, Tensor::FromVector({2}, {1.5f, 4.5f})));
}

TEST(DenseOptimizerCheckpointTest, RestoredStateContinuesIdentically) {
  const int64_t n = 257;
  const DenseOptimizerOptions o = Adam(1e-2f, 0.01f, WeightDecayKind::kDecoupled);
  std::mt19937 rng(4);
  Tensor params = RandomTensor({n}, &rng);
  std::unique_ptr<DenseOptimizer> a = MakeDenseOptimizer(o, n);
  for (int i = 0; i < 3; ++i) a->Step(RandomTensor({n}, &rng), &params);
  // Restore into a fresh optimizer through the exposed slots and step count.
  std::unique_ptr<DenseOptimizer> b = MakeDenseOptimizer(o, n);
  const std::vector<OptimizerSlot> from = a->Slots();
  std::vector<OptimizerSlot> to = b->Slots();
  ASSERT_EQ(from.size(), 2u);
  ASSERT_EQ(to.size(), 2u);
  for (size_t i = 0; i < from.size(); ++i) {
    EXPECT_EQ(from[i].name, to[i].name);
    to[i].tensor.CopyFrom(from[i].tensor);
  }
  b->set_step_count(a->step_count());
  Tensor params_b = params.Clone();
  const Tensor grads = RandomTensor({n}, &rng);
  a->Step(grads, &params);
  b->Step(grads, &params_b);
  EXPECT_TRUE(AllClose(params_b, params, 0.0f, 0.0f));
}

TEST(SgdTest, PlainSgdHasNoState) {
  std::unique_ptr<DenseOptimizer> opt =
      MakeDenseOptimizer(Sgd(0.1f, 0.0f, MomentumKind::kClassic, 0.0f), 4);
  EXPECT_TRUE(opt->Slots().empty());
  Tensor params = Tensor::Filled({4}, 1.0f);
  opt->Step(Tensor::Filled({4}, 2.0f), &params);
  EXPECT_TRUE(AllClose(params, Tensor::Filled({4}, 0.8f)));
}

TEST(DenseOptimizerDeathTest, ShapeMismatchNamesOp) {
  Tensor params = Tensor::Zeros({10}), m = Tensor::Zeros({10}), v = Tensor::Zeros({10});
  EXPECT_DEATH(AdamUpdate({}, 0.1f, 1, Tensor::Zeros({11}), &params, &m, &v),
               "adam_update: grads dim 0 is 11, expected P=10 .*params=\\[10\\] grads=\\[11\\]");
  EXPECT_DEATH(AdamUpdate({}, 0.1f, 0, Tensor::Zeros({10}), &params, &m, &v),
               "adam_update: requires step >= 1 \\(got 0\\)");
  Tensor acc = Tensor::Zeros({9});
  EXPECT_DEATH(AdagradUpdate({}, 0.1f, Tensor::Zeros({10}), &params, &acc),
               "adagrad_update: accumulator dim 0 is 9, expected P=10");
  SgdOptions momentum;
  momentum.momentum = 0.9f;
  EXPECT_DEATH(SgdUpdate(momentum, 0.1f, Tensor::Zeros({10}), &params, nullptr),
               "sgd_update: requires a momentum tensor");
  std::unique_ptr<DenseOptimizer> opt = MakeDenseOptimizer({}, 10);
  Tensor big = Tensor::Zeros({12});
  EXPECT_DEATH(opt->Step(Tensor::Zeros({12}), &big), "adam_update: m dim 0 is 10, expected P=12");
}

// ---- Clipping --------------------------------------------------------------------------------

double Norm(const std::vector<Tensor*>& ts) {
  double s = 0.0;
  for (const Tensor* t : ts)
    for (int64_t i = 0; i < t->numel(); ++i) s += static_cast<double>((*t)[i]) * (*t)[i];
  return std::sqrt(s);
}

TEST(ClipByGlobalNormTest, LeavesSmallGradientsAlone) {
  Tensor g = Tensor::FromVector({2}, {3, 4});
  EXPECT_FLOAT_EQ(ClipByGlobalNorm(&g, 10.0f), 5.0f);
  EXPECT_TRUE(AllClose(g, Tensor::FromVector({2}, {3, 4}), 0.0f, 0.0f));
}

TEST(ClipByGlobalNormTest, ScalesLargeGradientsToMaxNorm) {
  Tensor a = Tensor::FromVector({2, 1}, {3, 4}), b = Tensor::FromVector({1}, {12});
  EXPECT_FLOAT_EQ(ClipByGlobalNorm({&a, &b}, 1.0f), 13.0f);
  EXPECT_TRUE(AllClose(a, Tensor::FromVector({2, 1}, {3.0f / 13, 4.0f / 13})));
  EXPECT_TRUE(AllClose(b, Tensor::FromVector({1}, {12.0f / 13})));
  EXPECT_NEAR(Norm({&a, &b}), 1.0, 1e-6);

  // A large flat buffer (several parallel chunks): 0.5 * sqrt(100003).
  Tensor flat = Tensor::Filled({100003}, 0.5f);
  EXPECT_NEAR(ClipByGlobalNorm(&flat, 2.0f), 0.5 * std::sqrt(100003.0), 1e-3);
  EXPECT_NEAR(Norm({&flat}), 2.0, 2e-5);
}

TEST(ClipByGlobalNormDeathTest, RejectsNonPositiveMaxNorm) {
  Tensor g = Tensor::Zeros({3});
  EXPECT_DEATH(ClipByGlobalNorm(&g, 0.0f), "clip_by_global_norm: requires max_norm > 0");
}

}  // namespace
}  // namespace attnps
