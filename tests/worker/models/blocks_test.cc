// model.blocks in every CTR model: the whole model's gradients (the training step's loss) against
// finite differences with each block, and the settings refused naming the field.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/ops/gradcheck.h"
#include "tests/worker/models/ctr_inputs_testing.h"
#include "worker/models/ctr_model.h"
#include "worker/models/param_arena.h"
#include "worker/models/target_scorer.h"

namespace attnps::models {
namespace {

using attnps::testing::GradCheckOptions;
using attnps::testing::GradientsMatch;
using testing::AlternatingLabels;
using testing::RandomCtrInputs;
using testing::TrainStepGradientsMatch;
using Scorer = config::TargetScorerConfig;

enum class Kind { kBase, kDin, kDien, kBst };

struct BlocksCase {
  std::string name;
  Kind kind = Kind::kDin;
  std::function<void(config::BlocksConfig*)> blocks;
};

// d = 2 per field (D = 4), attention 6-3, MLP 5-3 (PReLU: every path smooth), max_history 5;
// DIEN with its auxiliary loss, BST with one block of 2 heads and no dropout.
config::ModelConfig SmallModel(const BlocksCase& c) {
  config::ModelConfig m;
  m.mutable_mlp()->add_hidden(5);
  m.mutable_mlp()->add_hidden(3);
  m.mutable_mlp()->set_activation(config::PRELU);
  switch (c.kind) {
    case Kind::kBase:
      m.mutable_base();
      break;
    case Kind::kDin:
      m.mutable_din()->add_attention_hidden(6);
      m.mutable_din()->add_attention_hidden(3);
      break;
    case Kind::kDien:
      m.mutable_dien()->add_attention_hidden(6);
      m.mutable_dien()->add_attention_hidden(3);
      m.mutable_dien()->set_aux_loss_weight(0.5f);
      // The attention replaces the update gate: the weights' gradient is not damped by u.
      m.mutable_dien()->set_evolution(config::DienModel::AGRU);
      break;
    case Kind::kBst:
      m.mutable_bst()->set_ffn_hidden(6);
      m.mutable_bst()->set_dropout(0.0f);
      m.mutable_bst()->add_attention_hidden(6);
      m.mutable_bst()->add_attention_hidden(3);
      break;
  }
  if (c.blocks) c.blocks(m.mutable_blocks());
  return m;
}

// Two context slots of the fields' width: "age" and "activity".
CtrModelDims SmallDims() {
  CtrModelDims dims{2, 2, 4, 5, "item.dim + cate.dim"};
  dims.context = {{"age", 2}, {"activity", 2}};
  return dims;
}

void PrintTo(const BlocksCase& c, std::ostream* os) { *os << c.name; }

class BlocksGradTest : public ::testing::TestWithParam<BlocksCase> {};

TEST_P(BlocksGradTest, TrainStepGradientsMatchFiniteDifferences) {
  const BlocksCase c = GetParam();
  const CtrModelDims dims = SmallDims();
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(SmallModel(c), dims, 23, &model);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::mt19937 rng(7);
  const int64_t b = 5;
  const bool negatives = model->wants_negatives();
  CtrInputs in = RandomCtrInputs(b, dims.user_dim, negatives, &rng);
  const Tensor labels = AlternatingLabels(b);
  std::vector<std::string> checked = {"target", "history", "user"};
  if (negatives) checked.push_back("negatives");
  GradCheckOptions opts;
  // 1e-3 and 5e-4 straddle ReLU / PReLU kinks at these doubled weights. At 2e-4 the float loss's
  // rounding (about 1e-7 of L ~ 1) gives each difference quotient up to ~5e-4 of noise, so the
  // absolute tolerance is 1.5e-3 (a wrong gradient path is off by far more: see the mutations in
  // docs/models.md).
  opts.step = 2e-4;
  opts.atol = 1.5e-3;
  opts.max_probes_per_input = 400;
  EXPECT_TRUE(TrainStepGradientsMatch(model.get(), &in, labels, checked, opts));
}

void SetScorer(config::BlocksConfig* b, Scorer::Kind kind) {
  b->mutable_scorer()->set_kind(kind);
  b->mutable_scorer()->set_hidden(3);
  b->mutable_scorer()->set_heads(2);
}

std::vector<BlocksCase> Cases() {
  const std::pair<Kind, std::string> kinds[] = {
      {Kind::kBase, "Base"}, {Kind::kDin, "Din"}, {Kind::kDien, "Dien"}, {Kind::kBst, "Bst"}};
  std::vector<BlocksCase> cases;
  // DIN with each block on its own.
  for (auto [kind, name] : {std::pair{Scorer::DIN_UNIT, "DinUnit"},
                            {Scorer::ADDITIVE, "Additive"},
                            {Scorer::SCALED_DOT_PRODUCT, "ScaledDotProduct"},
                            {Scorer::MULTI_HEAD, "MultiHead"}}) {
    cases.push_back({std::string("DinScorer") + name, Kind::kDin,
                     [kind = kind](config::BlocksConfig* b) { SetScorer(b, kind); }});
  }
  cases.push_back({"DinSenet", Kind::kDin,
                   [](config::BlocksConfig* b) { b->mutable_senet()->set_reduction_ratio(2); }});
  cases.push_back({"DinAfm", Kind::kDin,
                   [](config::BlocksConfig* b) { b->mutable_afm()->set_attention_size(3); }});
  cases.push_back(
      {"DinLhuc", Kind::kDin, [](config::BlocksConfig* b) { b->mutable_lhuc()->set_hidden(3); }});
  cases.push_back({"DinPoso", Kind::kDin, [](config::BlocksConfig* b) {
                     b->mutable_poso()->set_slot("activity");
                     b->mutable_poso()->set_hidden(3);
                   }});
  // DIEN's evolution GRU reads the weights: their gradient through each scorer.
  for (auto [kind, name] : {std::pair{Scorer::ADDITIVE, "Additive"},
                            {Scorer::SCALED_DOT_PRODUCT, "ScaledDotProduct"}}) {
    cases.push_back({std::string("DienScorer") + name, Kind::kDien,
                     [kind = kind](config::BlocksConfig* b) { SetScorer(b, kind); }});
  }
  // Every model with every block at once (the scorers each kind takes).
  for (const auto& [kind, name] : kinds) {
    for (auto [scorer, sname] : {std::pair{Scorer::ADDITIVE, "Additive"},
                                 {Scorer::SCALED_DOT_PRODUCT, "ScaledDotProduct"},
                                 {Scorer::MULTI_HEAD, "MultiHead"}}) {
      if (kind == Kind::kDien && scorer == Scorer::MULTI_HEAD) continue;
      cases.push_back(
          {name + "AllBlocks" + sname, kind, [scorer = scorer](config::BlocksConfig* b) {
             SetScorer(b, scorer);
             b->mutable_senet()->set_reduction_ratio(3);
             b->mutable_afm()->set_attention_size(3);
             b->mutable_lhuc()->set_hidden(3);
             b->mutable_poso()->set_slot("age");
             b->mutable_poso()->set_hidden(2);
             b->mutable_poso()->set_scale(1.5f);
           }});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Configs, BlocksGradTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<BlocksCase>& info) {
                           return info.param.name;
                         });

// ---- the scorers alone: weights and pooled output ---------------------------------------------

class ScorerGradTest : public ::testing::TestWithParam<Scorer::Kind> {};

// L = c1 . weights + c2 . pooled: the weights' own gradient path (DIEN's evolution GRU reads
// them) as well as the pooled one, over q, the keys and the scorer's weights.
TEST_P(ScorerGradTest, WeightsAndPooledGradientsMatchFiniteDifferences) {
  ScorerSpec spec;
  spec.kind = GetParam();
  spec.din_hidden = {6, 3};
  spec.din_options.normalization = AttentionNormalization::kSoftmax;
  spec.additive_hidden = 3;
  spec.heads = 2;
  const int64_t b = 3, t = 4, d = 4;
  ParamArena arena;
  TargetScorer scorer(spec, d, &arena);
  arena.Allocate(13);
  std::mt19937 rng(2);
  Tensor q = attnps::testing::RandomTensor({b, d}, &rng);
  Tensor keys = attnps::testing::RandomTensor({b, t, d}, &rng);
  Tensor mask = Tensor::Zeros({b, t});
  for (int64_t i = 0; i < t; ++i) mask[t + i] = 1.0f;      // row 1 full
  for (int64_t i = 0; i < 2; ++i) mask[2 * t + i] = 1.0f;  // row 2 two keys, row 0 none
  Tensor& params = arena.params();
  for (int64_t i = 0; i < params.numel(); ++i) params[i] *= 2.0f;
  Tensor weights = Tensor::Zeros({b, t}), pooled = Tensor::Zeros({b, d});
  auto forward = [&] {
    scorer.Forward(q, keys, mask, &weights, &pooled);
    return std::vector<Tensor>{weights, pooled};
  };
  const bool has_params = params.numel() > 0;  // SCALED_DOT_PRODUCT has none
  auto backward = [&](const std::vector<Tensor>& dys, std::vector<Tensor>* dxs) {
    scorer.Forward(q, keys, mask, &weights, &pooled);
    arena.grads().SetZero();
    const size_t at = has_params ? 1 : 0;
    scorer.Backward(q, keys, mask, weights, scorer.has_weights() ? dys[0] : Tensor(), dys[1],
                    &(*dxs)[at], &(*dxs)[at + 1]);
    if (has_params) (*dxs)[0].CopyFrom(arena.grads());
  };
  std::vector<attnps::testing::NamedInput> inputs = {{"q", &q}, {"keys", &keys}};
  if (has_params) inputs.insert(inputs.begin(), {"params", &params});
  GradCheckOptions opts;
  opts.step = 1e-3;
  EXPECT_TRUE(GradientsMatch(inputs, forward, backward, opts));
}

INSTANTIATE_TEST_SUITE_P(Kinds, ScorerGradTest,
                         ::testing::Values(Scorer::DIN_UNIT, Scorer::ADDITIVE,
                                           Scorer::SCALED_DOT_PRODUCT, Scorer::MULTI_HEAD),
                         [](const ::testing::TestParamInfo<Scorer::Kind>& info) {
                           return Scorer::Kind_Name(info.param);
                         });

// ---- settings refused at start
// -------------------------------------------------------------------

::testing::AssertionResult RejectsWith(const BlocksCase& c, const CtrModelDims& dims,
                                       const std::string& text) {
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(SmallModel(c), dims, 1, &model);
  if (s.ok()) return ::testing::AssertionFailure() << "accepted";
  if (s.message().find(text) == std::string::npos) {
    return ::testing::AssertionFailure() << "got " << s.ToString() << ", want " << text;
  }
  return ::testing::AssertionSuccess();
}

TEST(BlocksTest, BadSettingsAreRefusedNamingTheField) {
  const CtrModelDims dims = SmallDims();
  auto poso = [](const std::string& slot) {
    return [slot](config::BlocksConfig* b) { b->mutable_poso()->set_slot(slot); };
  };
  EXPECT_TRUE(RejectsWith({"", Kind::kDin, poso("activty")}, dims,
                          "model.blocks.poso.slot: no context slot named \"activty\" (the context "
                          "slots: age, activity)"));
  CtrModelDims no_context{2, 2, 0, 5, ""};
  EXPECT_TRUE(RejectsWith({"", Kind::kBase, poso("activity")}, no_context,
                          "model.blocks.poso.slot: no context slot named \"activity\" (there are "
                          "no context slots"));
  EXPECT_TRUE(RejectsWith({"", Kind::kDin, poso("")}, dims, "model.blocks.poso.slot: required"));
  EXPECT_TRUE(RejectsWith({"", Kind::kDin, poso("pooled item")}, dims,
                          "model.blocks.poso.slot: no context slot named \"pooled item\""));
  EXPECT_TRUE(RejectsWith({"", Kind::kDin,
                           [](config::BlocksConfig* b) {
                             SetScorer(b, Scorer::MULTI_HEAD);
                             b->mutable_scorer()->set_heads(3);
                           }},
                          dims, "model.blocks.scorer.heads: 3 does not divide the item dim 4"));
  EXPECT_TRUE(RejectsWith(
      {"", Kind::kDien, [](config::BlocksConfig* b) { SetScorer(b, Scorer::MULTI_HEAD); }}, dims,
      "model.blocks.scorer.kind: MULTI_HEAD has one weight per head"));
  BlocksCase bst_none{"", Kind::kBst,
                      [](config::BlocksConfig* b) { SetScorer(b, Scorer::ADDITIVE); }};
  config::ModelConfig m = SmallModel(bst_none);
  m.mutable_bst()->set_target_attention(config::BstModel::NONE);
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(m, dims, 1, &model);
  EXPECT_NE(s.message().find("model.blocks.scorer: model.bst.target_attention is NONE"),
            std::string::npos)
      << s.ToString();
  CtrModelDims wide_user = dims;
  wide_user.context = {{"age", 3}, {"activity", 1}};
  EXPECT_TRUE(RejectsWith(
      {"", Kind::kDin, [](config::BlocksConfig* b) { b->mutable_senet()->set_reduction_ratio(2); }},
      wide_user,
      "model.blocks.senet.reduction_ratio: SENet needs fields of one width, got age 3, activity 1, "
      "pooled item 2"));
  EXPECT_TRUE(RejectsWith({"", Kind::kBst, [](config::BlocksConfig* b) { b->mutable_afm(); }},
                          wide_user, "model.blocks.afm: AFM needs fields of one width"));
  EXPECT_TRUE(RejectsWith({"", Kind::kDin, [](config::BlocksConfig* b) { b->mutable_senet(); }},
                          dims, "model.blocks.senet.reduction_ratio: must be > 0, got 0"));
  BlocksCase both{"", Kind::kDin,
                  [](config::BlocksConfig* b) { b->mutable_senet()->set_reduction_ratio(2); }};
  config::ModelConfig twice = SmallModel(both);
  twice.mutable_din()->mutable_senet()->set_reduction_ratio(2);
  EXPECT_NE(MakeCtrModel(twice, dims, 1, &model)
                .message()
                .find("model.din.senet: set "
                      "model.blocks.senet or"),
            std::string::npos);
  EXPECT_TRUE(RejectsWith(
      {"", Kind::kDin, [](config::BlocksConfig* b) { b->mutable_lhuc()->set_hidden(0); }}, dims,
      "model.blocks.lhuc.hidden: must be > 0"));
}

}  // namespace
}  // namespace attnps::models
