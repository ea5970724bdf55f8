#include "worker/models/ctr_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "ops/loss.h"
#include "tests/ops/gradcheck.h"

namespace attnps::models {
namespace {

using attnps::testing::GradCheckOptions;
using attnps::testing::GradientsMatch;
using attnps::testing::RandomTensor;

// ---- helpers ----------------------------------------------------------------------------------

struct ModelCase {
  std::string name;
  bool din = true;
  config::DinModel::Normalization norm = config::DinModel::NONE;
  config::Activation attention_act = config::SIGMOID;
  config::Activation mlp_act = config::DICE;
  float softmax_scale = 1.0f;
  int heads = 0;
  int senet_ratio = 0;
  int user_dim = 0;
};

// Small sizes: d = 2 per field (D = 4), attention 6-3, MLP 5-3.
config::ModelConfig SmallConfig(const ModelCase& c) {
  config::ModelConfig m;
  m.mutable_mlp()->add_hidden(5);
  m.mutable_mlp()->add_hidden(3);
  m.mutable_mlp()->set_activation(c.mlp_act);
  if (!c.din) {
    m.mutable_base();
    return m;
  }
  config::DinModel* din = m.mutable_din();
  din->add_attention_hidden(6);
  din->add_attention_hidden(3);
  din->set_attention_activation(c.attention_act);
  din->set_attention_normalization(c.norm);
  din->set_softmax_scale(c.softmax_scale);
  din->mutable_multi_head_target_attention()->set_heads(c.heads);
  din->mutable_senet()->set_reduction_ratio(c.senet_ratio);
  return m;
}

CtrModelDims SmallDims(int user_dim) { return {2, 2, user_dim, 5}; }

std::unique_ptr<CtrModel> MustMake(const config::ModelConfig& config, const CtrModelDims& dims,
                                   uint64_t seed) {
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(config, dims, seed, &model);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return model;
}

// Random jagged inputs of lengths in [1, t] (t each when `full`); row 0 has no history when
// `empty_row`.
CtrInputs RandomInputs(int64_t b, int64_t t, const CtrModelDims& dims, std::mt19937* rng,
                       bool empty_row, bool full = false) {
  const int64_t d = dims.item_dim + dims.cate_dim;
  CtrInputs in;
  in.target = RandomTensor({b, d}, rng);
  in.history_offsets.assign(1, 0);
  std::uniform_int_distribution<int64_t> len(1, t);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t l = (empty_row && r == 0) ? 0 : full ? t : len(*rng);
    in.history_offsets.push_back(in.history_offsets.back() + static_cast<int32_t>(l));
  }
  in.history = RandomTensor({in.history_offsets.back(), d}, rng);
  if (dims.user_dim > 0) in.user = RandomTensor({b, dims.user_dim}, rng);
  return in;
}

CtrInputGrads ZeroGradsLike(const CtrInputs& in) {
  auto zeros = [](const Tensor& t) { return t.empty() ? Tensor() : Tensor::Zeros(t.shape()); };
  return {zeros(in.target), zeros(in.history), zeros(in.user)};
}

// ---- whole-model gradient check -----------------------------------------------------------------

class CtrModelGradTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(CtrModelGradTest, ParamAndInputGradientsMatchFiniteDifferences) {
  const ModelCase c = GetParam();
  const CtrModelDims dims = SmallDims(c.user_dim);
  std::unique_ptr<CtrModel> model = MustMake(SmallConfig(c), dims, 11);
  ASSERT_NE(model, nullptr);
  std::mt19937 rng(5);
  CtrInputs in = RandomInputs(3, 5, dims, &rng, /*masked_row=*/true);
  // Larger weights than the default init so that every path carries a visible gradient.
  Tensor& params = model->params();
  for (int64_t i = 0; i < params.numel(); ++i) params[i] *= 2.0f;

  auto forward = [&] {
    Tensor logits;
    model->Forward(in, /*training=*/true, &logits);
    return std::vector<Tensor>{logits};
  };
  auto backward = [&](const std::vector<Tensor>& dys, std::vector<Tensor>* dxs) {
    Tensor logits;
    model->Forward(in, /*training=*/true, &logits);
    model->grads().SetZero();
    CtrInputGrads g{(*dxs)[1], (*dxs)[2], c.user_dim > 0 ? (*dxs)[3] : Tensor()};
    model->Backward(in, dys[0], &g);
    (*dxs)[0].CopyFrom(model->grads());
  };
  std::vector<attnps::testing::NamedInput> inputs = {
      {"params", &params}, {"target", &in.target}, {"history", &in.history}};
  if (c.user_dim > 0) inputs.push_back({"user", &in.user});
  GradCheckOptions opts;
  opts.step = 1e-3;
  opts.max_probes_per_input = 400;
  EXPECT_TRUE(GradientsMatch(inputs, forward, backward, opts));
}

ModelCase Din(std::string name) {
  ModelCase c;
  c.name = std::move(name);
  return c;
}

std::vector<ModelCase> GradCases() {
  std::vector<ModelCase> cases;
  for (config::Activation act : {config::DICE, config::PRELU, config::RELU, config::SIGMOID}) {
    for (int user : {0, 3}) {
      ModelCase c;
      c.din = false;
      c.mlp_act = act;
      c.user_dim = user;
      c.name = "Base" + config::Activation_Name(act) + (user ? "User" : "");
      cases.push_back(c);
    }
  }
  cases.push_back(Din("DinTorchSetup"));  // NONE, SIGMOID unit, Dice MLP
  ModelCase c = Din("SoftmaxSigmoidDice");
  c.norm = config::DinModel::SOFTMAX;
  cases.push_back(c);
  c = Din("SoftmaxScaledReluPrelu");
  c.norm = config::DinModel::SOFTMAX;
  c.softmax_scale = 0.5f;
  c.attention_act = config::RELU;
  c.mlp_act = config::PRELU;
  cases.push_back(c);
  c = Din("NoneReluRelu");
  c.attention_act = config::RELU;
  c.mlp_act = config::RELU;
  cases.push_back(c);
  c = Din("NoneSigmoidSigmoidUser");
  c.mlp_act = config::SIGMOID;
  c.user_dim = 3;
  cases.push_back(c);
  c = Din("Heads2");
  c.heads = 2;
  cases.push_back(c);
  c = Din("Senet2");
  c.senet_ratio = 2;
  cases.push_back(c);
  c = Din("SoftmaxHeadsSenetUserPrelu");
  c.norm = config::DinModel::SOFTMAX;
  c.softmax_scale = 2.0f;
  c.heads = 4;
  c.senet_ratio = 1;
  c.user_dim = 2;  // SENet's fields are one width: the user is a field of d = 2
  c.mlp_act = config::PRELU;
  cases.push_back(c);
  c = Din("HeadsSenetDice");
  c.heads = 1;
  c.senet_ratio = 3;
  cases.push_back(c);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Configs, CtrModelGradTest, ::testing::ValuesIn(GradCases()),
                         [](const ::testing::TestParamInfo<ModelCase>& info) {
                           return info.param.name;
                         });

// ---- contracts ----------------------------------------------------------------------------------

TEST(CtrModelTest, BackwardAccumulatesIntoGradsAndInputGrads) {
  ModelCase c = Din("acc");
  c.user_dim = 3;
  const CtrModelDims dims = SmallDims(3);
  std::unique_ptr<CtrModel> model = MustMake(SmallConfig(c), dims, 3);
  std::mt19937 rng(1);
  CtrInputs in = RandomInputs(4, 5, dims, &rng, false);
  Tensor logits;
  model->Forward(in, true, &logits);
  ASSERT_EQ(logits.shape(), (Shape{4}));
  Tensor dlogits = RandomTensor({4}, &rng);
  CtrInputGrads once = ZeroGradsLike(in);
  model->Backward(in, dlogits, &once);
  const Tensor grads_once = model->grads().Clone();
  CtrInputGrads twice = ZeroGradsLike(in);
  model->Backward(in, dlogits, &twice);
  model->Backward(in, dlogits, &twice);
  for (int64_t i = 0; i < grads_once.numel(); ++i) {
    EXPECT_NEAR(model->grads()[i], 3.0f * grads_once[i], 1e-4f * (1 + std::fabs(grads_once[i])));
  }
  for (int64_t i = 0; i < once.history.numel(); ++i) {
    EXPECT_NEAR(twice.history[i], 2.0f * once.history[i], 1e-5f);
  }
  for (int64_t i = 0; i < once.target.numel(); ++i) {
    EXPECT_NEAR(twice.target[i], 2.0f * once.target[i], 1e-5f);
  }
  for (int64_t i = 0; i < once.user.numel(); ++i) {
    EXPECT_NEAR(twice.user[i], 2.0f * once.user[i], 1e-5f);
  }
}

TEST(CtrModelTest, EmptyInputGradsAreSkippedAndParamGradsUnchanged) {
  const ModelCase c = Din("skip");
  const CtrModelDims dims = SmallDims(0);
  std::unique_ptr<CtrModel> model = MustMake(SmallConfig(c), dims, 3);
  std::mt19937 rng(2);
  CtrInputs in = RandomInputs(4, 5, dims, &rng, false);
  Tensor logits;
  model->Forward(in, true, &logits);
  Tensor dlogits = RandomTensor({4}, &rng);
  CtrInputGrads full = ZeroGradsLike(in);
  model->Backward(in, dlogits, &full);
  const Tensor with_inputs = model->grads().Clone();
  model->grads().SetZero();
  CtrInputGrads none;
  model->Backward(in, dlogits, &none);
  EXPECT_TRUE(attnps::testing::AllClose(model->grads(), with_inputs, 1e-6f, 1e-5f));
}

TEST(CtrModelTest, EveryParamElementReceivesGradient) {
  for (bool din : {false, true}) {
    ModelCase c = Din("cover");
    c.din = din;
    c.heads = din ? 2 : 0;
    c.senet_ratio = din ? 2 : 0;
    c.user_dim = 2;  // one field of SENet's width
    const CtrModelDims dims = SmallDims(2);
    std::unique_ptr<CtrModel> model = MustMake(SmallConfig(c), dims, 9);
    ASSERT_EQ(model->params().numel(), model->grads().numel());
    ASSERT_EQ(model->params().ndim(), 1);
    std::mt19937 rng(4);
    CtrInputs in = RandomInputs(8, 5, dims, &rng, false);
    Tensor logits;
    model->Forward(in, true, &logits);
    CtrInputGrads g = ZeroGradsLike(in);
    model->Backward(in, RandomTensor({8}, &rng), &g);
    // The multi-head attention's key bias adds q . bk to every score of a query: softmax is
    // invariant to that, so its gradient is 0 up to rounding (and may round to exactly 0).
    // Params: the unit (w1 [4D, H1], b1, w2 [H1, H2], b2, w3, b3), then wq, bq, wk, bk.
    const int64_t d = 4, h1 = 6, h2 = 3, unit = 4 * d * h1 + h1 + h1 * h2 + h2 + h2 + 1;
    const int64_t bk_begin = din ? unit + d * d + d + d * d : -1, bk_end = bk_begin + d;
    for (int64_t i = 0; i < model->grads().numel(); ++i) {
      if (i >= bk_begin && i < bk_end) continue;
      EXPECT_NE(model->grads()[i], 0.0f) << (din ? "din" : "base") << " param " << i;
    }
  }
}

// The din_ml100k.pbtxt model at D = 36 has exactly din_torch.py's parameter count (without
// embeddings) and 2 * (200 + 80) Dice running statistics.
TEST(CtrModelTest, DinTorchSetupHasTorchParameterCount) {
  config::ModelConfig m;
  m.mutable_mlp()->set_activation(config::DICE);
  m.mutable_din();
  std::unique_ptr<CtrModel> model = MustMake(m, {18, 18, 0, 50}, 1);
  const int64_t attention = (144 * 80 + 80) + (80 * 40 + 40) + (40 + 1);
  const int64_t mlp = (108 * 200 + 200 + 200) + (200 * 80 + 80 + 80) + (80 + 1);
  EXPECT_EQ(model->params().numel(), attention + mlp);
  EXPECT_EQ(model->grads().numel(), attention + mlp);
  EXPECT_EQ(model->buffers().numel(), 2 * (200 + 80));
}

TEST(CtrModelTest, InitIsAPureFunctionOfTheSeed) {
  const ModelCase c = Din("seed");
  const CtrModelDims dims = SmallDims(0);
  std::unique_ptr<CtrModel> a = MustMake(SmallConfig(c), dims, 42);
  std::unique_ptr<CtrModel> b = MustMake(SmallConfig(c), dims, 42);
  std::unique_ptr<CtrModel> other = MustMake(SmallConfig(c), dims, 43);
  EXPECT_EQ(a->params().ToVector(), b->params().ToVector());
  EXPECT_EQ(a->buffers().ToVector(), b->buffers().ToVector());
  EXPECT_NE(a->params().ToVector(), other->params().ToVector());
  for (float g : a->grads().ToVector()) ASSERT_EQ(g, 0.0f);
  // Dice running statistics start at mean 0 and variance 1.
  const std::vector<float> buf = a->buffers().ToVector();
  ASSERT_EQ(buf.size(), 2u * (5 + 3));
  EXPECT_EQ(buf[0], 0.0f);  // running_mean of layer 0
  EXPECT_EQ(buf[5], 1.0f);  // running_var of layer 0
}

TEST(CtrModelTest, InferenceUsesRunningStatisticsAndLeavesThemAlone) {
  const ModelCase c = Din("modes");
  const CtrModelDims dims = SmallDims(0);
  std::unique_ptr<CtrModel> model = MustMake(SmallConfig(c), dims, 8);
  std::mt19937 rng(6);
  CtrInputs in = RandomInputs(6, 5, dims, &rng, false);
  Tensor train_logits, infer_logits;
  for (int i = 0; i < 50; ++i) model->Forward(in, true, &train_logits);
  const std::vector<float> stats = model->buffers().ToVector();
  model->Forward(in, false, &infer_logits);
  EXPECT_EQ(model->buffers().ToVector(), stats);
  double diff = 0;
  for (int64_t i = 0; i < 6; ++i) diff += std::fabs(train_logits[i] - infer_logits[i]);
  EXPECT_GT(diff, 1e-4);
  // Inference is per sample: the first row alone gives the same logit.
  CtrInputs one{in.target.Rows(0, 1).Clone(),
                in.history.Rows(0, in.history_offsets[1]).Clone(),
                {0, in.history_offsets[1]},
                Tensor()};
  Tensor one_logit;
  model->Forward(one, false, &one_logit);
  EXPECT_NEAR(one_logit[0], infer_logits[0], 1e-5f);
  // After enough training steps on the same batch the running statistics approach the batch's.
  EXPECT_NE(stats[0], 0.0f);
}

TEST(CtrModelTest, BatchSizeMayChangeBetweenCalls) {
  ModelCase c = Din("resize");
  c.heads = 2;
  c.senet_ratio = 2;
  const CtrModelDims dims = SmallDims(0);
  std::unique_ptr<CtrModel> model = MustMake(SmallConfig(c), dims, 8);
  std::mt19937 rng(7);
  for (int64_t b : {4, 9, 2, 4}) {
    for (int64_t t : {5, 3}) {
      CtrInputs in = RandomInputs(b, t, dims, &rng, true);
      Tensor logits;
      model->Forward(in, true, &logits);
      ASSERT_EQ(logits.numel(), b);
      CtrInputGrads g = ZeroGradsLike(in);
      model->Backward(in, RandomTensor({b}, &rng), &g);
      for (float v : logits.ToVector()) ASSERT_TRUE(std::isfinite(v));
    }
  }
}

// ---- config checks ------------------------------------------------------------------------------

::testing::AssertionResult RejectsNaming(const config::ModelConfig& m, const CtrModelDims& dims,
                                         const std::string& field) {
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(m, dims, 1, &model);
  if (s.ok()) return ::testing::AssertionFailure() << "accepted";
  if (s.code() != Status::Code::kInvalidArgument || s.message().find(field) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "got " << s.ToString() << ", want a mention of " << field;
  }
  return ::testing::AssertionSuccess();
}

TEST(MakeCtrModelTest, RejectsUnsupportedSettingsNamingTheField) {
  const CtrModelDims dims = SmallDims(0);
  for (config::Activation act : {config::PRELU, config::DICE}) {
    ModelCase c = Din("bad");
    c.attention_act = act;
    EXPECT_TRUE(RejectsNaming(SmallConfig(c), dims, "model.din.attention_activation"));
  }
  config::ModelConfig m = SmallConfig(Din("bad"));
  m.mutable_din()->add_attention_hidden(2);
  EXPECT_TRUE(RejectsNaming(m, dims, "model.din.attention_hidden"));
  ModelCase heads = Din("bad");
  heads.heads = 3;
  EXPECT_TRUE(RejectsNaming(SmallConfig(heads), dims, "model.din.multi_head_target_attention"));
  ModelCase senet = Din("bad");
  senet.senet_ratio = 2;
  EXPECT_TRUE(RejectsNaming(SmallConfig(senet), {2, 3, 0, 5}, "model.din.senet.reduction_ratio"));
  ModelCase scale = Din("bad");
  scale.norm = config::DinModel::SOFTMAX;
  scale.softmax_scale = 0.0f;
  EXPECT_TRUE(RejectsNaming(SmallConfig(scale), dims, "model.din.softmax_scale"));
  config::ModelConfig mlp = SmallConfig(Din("bad"));
  mlp.mutable_mlp()->add_hidden(0);
  EXPECT_TRUE(RejectsNaming(mlp, dims, "model.mlp.hidden"));
  config::ModelConfig none;
  EXPECT_TRUE(RejectsNaming(none, dims, "model.kind"));
  EXPECT_TRUE(RejectsNaming(SmallConfig(Din("bad")), {0, 2, 0, 5}, "item_dim"));
}

TEST(MakeCtrModelTest, AcceptsDefaults) {
  config::ModelConfig m;
  m.mutable_din();
  std::unique_ptr<CtrModel> model;
  EXPECT_TRUE(MakeCtrModel(m, {18, 18, 0, 50}, 1, &model).ok());
  m.mutable_base();
  EXPECT_TRUE(MakeCtrModel(m, {18, 18, 8, 50}, 1, &model).ok());
}

// ---- learning sanity ----------------------------------------------------------------------------

// Label = 1 when the target is close to the history's valid items (sum of dot products > 0):
// separable by the models' pooled * q features. Plain SGD must drive the BCE loss down.
double TrainAndReturnFinalLoss(const ModelCase& c, int steps) {
  const CtrModelDims dims{2, 2, 0, 6};
  config::ModelConfig m = SmallConfig(c);
  m.mutable_mlp()->clear_hidden();
  m.mutable_mlp()->add_hidden(16);
  m.mutable_mlp()->add_hidden(8);
  std::unique_ptr<CtrModel> model = MustMake(m, dims, 3);
  std::mt19937 rng(10);
  const int64_t b = 64, t = 6;
  CtrInputs in = RandomInputs(b, t, dims, &rng, false);
  Tensor labels = Tensor::Empty({b});
  for (int64_t r = 0; r < b; ++r) {
    double s = 0;
    for (int64_t i = in.history_offsets[r]; i < in.history_offsets[r + 1]; ++i)
      for (int64_t j = 0; j < 4; ++j) s += in.target[r * 4 + j] * in.history[i * 4 + j];
    labels[r] = s > 0 ? 1.0f : 0.0f;
  }
  Tensor logits, dlogits = Tensor::Empty({b});
  CtrInputGrads none;
  double loss = 0;
  for (int step = 0; step < steps; ++step) {
    model->Forward(in, true, &logits);
    loss = BceWithLogitsForward(logits, labels, Tensor());
    dlogits.SetZero();
    BceWithLogitsBackward(logits, labels, Tensor(), 1.0f, &dlogits);
    model->grads().SetZero();
    model->Backward(in, dlogits, &none);
    for (int64_t i = 0; i < model->params().numel(); ++i)
      model->params()[i] -= 0.5f * model->grads()[i];
  }
  return loss;
}

TEST(CtrModelTest, SgdDrivesTheLossDownOnASeparableProblem) {
  ModelCase base = Din("base");
  base.din = false;
  EXPECT_LT(TrainAndReturnFinalLoss(base, 300), 0.25);
  EXPECT_LT(TrainAndReturnFinalLoss(Din("din"), 300), 0.25);
}

// ---- speed (reported, not asserted)
// --------------------------------------------------------------

// The best of up to 20 calls (robust to a busy machine) with 1 and 2 threads. On a machine whose
// cores are busy, OpenMP's default spin-waiting inflates the 2-thread time by orders of
// magnitude; OMP_WAIT_POLICY=passive avoids that.
TEST(CtrModelTest, ReportsDinForwardBackwardTimeAtDinTorchShape) {
  config::ModelConfig m;
  m.mutable_mlp()->set_activation(config::DICE);
  m.mutable_din();
  const CtrModelDims dims{18, 18, 0, 50};
  std::unique_ptr<CtrModel> model = MustMake(m, dims, 1);
  std::mt19937 rng(1);
  CtrInputs in = RandomInputs(128, 50, dims, &rng, false, /*full=*/true);
  CtrInputGrads g = ZeroGradsLike(in);
  Tensor logits, dlogits = RandomTensor({128}, &rng);
  const int saved_threads = NumThreads();
  for (int threads : {1, 2}) {
    SetNumThreads(threads);
    double best_ms = 1e30, total_ms = 0;
    for (int i = 0; i < 23 && total_ms < 1000; ++i) {  // at most about a second per setting
      const auto start = std::chrono::steady_clock::now();
      model->Forward(in, true, &logits);
      model->Backward(in, dlogits, &g);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      total_ms += ms;
      if (i >= 3) best_ms = std::min(best_ms, ms);  // the first calls warm up
    }
    std::printf("DIN forward+backward B=128 T=50 D=36, %d thread(s): %.3f ms (%.0f samples/s)\n",
                threads, best_ms, 128 * 1000.0 / best_ms);
    EXPECT_GT(best_ms, 0.0);
  }
  SetNumThreads(saved_threads);
}

}  // namespace
}  // namespace attnps::models
