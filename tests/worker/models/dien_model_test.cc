// DIEN: the whole model's gradients (the training step's loss, auxiliary loss included) against
// finite differences, for each interest-evolution variant; and its contracts.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/loss.h"
#include "tests/ops/gradcheck.h"
#include "tests/worker/models/ctr_inputs_testing.h"
#include "worker/models/ctr_model.h"

namespace attnps::models {
namespace {

using attnps::testing::GradCheckOptions;
using attnps::testing::GradientsMatch;
using attnps::testing::RandomTensor;
using testing::AlternatingLabels;
using testing::RandomCtrInputs;
using testing::TrainStepGradientsMatch;

struct DienCase {
  std::string name;
  config::DienModel::Evolution evolution = config::DienModel::AUGRU;
  float alpha = 1.0f;
  int user_dim = 0;
  config::Activation mlp_act = config::DICE;
  bool query_projection = true;
  bool reads_state = false;
};

// d = 2 per field (D = 4), attention 6-3, MLP 5-3.
config::ModelConfig SmallDien(const DienCase& c) {
  config::ModelConfig m;
  m.mutable_mlp()->add_hidden(5);
  m.mutable_mlp()->add_hidden(3);
  m.mutable_mlp()->set_activation(c.mlp_act);
  config::DienModel* dien = m.mutable_dien();
  dien->add_attention_hidden(6);
  dien->add_attention_hidden(3);
  dien->set_evolution(c.evolution);
  dien->set_aux_loss_weight(c.alpha);
  dien->set_query_projection(c.query_projection);
  dien->set_mlp_reads_extractor_state(c.reads_state);
  return m;
}

std::unique_ptr<CtrModel> MakeDien(const DienCase& c, uint64_t seed) {
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(SmallDien(c), {2, 2, c.user_dim, 5}, seed, &model);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return model;
}

void PrintTo(const DienCase& c, std::ostream* os) { *os << c.name; }

class DienGradTest : public ::testing::TestWithParam<DienCase> {};

// L = the training step's loss (BCE + alpha * L_aux) as a function of the weights and inputs.
TEST_P(DienGradTest, TrainStepGradientsMatchFiniteDifferences) {
  const DienCase c = GetParam();
  std::unique_ptr<CtrModel> model = MakeDien(c, 13);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->wants_negatives(), c.alpha > 0);
  std::mt19937 rng(9);
  const int64_t b = 5;
  CtrInputs in = RandomCtrInputs(b, c.user_dim, true, &rng);
  const Tensor labels = AlternatingLabels(b);
  std::vector<std::string> checked = {"target", "history", "negatives"};
  if (c.user_dim > 0) checked.push_back("user");
  GradCheckOptions opts;
  opts.step = 1e-3;
  opts.max_probes_per_input = 400;
  EXPECT_TRUE(TrainStepGradientsMatch(model.get(), &in, labels, checked, opts));
}

std::vector<DienCase> DienCases() {
  std::vector<DienCase> cases;
  for (auto [evolution, name] :
       {std::pair{config::DienModel::AUGRU, "Augru"}, std::pair{config::DienModel::AIGRU, "Aigru"},
        std::pair{config::DienModel::AGRU, "Agru"},
        std::pair{config::DienModel::AUGRU_OFFICIAL, "AugruOfficial"}}) {
    for (float alpha : {1.0f, 0.0f}) {
      DienCase c;
      c.evolution = evolution;
      c.alpha = alpha;
      c.name = std::string(name) + (alpha > 0 ? "AuxLoss" : "NoAuxLoss");
      cases.push_back(c);
    }
  }
  DienCase raw;
  raw.name = "AugruNoQueryProjection";
  raw.query_projection = false;
  cases.push_back(raw);
  for (bool aux : {true, false}) {
    DienCase state;
    state.name = aux ? "AugruMlpReadsExtractorState" : "AugruMlpReadsExtractorStateNoAuxLoss";
    state.reads_state = true;
    state.alpha = aux ? 1.0f : 0.0f;
    cases.push_back(state);
  }
  DienCase c;
  c.name = "AugruAlpha3UserPrelu";
  c.alpha = 3.0f;
  c.user_dim = 3;
  c.mlp_act = config::PRELU;
  cases.push_back(c);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Configs, DienGradTest, ::testing::ValuesIn(DienCases()),
                         [](const ::testing::TestParamInfo<DienCase>& info) {
                           return info.param.name;
                         });

// The auxiliary loss is alpha times the mean over (position, next position) pairs of the two
// BCE terms: recomputed here from the logits with alpha 0 and 1 on the same weights.
TEST(DienTest, AuxiliaryLossIsTheTrainStepDifference) {
  DienCase with;
  DienCase without;
  without.alpha = 0.0f;
  std::unique_ptr<CtrModel> a = MakeDien(with, 3), b = MakeDien(without, 3);
  ASSERT_EQ(a->params().numel(), b->params().numel());
  std::mt19937 rng(4);
  CtrInputs in = RandomCtrInputs(6, 0, true, &rng);
  const Tensor labels = AlternatingLabels(6);
  Tensor la, lb;
  CtrInputGrads none;
  const double loss_a = a->TrainStep(in, labels, 1.0f, &la, &none);
  const double loss_b = b->TrainStep(in, labels, 1.0f, &lb, &none);
  EXPECT_TRUE(attnps::testing::AllClose(la, lb, 0.0f, 0.0f));  // alpha does not touch the logit
  EXPECT_GT(loss_a - loss_b, 0.1);  // two softplus terms per pair, each > 0
  EXPECT_NEAR(loss_b, BceWithLogitsForward(lb, labels, Tensor()), 1e-6);
}

// A row without history scores like any other and gets no gradient from the empty GRU.
TEST(DienTest, EmptyHistoriesScoreAndTrain) {
  std::unique_ptr<CtrModel> model = MakeDien(DienCase{}, 5);
  CtrInputs in;
  std::mt19937 rng(2);
  in.target = RandomTensor({3, 4}, &rng);
  in.history_offsets = {0, 0, 0, 0};
  in.history = Tensor::Zeros({0, 4});
  in.negatives = Tensor();  // the batcher draws none for a batch without positions
  Tensor logits;
  CtrInputGrads g{Tensor::Zeros({3, 4}), Tensor(), Tensor(), Tensor()};
  const double loss = model->TrainStep(in, AlternatingLabels(3), 1.0f, &logits, &g);
  EXPECT_TRUE(std::isfinite(loss));
  for (int64_t r = 0; r < 3; ++r) EXPECT_TRUE(std::isfinite(logits[r]));
}

TEST(DienTest, BadSettingsAreRefusedNamingTheField) {
  DienCase c;
  config::ModelConfig m = SmallDien(c);
  m.mutable_dien()->set_aux_loss_weight(-1.0f);
  m.mutable_dien()->add_attention_hidden(7);
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(m, {2, 2, 0, 5}, 1, &model);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("model.dien.aux_loss_weight"), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToString().find("model.dien.attention_hidden"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace attnps::models
