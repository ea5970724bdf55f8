// BST: the whole model's gradients (BCE of the training step) against finite differences, for
// each target attention and with dropout; and its contracts.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "tests/ops/gradcheck.h"
#include "tests/worker/models/ctr_inputs_testing.h"
#include "worker/models/ctr_model.h"
#include "worker/models/encoder_block.h"

namespace attnps::models {
namespace {

using attnps::testing::GradCheckOptions;
using attnps::testing::GradientsMatch;
using attnps::testing::RandomTensor;
using testing::AlternatingLabels;
using testing::RandomCtrInputs;
using testing::TrainStepGradientsMatch;
using Bst = config::BstModel;

struct BstCase {
  std::string name;
  Bst::TargetAttention target_attention = Bst::DIN_UNIT;
  int blocks = 1;
  int heads = 2;
  float dropout = 0.0f;
  int user_dim = 0;
  config::Activation mlp_act = config::DICE;
  int64_t batch = 5;
};

// d = 2 per field (D = 4), FFN 6, attention 6-3, MLP 5-3, max_history 5.
config::ModelConfig SmallBst(const BstCase& c) {
  config::ModelConfig m;
  m.mutable_mlp()->add_hidden(5);
  m.mutable_mlp()->add_hidden(3);
  m.mutable_mlp()->set_activation(c.mlp_act);
  Bst* bst = m.mutable_bst();
  bst->set_blocks(c.blocks);
  bst->set_heads(c.heads);
  bst->set_ffn_hidden(6);
  bst->set_dropout(c.dropout);
  bst->set_target_attention(c.target_attention);
  bst->add_attention_hidden(6);
  bst->add_attention_hidden(3);
  return m;
}

std::unique_ptr<CtrModel> MakeBst(const BstCase& c, uint64_t seed) {
  std::unique_ptr<CtrModel> model;
  const Status s = MakeCtrModel(SmallBst(c), {2, 2, c.user_dim, 5, ""}, seed, &model);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return model;
}

void PrintTo(const BstCase& c, std::ostream* os) { *os << c.name; }

class BstGradTest : public ::testing::TestWithParam<BstCase> {};

// L = the training step's BCE as a function of the weights and inputs. With dropout the masks
// are a function of the target rows and lengths, so the target is not perturbed then.
TEST_P(BstGradTest, TrainStepGradientsMatchFiniteDifferences) {
  const BstCase c = GetParam();
  std::unique_ptr<CtrModel> model = MakeBst(c, 17);
  ASSERT_NE(model, nullptr);
  std::mt19937 rng(5);
  const int64_t b = c.batch;
  CtrInputs in = RandomCtrInputs(b, c.user_dim, false, &rng);
  const Tensor labels = AlternatingLabels(b);
  // With dropout the masks are keyed by the target rows: the target is not perturbed then.
  std::vector<std::string> checked = {"history"};
  if (c.dropout == 0.0f) checked.push_back("target");
  if (c.user_dim > 0) checked.push_back("user");
  GradCheckOptions opts;
  opts.step = 1e-3;
  opts.max_probes_per_input = 400;
  EXPECT_TRUE(TrainStepGradientsMatch(model.get(), &in, labels, checked, opts));
}

std::vector<BstCase> BstCases() {
  std::vector<BstCase> cases;
  for (auto [ta, name] :
       {std::pair{Bst::DIN_UNIT, "DinUnit"}, std::pair{Bst::SCALED_DOT_PRODUCT, "ScaledDotProduct"},
        std::pair{Bst::NONE, "SelfAttentionOnly"}}) {
    BstCase c;
    c.name = name;
    c.target_attention = ta;
    cases.push_back(c);
  }
  BstCase two;
  two.name = "TwoBlocksOneHeadUserPrelu";
  two.blocks = 2;
  two.heads = 1;
  two.user_dim = 3;
  two.mlp_act = config::PRELU;
  cases.push_back(two);
  BstCase drop;
  drop.name = "DinUnitDropout";
  drop.dropout = 0.3f;
  drop.blocks = 2;
  cases.push_back(drop);
  BstCase chunks;  // the encoder blocks' chunks of samples: several, the last one partial
  chunks.name = "SeveralChunksDropout";
  chunks.dropout = 0.3f;
  chunks.batch = 2 * EncoderBlock::kSamplesPerChunk + 3;
  cases.push_back(chunks);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Configs, BstGradTest, ::testing::ValuesIn(BstCases()),
                         [](const ::testing::TestParamInfo<BstCase>& info) {
                           return info.param.name;
                         });

// Dropout is drawn per batch in training (the same batch twice: the same mask, as a resumed run
// needs) and never at inference.
TEST(BstTest, DropoutIsAPureFunctionOfTheBatchAndOffAtInference) {
  BstCase c;
  c.dropout = 0.5f;
  std::unique_ptr<CtrModel> model = MakeBst(c, 3);
  std::mt19937 rng(8);
  CtrInputs in = RandomCtrInputs(6, 0, false, &rng);
  Tensor a, b, e1, e2;
  model->Forward(in, true, &a);
  model->Forward(in, true, &b);
  EXPECT_TRUE(attnps::testing::AllClose(a, b, 0.0f, 0.0f));
  model->Forward(in, false, &e1);
  model->Forward(in, false, &e2);
  EXPECT_TRUE(attnps::testing::AllClose(e1, e2, 0.0f, 0.0f));
  CtrInputs other = in;
  other.target = in.target.Clone();
  other.target[0] += 1e-3f;  // another batch: other masks
  Tensor c1;
  model->Forward(other, true, &c1);
  double diff = 0;
  for (int64_t r = 1; r < 6; ++r) diff += std::fabs(c1[r] - a[r]);
  EXPECT_GT(diff, 1e-4);
}

// The encoder blocks sum their chunks' weight gradients in chunk order: one thread and two give
// the very same logits and gradients.
TEST(BstTest, TrainStepDoesNotDependOnTheThreadCount) {
  BstCase c;
  c.dropout = 0.2f;
  const int64_t b = 3 * EncoderBlock::kSamplesPerChunk + 1;
  std::mt19937 rng(4);
  const CtrInputs in = RandomCtrInputs(b, 0, false, &rng);
  const int threads = NumThreads();
  std::vector<Tensor> runs;
  for (int t : {1, 2}) {
    SetNumThreads(t);
    std::unique_ptr<CtrModel> model = MakeBst(c, 9);
    Tensor logits;
    CtrInputGrads g{Tensor::Zeros(in.target.shape()), Tensor::Zeros(in.history.shape()), Tensor(),
                    Tensor()};
    model->grads().SetZero();
    model->TrainStep(in, AlternatingLabels(b), 1.0f, &logits, &g);
    runs.push_back(logits);
    runs.push_back(model->grads().Clone());
    runs.push_back(g.history);
  }
  SetNumThreads(threads);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(attnps::testing::AllClose(runs[i], runs[i + 3], 0, 0));
}

// Rows without history score (the sequence is the target alone) and train.
TEST(BstTest, EmptyHistoriesScoreAndTrain) {
  for (auto ta : {Bst::DIN_UNIT, Bst::SCALED_DOT_PRODUCT, Bst::NONE}) {
    BstCase c;
    c.target_attention = ta;
    std::unique_ptr<CtrModel> model = MakeBst(c, 5);
    CtrInputs in;
    std::mt19937 rng(2);
    in.target = RandomTensor({3, 4}, &rng);
    in.history_offsets = {0, 0, 0, 0};
    in.history = Tensor::Zeros({0, 4});
    Tensor logits;
    CtrInputGrads g{Tensor::Zeros({3, 4}), Tensor(), Tensor(), Tensor()};
    EXPECT_TRUE(std::isfinite(model->TrainStep(in, AlternatingLabels(3), 1.0f, &logits, &g)));
    for (int64_t r = 0; r < 3; ++r) EXPECT_TRUE(std::isfinite(logits[r]));
  }
}

TEST(BstTest, BadSettingsAreRefusedNamingTheField) {
  struct Bad {
    void (*edit)(Bst*);
    std::string field;
  } bad[] = {{[](Bst* b) { b->set_heads(3); }, "model.bst.heads: 3 does not divide the item dim 4"},
             {[](Bst* b) { b->set_blocks(0); }, "model.bst.blocks"},
             {[](Bst* b) { b->set_dropout(1.0f); }, "model.bst.dropout"},
             {[](Bst* b) { b->set_ffn_hidden(-1); }, "model.bst.ffn_hidden"},
             {[](Bst* b) { b->add_attention_hidden(2); }, "model.bst.attention_hidden"}};
  for (const Bad& c : bad) {
    config::ModelConfig m = SmallBst(BstCase{});
    c.edit(m.mutable_bst());
    std::unique_ptr<CtrModel> model;
    const Status s = MakeCtrModel(m, {2, 2, 0, 5, ""}, 1, &model);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_NE(s.ToString().find(c.field), std::string::npos) << s.ToString();
  }
}

}  // namespace
}  // namespace attnps::models
