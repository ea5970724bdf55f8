// BST: the whole model's gradients (BCE of the training step) against finite differences, for
// each target attention and with dropout; and its contracts. Its encoder block alone, post- and
// pre-LayerNorm: gradients against finite differences, and pre-LN against a direct reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "ops/norm.h"
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

// The encoder block alone (one chunk), its weights and input perturbed; the mask pads two samples.
// Backward must accumulate: the grads and dx start nonzero and only the increments are compared.
struct EncoderCase {
  std::string name;
  bool pre_norm = false;
  bool causal = false;
  float dropout = 0.0f;
};

void PrintTo(const EncoderCase& c, std::ostream* os) { *os << c.name; }

// [B, L] with lengths cycling through L, 2, 3.
Tensor EncoderMask(int64_t b, int64_t l) {
  Tensor mask = Tensor::Zeros({b, l});
  const int64_t lengths[] = {l, 2, 3};
  for (int64_t s = 0; s < b; ++s) {
    for (int64_t j = 0; j < lengths[s % 3]; ++j) mask[s * l + j] = 1.0f;
  }
  return mask;
}

class EncoderBlockGradTest : public ::testing::TestWithParam<EncoderCase> {};

TEST_P(EncoderBlockGradTest, GradientsMatchFiniteDifferences) {
  const EncoderCase c = GetParam();
  EncoderBlockOptions o;
  o.d = 4;
  o.heads = 2;
  o.ffn = 6;
  o.dropout = c.dropout;
  o.causal = c.causal;
  o.pre_norm = c.pre_norm;
  ParamArena arena;
  EncoderBlock block(o, &arena);
  arena.Allocate(13);
  std::mt19937 rng(6);
  const int64_t l = 4;
  Tensor x = RandomTensor({3, l, o.d}, &rng);
  const Tensor mask = EncoderMask(3, l);
  auto forward = [&] {
    Tensor y;
    block.Forward(x, mask, true, 21, &y);  // the same dropout masks on every probe
    return std::vector<Tensor>{y};
  };
  auto backward = [&](const std::vector<Tensor>& dys, std::vector<Tensor>* dxs) {
    constexpr float kGradStart = 0.5f, kDxStart = 0.25f;
    arena.grads().Fill(kGradStart);
    Tensor dx = Tensor::Filled(x.shape(), kDxStart);
    block.Backward(x, mask, dys[0], &dx);
    const Tensor& g = arena.grads();
    for (int64_t i = 0; i < g.numel(); ++i) (*dxs)[0][i] += g[i] - kGradStart;
    for (int64_t i = 0; i < dx.numel(); ++i) (*dxs)[1][i] += dx[i] - kDxStart;
  };
  GradCheckOptions opts;
  opts.step = 1e-3;
  EXPECT_TRUE(GradientsMatch({{"weights", &arena.params()}, {"x", &x}}, forward, backward, opts));
}

std::vector<EncoderCase> EncoderCases() {
  std::vector<EncoderCase> cases;
  for (bool pre : {false, true}) {
    for (bool causal : {false, true}) {
      EncoderCase c;
      c.name = std::string(pre ? "PreNorm" : "PostNorm") + (causal ? "Causal" : "");
      c.pre_norm = pre;
      c.causal = causal;
      cases.push_back(c);
    }
  }
  EncoderCase drop;
  drop.name = "PreNormCausalDropout";
  drop.pre_norm = true;
  drop.causal = true;
  drop.dropout = 0.3f;
  cases.push_back(drop);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Configs, EncoderBlockGradTest, ::testing::ValuesIn(EncoderCases()),
                         [](const ::testing::TestParamInfo<EncoderCase>& info) {
                           return info.param.name;
                         });

// y of the pre-LN block, written out directly in double from the weights in declaration order;
// a sample without valid keys gets zero attention.
std::vector<double> PreNormReference(const EncoderBlockOptions& o, const Tensor& params,
                                     const Tensor& x, const Tensor& mask) {
  using Row = std::vector<double>;
  const int64_t b = x.dim(0), l = x.dim(1), d = o.d, f = o.ffn, dh = d / o.heads;
  const float* p = params.data();
  auto take = [&](int64_t n) {
    const float* t = p;
    p += n;
    return t;
  };
  const float *wq = take(d * d), *bq = take(d), *wk = take(d * d), *bk = take(d), *wv = take(d * d),
              *bv = take(d), *wo = take(d * d), *bo = take(d);
  const float *g1 = take(d), *be1 = take(d), *w1 = take(d * f), *b1 = take(f), *w2 = take(f * d),
              *b2 = take(d), *g2 = take(d), *be2 = take(d);
  auto linear = [](const Row& v, const float* w, const float* bias, int64_t out) {
    Row r(out);
    for (int64_t j = 0; j < out; ++j) {
      r[j] = bias[j];
      for (size_t i = 0; i < v.size(); ++i) r[j] += v[i] * w[i * out + j];
    }
    return r;
  };
  auto layer_norm = [](const Row& v, const float* gamma, const float* beta) {
    double mean = 0, var = 0;
    for (double e : v) mean += e / v.size();
    for (double e : v) var += (e - mean) * (e - mean) / v.size();
    Row r(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      r[i] = (v[i] - mean) / std::sqrt(var + kLayerNormEps) * gamma[i] + beta[i];
    }
    return r;
  };
  std::vector<double> y;
  for (int64_t s = 0; s < b; ++s) {
    std::vector<Row> xs(l), q(l), k(l), v(l);
    for (int64_t i = 0; i < l; ++i) {
      xs[i].assign(x.data() + (s * l + i) * d, x.data() + (s * l + i + 1) * d);
      const Row n1 = layer_norm(xs[i], g1, be1);
      q[i] = linear(n1, wq, bq, d);
      k[i] = linear(n1, wk, bk, d);
      v[i] = linear(n1, wv, bv, d);
    }
    for (int64_t i = 0; i < l; ++i) {
      Row concat(d, 0.0);
      for (int64_t hd = 0; hd < o.heads; ++hd) {
        std::vector<int64_t> keys;
        for (int64_t j = 0; j < l; ++j) {
          if (mask[s * l + j] != 0.0f && (!o.causal || j <= i)) keys.push_back(j);
        }
        Row score;
        for (int64_t j : keys) {
          double dot = 0;
          for (int64_t c = hd * dh; c < (hd + 1) * dh; ++c) dot += q[i][c] * k[j][c];
          score.push_back(dot / std::sqrt(static_cast<double>(dh)));
        }
        double top = -1e300, sum = 0;
        for (double e : score) top = std::max(top, e);
        for (double& e : score) sum += (e = std::exp(e - top));
        for (size_t t = 0; t < keys.size(); ++t) {
          for (int64_t c = hd * dh; c < (hd + 1) * dh; ++c) {
            concat[c] += score[t] / sum * v[keys[t]][c];
          }
        }
      }
      const Row attn = linear(concat, wo, bo, d);
      Row h(d);
      for (int64_t c = 0; c < d; ++c) h[c] = xs[i][c] + attn[c];
      Row a = linear(layer_norm(h, g2, be2), w1, b1, f);
      for (double& e : a) e = std::max(e, 0.0);
      const Row f2 = linear(a, w2, b2, d);
      for (int64_t c = 0; c < d; ++c) y.push_back(h[c] + f2[c]);
    }
  }
  return y;
}

// Every weight random (the LayerNorms' too); samples of length 3, 2 and 0 (no valid key).
TEST(EncoderBlockTest, PreNormMatchesADirectReference) {
  for (bool causal : {false, true}) {
    EncoderBlockOptions o;
    o.d = 4;
    o.heads = 2;
    o.ffn = 5;
    o.causal = causal;
    o.pre_norm = true;
    ParamArena arena;
    EncoderBlock block(o, &arena);
    arena.Allocate(2);
    std::mt19937 rng(9);
    arena.params().CopyFrom(RandomTensor(arena.params().shape(), &rng));
    const Tensor x = RandomTensor({3, 3, o.d}, &rng);
    const Tensor mask = Tensor::FromVector({3, 3}, {1, 1, 1, 1, 1, 0, 0, 0, 0});
    const std::vector<double> want = PreNormReference(o, arena.params(), x, mask);
    Tensor y;
    block.Forward(x, mask, false, 0, &y);
    std::vector<float> want_f(want.begin(), want.end());
    EXPECT_TRUE(attnps::testing::AllClose(y, Tensor::FromVector(y.shape(), want_f), 1e-5f, 1e-4f))
        << "causal " << causal;
  }
}

// Without dropout the samples are independent: a batch of two chunks (the last one partial) gives
// the outputs, dx and weight gradients of its chunks run alone.
TEST(EncoderBlockTest, PreNormBatchOfTwoChunksMatchesItsChunksRunAlone) {
  EncoderBlockOptions o;
  o.d = 4;
  o.heads = 2;
  o.ffn = 6;
  o.causal = true;
  o.pre_norm = true;
  ParamArena arena;
  EncoderBlock block(o, &arena);
  arena.Allocate(4);
  std::mt19937 rng(12);
  const int64_t chunk = EncoderBlock::kSamplesPerChunk, b = chunk + 2, l = 4;
  const Tensor x = RandomTensor({b, l, o.d}, &rng), dy = RandomTensor({b, l, o.d}, &rng);
  const Tensor mask = EncoderMask(b, l);
  Tensor y, dx = Tensor::Zeros({b, l, o.d});
  arena.grads().SetZero();
  block.Forward(x, mask, true, 0, &y);
  block.Backward(x, mask, dy, &dx);
  const Tensor grads = arena.grads().Clone();
  arena.grads().SetZero();
  for (auto [s0, s1] : {std::pair{int64_t{0}, chunk}, std::pair{chunk, b}}) {
    Tensor ys, dxs = Tensor::Zeros({s1 - s0, l, o.d});
    block.Forward(x.Rows(s0, s1), mask.Rows(s0, s1), true, 0, &ys);
    block.Backward(x.Rows(s0, s1), mask.Rows(s0, s1), dy.Rows(s0, s1), &dxs);
    EXPECT_TRUE(attnps::testing::AllClose(y.Rows(s0, s1), ys, 1e-6f, 1e-5f)) << s0;
    EXPECT_TRUE(attnps::testing::AllClose(dx.Rows(s0, s1), dxs, 1e-6f, 1e-5f)) << s0;
  }
  EXPECT_TRUE(attnps::testing::AllClose(grads, arena.grads(), 1e-6f, 1e-5f));
}

}  // namespace
}  // namespace attnps::models
