#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::NamedInput;
using testing::RandomTensor;

enum class MaskKind { kNone, kPrefix, kPrefixWithEmptyRow };

// A [b, t] mask of the given kind; kPrefixWithEmptyRow makes row 0 fully masked.
Tensor MakeMask(MaskKind kind, int64_t b, int64_t t, std::mt19937* rng) {
  if (kind == MaskKind::kNone) return Tensor();
  Tensor m = testing::RandomPrefixMask(b, t, rng, /*min_len=*/1);
  if (kind == MaskKind::kPrefixWithEmptyRow) {
    for (int64_t j = 0; j < t; ++j) m[j] = 0.0f;
  }
  return m;
}

::testing::AssertionResult AllFinite(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(t[i])) return ::testing::AssertionFailure() << "non-finite at " << i;
  }
  return ::testing::AssertionSuccess();
}

// Elements [begin, end) of t are all exactly zero.
::testing::AssertionResult ZeroRange(const Tensor& t, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    if (t[i] != 0.0f) return ::testing::AssertionFailure() << "index " << i << " is " << t[i];
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Masked softmax.

struct SoftmaxCase {
  int64_t n, t;
  float scale;
  MaskKind mask;
};

class MaskedSoftmaxGradTest : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(MaskedSoftmaxGradTest, MatchesFiniteDifferences) {
  const SoftmaxCase c = GetParam();
  std::mt19937 rng(c.n * 31 + c.t);
  Tensor x = RandomTensor({c.n, c.t}, &rng, -2.0f, 2.0f);
  const Tensor mask = MakeMask(c.mask, c.n, c.t, &rng);
  Tensor y = Tensor::Empty({c.n, c.t});
  auto forward = [&] {
    MaskedSoftmaxForward(x, mask, c.scale, &y);
    return std::vector<Tensor>{y.Clone()};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    MaskedSoftmaxBackward(y, dy[0], c.scale, &(*d)[0]);
  };
  EXPECT_TRUE(GradientsMatch({{"x", &x}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, MaskedSoftmaxGradTest,
                         ::testing::Values(SoftmaxCase{1, 1, 1.0f, MaskKind::kNone},
                                           SoftmaxCase{1, 1, 1.0f, MaskKind::kPrefix},
                                           SoftmaxCase{4, 9, 2.0f, MaskKind::kNone},
                                           SoftmaxCase{5, 7, 0.5f, MaskKind::kPrefixWithEmptyRow},
                                           SoftmaxCase{6, 1, 1.0f, MaskKind::kPrefix}));

TEST(MaskedSoftmaxTest, HandComputedForward) {
  Tensor x = Tensor::FromVector({3, 3}, {1, 2, 3, 0.5f, -1, 2, 4, 5, 6});
  Tensor mask = Tensor::FromVector({3, 3}, {1, 1, 0, 1, 1, 1, 0, 0, 0});
  Tensor y = Tensor::Empty({3, 3});
  MaskedSoftmaxForward(x, mask, 0.5f, &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({3, 3}, {0.37754067f, 0.62245933f, 0, 0.27860069f,
                                                      0.13160165f, 0.58979766f, 0, 0, 0})));
}

TEST(MaskedSoftmaxTest, WithoutMaskIsStableForLargeInputs) {
  Tensor x = Tensor::FromVector({1, 2}, {1000, 1000});
  Tensor y = Tensor::Empty({1, 2});
  MaskedSoftmaxForward(x, Tensor(), 1.0f, &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({1, 2}, {0.5f, 0.5f})));
}

TEST(MaskedSoftmaxTest, FullyMaskedRowGivesZerosAndZeroGradient) {
  Tensor x = Tensor::FromVector({2, 3}, {100, -100, 3, 1, 2, 3});
  Tensor mask = Tensor::FromVector({2, 3}, {0, 0, 0, 1, 1, 1});
  Tensor y = Tensor::Filled({2, 3}, 7.0f);
  MaskedSoftmaxForward(x, mask, 1.0f, &y);
  EXPECT_TRUE(AllFinite(y));
  EXPECT_TRUE(ZeroRange(y, 0, 3));
  Tensor dy = Tensor::FromVector({2, 3}, {1, -2, 3, 0.5f, 0.5f, 1});
  Tensor dx = Tensor::Zeros({2, 3});
  MaskedSoftmaxBackward(y, dy, 1.0f, &dx);
  EXPECT_TRUE(AllFinite(dx));
  EXPECT_TRUE(ZeroRange(dx, 0, 3));
}

TEST(MaskedSoftmaxTest, BackwardAccumulatesIntoGradient) {
  Tensor y = Tensor::FromVector({1, 2}, {0.25f, 0.75f});
  Tensor dy = Tensor::FromVector({1, 2}, {1, 0});
  Tensor dx = Tensor::Filled({1, 2}, 1.0f);
  MaskedSoftmaxBackward(y, dy, 2.0f, &dx);
  // 2 * y * (dy - 0.25) = {0.375, -0.375}, added to 1.
  EXPECT_TRUE(AllClose(dx, Tensor::FromVector({1, 2}, {1.375f, 0.625f})));
}

TEST(MaskedSoftmaxDeathTest, MismatchedMaskNamesOpAndShapes) {
  Tensor x = Tensor::Zeros({2, 3});
  Tensor y = Tensor::Zeros({2, 3});
  EXPECT_DEATH(MaskedSoftmaxForward(x, Tensor::Zeros({2, 4}), 1.0f, &y),
               "masked_softmax_forward: mask dim 1 is 4, expected T=3 .*x=\\[2, 3\\] "
               "mask=\\[2, 4\\]");
  Tensor dx = Tensor::Zeros({3, 3});
  EXPECT_DEATH(MaskedSoftmaxBackward(y, y, 1.0f, &dx),
               "masked_softmax_backward: dx dim 0 is 3, expected N=2");
}

// ---------------------------------------------------------------------------------------------
// Scaled dot-product attention.

struct SdpaCase {
  int64_t b, tq, t, dk, dv;
  bool causal;
  MaskKind mask;
};

class SdpaGradTest : public ::testing::TestWithParam<SdpaCase> {};

TEST_P(SdpaGradTest, MatchesFiniteDifferences) {
  const SdpaCase c = GetParam();
  std::mt19937 rng(c.b * 1000 + c.tq * 100 + c.t * 10 + c.dk + c.causal);
  Tensor q = RandomTensor({c.b, c.tq, c.dk}, &rng);
  Tensor k = RandomTensor({c.b, c.t, c.dk}, &rng);
  Tensor v = RandomTensor({c.b, c.t, c.dv}, &rng);
  const Tensor mask = MakeMask(c.mask, c.b, c.t, &rng);
  Tensor p = Tensor::Empty({c.b, c.tq, c.t});
  auto forward = [&] {
    Tensor out = Tensor::Empty({c.b, c.tq, c.dv});
    ScaledDotProductAttentionForward(q, k, v, mask, c.causal, &p, &out);
    return std::vector<Tensor>{out};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    ScaledDotProductAttentionBackward(q, k, v, p, dy[0], &(*d)[0], &(*d)[1], &(*d)[2]);
  };
  EXPECT_TRUE(GradientsMatch({{"q", &q}, {"k", &k}, {"v", &v}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SdpaGradTest,
    ::testing::Values(SdpaCase{1, 1, 1, 1, 1, false, MaskKind::kNone},
                      SdpaCase{3, 1, 5, 4, 3, false, MaskKind::kPrefixWithEmptyRow},  // target
                      SdpaCase{2, 4, 4, 3, 5, false, MaskKind::kPrefix},              // self
                      SdpaCase{2, 4, 4, 3, 2, true, MaskKind::kNone},
                      SdpaCase{3, 5, 5, 2, 3, true, MaskKind::kPrefixWithEmptyRow},
                      SdpaCase{1, 3, 7, 5, 1, false, MaskKind::kPrefix}));

TEST(SdpaTest, HandComputedForwardWithMask) {
  Tensor q = Tensor::FromVector({1, 2, 2}, {1, 0, 0, 2});
  Tensor k = Tensor::FromVector({1, 3, 2}, {1, 1, 2, 0, 0, -1});
  Tensor v = Tensor::FromVector({1, 3, 2}, {1, 2, 3, -1, 10, 10});
  Tensor mask = Tensor::FromVector({1, 3}, {1, 1, 0});
  Tensor p = Tensor::Empty({1, 2, 3}), out = Tensor::Empty({1, 2, 2});
  ScaledDotProductAttentionForward(q, k, v, mask, false, &p, &out);
  EXPECT_TRUE(AllClose(p, Tensor::FromVector({1, 2, 3}, {0.33023845f, 0.66976155f, 0, 0.80442968f,
                                                         0.19557032f, 0})));
  EXPECT_TRUE(AllClose(
      out, Tensor::FromVector({1, 2, 2}, {2.3395231f, -0.00928465f, 1.39114063f, 1.41328905f})));
}

TEST(SdpaTest, HandComputedCausalForward) {
  Tensor x = Tensor::FromVector({1, 3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor v = Tensor::FromVector({1, 3, 2}, {1, 0, 0, 1, 2, 2});
  Tensor p = Tensor::Empty({1, 3, 3}), out = Tensor::Empty({1, 3, 2});
  ScaledDotProductAttentionForward(x, x, v, Tensor(), true, &p, &out);
  EXPECT_TRUE(AllClose(p, Tensor::FromVector({1, 3, 3}, {1, 0, 0, 0.33023845f, 0.66976155f, 0,
                                                         0.24825508f, 0.24825508f, 0.50348984f})));
  EXPECT_TRUE(AllClose(out, Tensor::FromVector({1, 3, 2}, {1, 0, 0.33023845f, 0.66976155f,
                                                           1.25523477f, 1.25523477f})));
}

TEST(SdpaTest, FullyMaskedRowGivesZerosAndZeroGradients) {
  std::mt19937 rng(3);
  Tensor q = RandomTensor({2, 2, 3}, &rng), k = RandomTensor({2, 4, 3}, &rng);
  Tensor v = RandomTensor({2, 4, 2}, &rng);
  Tensor mask = Tensor::FromVector({2, 4}, {0, 0, 0, 0, 1, 1, 0, 0});
  Tensor p = Tensor::Empty({2, 2, 4}), out = Tensor::Empty({2, 2, 2});
  ScaledDotProductAttentionForward(q, k, v, mask, false, &p, &out);
  EXPECT_TRUE(AllFinite(p));
  EXPECT_TRUE(ZeroRange(p, 0, 8));
  EXPECT_TRUE(ZeroRange(out, 0, 4));
  Tensor dq = Tensor::Zeros(q.shape()), dk = Tensor::Zeros(k.shape()),
         dv = Tensor::Zeros(v.shape());
  ScaledDotProductAttentionBackward(q, k, v, p, RandomTensor({2, 2, 2}, &rng), &dq, &dk, &dv);
  EXPECT_TRUE(ZeroRange(dq, 0, 6));
  EXPECT_TRUE(ZeroRange(dk, 0, 12));
  EXPECT_TRUE(ZeroRange(dv, 0, 8));
  EXPECT_TRUE(AllFinite(dq) && AllFinite(dk) && AllFinite(dv));
}

TEST(SdpaDeathTest, BadShapesNameOpAndShapes) {
  Tensor q = Tensor::Zeros({1, 2, 4}), k = Tensor::Zeros({1, 3, 4}), v = Tensor::Zeros({1, 3, 5});
  Tensor p = Tensor::Zeros({1, 2, 3}), out = Tensor::Zeros({1, 2, 5});
  EXPECT_DEATH(ScaledDotProductAttentionForward(q, k, v, Tensor(), true, &p, &out),
               "scaled_dot_product_attention_forward: requires causal attention with Tq == T "
               ".*q=\\[1, 2, 4\\] k=\\[1, 3, 4\\]");
  EXPECT_DEATH(
      ScaledDotProductAttentionForward(q, k, Tensor::Zeros({1, 4, 5}), Tensor(), false, &p, &out),
      "scaled_dot_product_attention_forward: v dim 1 is 4, expected T=3");
  Tensor dk = Tensor::Zeros({1, 3, 5});
  EXPECT_DEATH(ScaledDotProductAttentionBackward(q, k, v, p, out, nullptr, &dk, nullptr),
               "scaled_dot_product_attention_backward: dk must have shape \\[1, 3, 4\\]");
}

// ---------------------------------------------------------------------------------------------
// Multi-head attention.

struct MhaCase {
  int64_t b, tq, t, d, heads, dk, dv, dout;
  bool causal, bias, self;
  MaskKind mask;
};

MultiHeadAttentionParams RandomMhaParams(const MhaCase& c, std::mt19937* rng) {
  const int64_t pk = c.heads * c.dk, pv = c.heads * c.dv;
  auto bias = [&](int64_t n) { return c.bias ? RandomTensor({n}, rng) : Tensor(); };
  return {RandomTensor({c.d, pk}, rng), bias(pk), RandomTensor({c.d, pk}, rng),    bias(pk),
          RandomTensor({c.d, pv}, rng), bias(pv), RandomTensor({pv, c.dout}, rng), bias(c.dout)};
}

class MultiHeadAttentionGradTest : public ::testing::TestWithParam<MhaCase> {};

TEST_P(MultiHeadAttentionGradTest, MatchesFiniteDifferences) {
  const MhaCase c = GetParam();
  std::mt19937 rng(c.b * 1000 + c.tq * 100 + c.t * 10 + c.heads + 7 * c.self);
  Tensor query = RandomTensor({c.b, c.tq, c.d}, &rng);
  Tensor keys = c.self ? query : RandomTensor({c.b, c.t, c.d}, &rng);
  const Tensor mask = MakeMask(c.mask, c.b, c.t, &rng);
  MultiHeadAttentionParams params = RandomMhaParams(c, &rng);
  const MultiHeadAttentionOptions options{c.heads, c.causal};
  // Self-attention runs on the packed projections.
  MultiHeadAttentionWorkspace ws =
      c.self ? MultiHeadAttentionWorkspace::AllocateSelf(c.b, c.t, c.heads, c.dk, c.dv)
             : MultiHeadAttentionWorkspace::Allocate(c.b, c.tq, c.t, c.heads, c.dk, c.dv);

  std::vector<NamedInput> inputs = {{"query", &query}};
  if (!c.self) inputs.push_back({"keys", &keys});
  Tensor* weights[] = {&params.wq, &params.bq, &params.wk, &params.bk,
                       &params.wv, &params.bv, &params.wo, &params.bo};
  const char* names[] = {"wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo"};
  const size_t first_weight = inputs.size();
  for (int i = 0; i < 8; ++i) {
    if (!weights[i]->empty()) inputs.push_back({names[i], weights[i]});
  }
  auto forward = [&] {
    Tensor out = Tensor::Empty({c.b, c.tq, c.dout});
    MultiHeadAttentionForward(query, keys, mask, params, options, &ws, &out);
    return std::vector<Tensor>{out};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    MultiHeadAttentionParams grads = MultiHeadAttentionParams::ZerosLike(params);
    Tensor* grad_slots[] = {&grads.wq, &grads.bq, &grads.wk, &grads.bk,
                            &grads.wv, &grads.bv, &grads.wo, &grads.bo};
    size_t next = first_weight;
    for (int i = 0; i < 8; ++i) {
      if (!weights[i]->empty()) *grad_slots[i] = (*d)[next++];  // shares the buffer
    }
    Tensor* d_keys = c.self ? &(*d)[0] : &(*d)[1];
    MultiHeadAttentionBackward(query, keys, mask, params, options, dy[0], &ws, &(*d)[0], d_keys,
                               &grads);
  };
  EXPECT_TRUE(GradientsMatch(inputs, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MultiHeadAttentionGradTest,
    ::testing::Values(
        MhaCase{1, 1, 1, 1, 1, 1, 1, 1, false, true, false, MaskKind::kNone},
        // Target attention (Tq = 1), two heads, a fully masked row.
        MhaCase{3, 1, 5, 6, 2, 3, 2, 5, false, true, false, MaskKind::kPrefixWithEmptyRow},
        // Self-attention, causal and not, with and without biases.
        MhaCase{2, 4, 4, 5, 2, 2, 3, 3, true, true, true, MaskKind::kPrefix},
        MhaCase{2, 3, 3, 4, 1, 3, 3, 2, false, false, true, MaskKind::kPrefixWithEmptyRow},
        MhaCase{1, 5, 5, 3, 3, 1, 2, 4, true, false, true, MaskKind::kNone},
        // Cross attention with 1 < Tq != T.
        MhaCase{2, 2, 3, 4, 2, 2, 1, 3, false, true, false, MaskKind::kPrefix}));

// The packed projections of a self-attention workspace give what three separate ones give, on
// the whole batch and on a slice of it (Samples).
TEST(MultiHeadAttentionTest, SelfAttentionWorkspaceMatchesTheSeparateProjections) {
  const MhaCase c{5, 4, 4, 6, 2, 3, 2, 3, false, true, true, MaskKind::kPrefixWithEmptyRow};
  std::mt19937 rng(3);
  const Tensor x = RandomTensor({c.b, c.t, c.d}, &rng);
  const Tensor mask = MakeMask(c.mask, c.b, c.t, &rng);
  const MultiHeadAttentionParams params = RandomMhaParams(c, &rng);
  const Tensor dy = RandomTensor({c.b, c.t, c.dout}, &rng);
  const MultiHeadAttentionOptions options{c.heads, false};
  std::vector<Tensor> results[3];
  for (int run = 0; run < 3; ++run) {  // separate, packed, packed on samples [1, 4)
    const int64_t b0 = run == 2 ? 1 : 0, b1 = run == 2 ? 4 : c.b;
    MultiHeadAttentionWorkspace ws =
        run == 0 ? MultiHeadAttentionWorkspace::Allocate(c.b, c.t, c.t, c.heads, c.dk, c.dv)
                 : MultiHeadAttentionWorkspace::AllocateSelf(c.b, c.t, c.heads, c.dk, c.dv);
    MultiHeadAttentionWorkspace slice = ws.Samples(b0, b1);
    const Tensor xs = x.Rows(b0, b1), ms = mask.Rows(b0, b1);
    Tensor out = Tensor::Empty({b1 - b0, c.t, c.dout}), dx = Tensor::Zeros(xs.shape());
    MultiHeadAttentionParams grads = MultiHeadAttentionParams::ZerosLike(params);
    MultiHeadAttentionForward(xs, xs, ms, params, options, &slice, &out);
    MultiHeadAttentionBackward(xs, xs, ms, params, options, dy.Rows(b0, b1), &slice, &dx, &dx,
                               &grads);
    results[run] = {out, dx, grads.wq, grads.bk, grads.wv, grads.wo};
  }
  for (size_t i = 0; i < results[0].size(); ++i) {
    EXPECT_TRUE(AllClose(results[1][i], results[0][i], 1e-5f, 1e-5f)) << "tensor " << i;
  }
  // The slice: its rows of the output and the input gradient.
  for (size_t i = 0; i < 2; ++i) {
    const Tensor whole = results[1][i].Rows(1, 4);
    EXPECT_TRUE(AllClose(results[2][i], whole, 1e-6f, 1e-6f)) << "slice tensor " << i;
  }
}

Tensor Identity(int64_t n) {
  Tensor t = Tensor::Zeros({n, n});
  for (int64_t i = 0; i < n; ++i) t[i * n + i] = 1.0f;
  return t;
}

TEST(MultiHeadAttentionTest, HandComputedTwoHeadsWithIdentityWeights) {
  // Head 0 sees dims 0-1 of query and keys, head 1 dims 2-3; the third key is padding.
  Tensor query = Tensor::FromVector({1, 1, 4}, {1, 0, 2, 0});
  Tensor keys = Tensor::FromVector({1, 3, 4}, {1, 0, 0, 1, 0, 1, 1, 0, 2, 2, 2, 2});
  Tensor mask = Tensor::FromVector({1, 3}, {1, 1, 0});
  MultiHeadAttentionParams params{
      Identity(4), Tensor(), Identity(4), Tensor(),
      Identity(4), Tensor(), Identity(4), Tensor::FromVector({4}, {0.5f, 0, 0, -0.5f})};
  MultiHeadAttentionWorkspace ws = MultiHeadAttentionWorkspace::Allocate(1, 1, 3, 2, 2, 2);
  Tensor out = Tensor::Empty({1, 1, 4});
  MultiHeadAttentionForward(query, keys, mask, params, {2, false}, &ws, &out);
  EXPECT_TRUE(AllClose(ws.probs, Tensor::FromVector({1, 2, 1, 3}, {0.66976155f, 0.33023845f, 0,
                                                                   0.19557032f, 0.80442968f, 0})));
  EXPECT_TRUE(AllClose(
      out, Tensor::FromVector({1, 1, 4}, {1.16976155f, 0.33023845f, 0.80442968f, -0.30442968f})));
}

TEST(MultiHeadAttentionTest, FullyMaskedRowGivesOutputBiasAndZeroInputGradient) {
  const MhaCase c{2, 1, 3, 4, 2, 2, 2, 3, false, true, false, MaskKind::kNone};
  std::mt19937 rng(5);
  Tensor query = RandomTensor({2, 1, 4}, &rng), keys = RandomTensor({2, 3, 4}, &rng);
  Tensor mask = Tensor::FromVector({2, 3}, {0, 0, 0, 1, 1, 0});
  MultiHeadAttentionParams params = RandomMhaParams(c, &rng);
  MultiHeadAttentionWorkspace ws = MultiHeadAttentionWorkspace::Allocate(2, 1, 3, 2, 2, 2);
  Tensor out = Tensor::Empty({2, 1, 3});
  MultiHeadAttentionForward(query, keys, mask, params, {2, false}, &ws, &out);
  EXPECT_TRUE(AllFinite(out));
  EXPECT_TRUE(AllClose(out.Rows(0, 1).Reshaped({3}), params.bo));
  Tensor d_query = Tensor::Zeros(query.shape()), d_keys = Tensor::Zeros(keys.shape());
  MultiHeadAttentionBackward(query, keys, mask, params, {2, false}, RandomTensor({2, 1, 3}, &rng),
                             &ws, &d_query, &d_keys, nullptr);
  EXPECT_TRUE(AllFinite(d_query) && AllFinite(d_keys));
  EXPECT_TRUE(ZeroRange(d_query, 0, 4));
  EXPECT_TRUE(ZeroRange(d_keys, 0, 12));
}

TEST(MultiHeadAttentionDeathTest, BadShapesNameOpAndShapes) {
  const MhaCase c{1, 2, 3, 4, 2, 2, 2, 4, false, false, false, MaskKind::kNone};
  std::mt19937 rng(1);
  MultiHeadAttentionParams params = RandomMhaParams(c, &rng);
  Tensor query = Tensor::Zeros({1, 2, 4}), keys = Tensor::Zeros({1, 3, 4});
  Tensor out = Tensor::Zeros({1, 2, 4});
  MultiHeadAttentionWorkspace ws = MultiHeadAttentionWorkspace::Allocate(1, 2, 3, 2, 2, 2);
  EXPECT_DEATH(MultiHeadAttentionForward(query, keys, Tensor(), params, {3, false}, &ws, &out),
               "multi_head_attention_forward: requires heads=3 dividing Pk=4 and Pv=4 "
               ".*wq=\\[4, 4\\]");
  EXPECT_DEATH(MultiHeadAttentionForward(query, keys, Tensor(), params, {2, true}, &ws, &out),
               "multi_head_attention_forward: requires causal attention with Tq == T "
               ".*query=\\[1, 2, 4\\] keys=\\[1, 3, 4\\]");
  EXPECT_DEATH(MultiHeadAttentionForward(query, Tensor::Zeros({1, 3, 5}), Tensor(), params,
                                         {2, false}, &ws, &out),
               "multi_head_attention_forward: keys dim 2 is 5, expected D=4");
  MultiHeadAttentionWorkspace wrong_t = MultiHeadAttentionWorkspace::Allocate(1, 2, 4, 2, 2, 2);
  EXPECT_DEATH(MultiHeadAttentionForward(query, keys, Tensor(), params, {2, false}, &wrong_t, &out),
               "multi_head_attention_forward: ws.k dim 1 is 4, expected T=3");
  MultiHeadAttentionParams grads = MultiHeadAttentionParams::ZerosLike(params);
  grads.wo = Tensor::Zeros({4, 5});
  EXPECT_DEATH(MultiHeadAttentionBackward(query, keys, Tensor(), params, {2, false}, out, &ws,
                                          nullptr, nullptr, &grads),
               "multi_head_attention_backward: grads.wo must have shape \\[4, 4\\]");
  MultiHeadAttentionWorkspace self = MultiHeadAttentionWorkspace::AllocateSelf(1, 3, 2, 2, 2);
  Tensor other = Tensor::Zeros({1, 3, 4}), out3 = Tensor::Zeros({1, 3, 4});
  EXPECT_DEATH(MultiHeadAttentionForward(keys, other, Tensor(), params, {2, false}, &self, &out3),
               "multi_head_attention_forward: requires a self-attention workspace with query and "
               "keys one tensor");
}

// ---------------------------------------------------------------------------------------------
// Additive attention.

struct AdditiveCase {
  int64_t b, t, dq, dk, a;
  MaskKind mask;
};

class AdditiveAttentionGradTest : public ::testing::TestWithParam<AdditiveCase> {};

TEST_P(AdditiveAttentionGradTest, MatchesFiniteDifferences) {
  const AdditiveCase c = GetParam();
  std::mt19937 rng(c.b * 1000 + c.t * 100 + c.dq * 10 + c.a);
  Tensor q = RandomTensor({c.b, c.dq}, &rng), k = RandomTensor({c.b, c.t, c.dk}, &rng);
  const Tensor mask = MakeMask(c.mask, c.b, c.t, &rng);
  AdditiveAttentionParams params{RandomTensor({c.dq, c.a}, &rng), RandomTensor({c.dk, c.a}, &rng),
                                 RandomTensor({c.a}, &rng), RandomTensor({c.a}, &rng, -2, 2)};
  AdditiveAttentionWorkspace ws = AdditiveAttentionWorkspace::Allocate(c.b, c.t, c.a);
  Tensor weights = Tensor::Empty({c.b, c.t});
  auto forward = [&] {
    Tensor pooled = Tensor::Empty({c.b, c.dk});
    AdditiveAttentionForward(q, k, mask, params, &ws, &weights, &pooled);
    return std::vector<Tensor>{weights.Clone(), pooled};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    AdditiveAttentionParams grads{(*d)[2], (*d)[3], (*d)[4], (*d)[5]};
    AdditiveAttentionBackward(q, k, mask, params, weights, dy[0], dy[1], &ws, &(*d)[0], &(*d)[1],
                              &grads);
  };
  EXPECT_TRUE(GradientsMatch({{"q", &q},
                              {"k", &k},
                              {"wq", &params.wq},
                              {"wk", &params.wk},
                              {"b", &params.b},
                              {"v", &params.v}},
                             forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AdditiveAttentionGradTest,
                         ::testing::Values(AdditiveCase{1, 1, 1, 1, 1, MaskKind::kNone},
                                           AdditiveCase{3, 5, 4, 3, 6,
                                                        MaskKind::kPrefixWithEmptyRow},
                                           AdditiveCase{2, 7, 3, 5, 2, MaskKind::kPrefix},
                                           AdditiveCase{4, 3, 2, 2, 3, MaskKind::kNone},
                                           AdditiveCase{1, 1, 2, 3, 4, MaskKind::kPrefix}));

TEST(AdditiveAttentionTest, HandComputedForward) {
  AdditiveAttentionParams params{Identity(2), Tensor::FromVector({2, 2}, {1, 0.5f, 0, -1}),
                                 Tensor::FromVector({2}, {0.1f, -0.1f}),
                                 Tensor::FromVector({2}, {3, -2})};
  Tensor q = Tensor::FromVector({2, 2}, {1, -1, 0.5f, 0.5f});
  Tensor k = Tensor::FromVector({2, 3, 2}, {1, 2, 0, 1, 3, 3, 1, -1, 2, 2, 5, 5});
  Tensor mask = Tensor::FromVector({2, 3}, {1, 1, 1, 1, 0, 0});
  AdditiveAttentionWorkspace ws = AdditiveAttentionWorkspace::Allocate(2, 3, 2);
  Tensor weights = Tensor::Empty({2, 3}), pooled = Tensor::Empty({2, 2});
  AdditiveAttentionForward(q, k, mask, params, &ws, &weights, &pooled);
  EXPECT_TRUE(AllClose(
      weights, Tensor::FromVector({2, 3}, {0.37459206f, 0.21676805f, 0.40863989f, 1, 0, 0})));
  EXPECT_TRUE(AllClose(pooled, Tensor::FromVector({2, 2}, {1.60051173f, 2.19187184f, 1, -1})));
}

TEST(AdditiveAttentionTest, FullyMaskedRowGivesZerosAndZeroGradients) {
  std::mt19937 rng(9);
  AdditiveAttentionParams params{RandomTensor({3, 4}, &rng), RandomTensor({2, 4}, &rng),
                                 RandomTensor({4}, &rng), RandomTensor({4}, &rng)};
  Tensor q = RandomTensor({2, 3}, &rng), k = RandomTensor({2, 5, 2}, &rng);
  Tensor mask = Tensor::FromVector({2, 5}, {0, 0, 0, 0, 0, 1, 1, 1, 0, 0});
  AdditiveAttentionWorkspace ws = AdditiveAttentionWorkspace::Allocate(2, 5, 4);
  Tensor weights = Tensor::Empty({2, 5}), pooled = Tensor::Empty({2, 2});
  AdditiveAttentionForward(q, k, mask, params, &ws, &weights, &pooled);
  EXPECT_TRUE(AllFinite(weights) && AllFinite(pooled));
  EXPECT_TRUE(ZeroRange(weights, 0, 5));
  EXPECT_TRUE(ZeroRange(pooled, 0, 2));
  Tensor dq = Tensor::Zeros(q.shape()), dk = Tensor::Zeros(k.shape());
  AdditiveAttentionBackward(q, k, mask, params, weights, RandomTensor({2, 5}, &rng),
                            RandomTensor({2, 2}, &rng), &ws, &dq, &dk, nullptr);
  EXPECT_TRUE(AllFinite(dq) && AllFinite(dk));
  EXPECT_TRUE(ZeroRange(dq, 0, 3));
  EXPECT_TRUE(ZeroRange(dk, 0, 10));
}

TEST(AdditiveAttentionDeathTest, BadShapesNameOpAndShapes) {
  const AdditiveAttentionParams params = AdditiveAttentionParams::Zeros(3, 2, 4);
  Tensor q = Tensor::Zeros({2, 3}), k = Tensor::Zeros({2, 5, 2});
  AdditiveAttentionWorkspace ws = AdditiveAttentionWorkspace::Allocate(2, 5, 4);
  Tensor weights = Tensor::Zeros({2, 5}), pooled = Tensor::Zeros({2, 2});
  EXPECT_DEATH(
      AdditiveAttentionForward(q, k, Tensor::Zeros({2, 4}), params, &ws, &weights, &pooled),
      "additive_attention_forward: mask dim 1 is 4, expected T=5 .*k=\\[2, 5, 2\\] "
      "mask=\\[2, 4\\]");
  EXPECT_DEATH(
      AdditiveAttentionForward(Tensor::Zeros({2, 4}), k, Tensor(), params, &ws, &weights, &pooled),
      "additive_attention_forward: wq dim 0 is 3, expected Dq=4");
  EXPECT_DEATH(AdditiveAttentionBackward(q, k, Tensor(), params, weights, Tensor::Zeros({2, 4}),
                                         pooled, &ws, nullptr, nullptr, nullptr),
               "additive_attention_backward: d_weights must have shape \\[2, 5\\]");
}

}  // namespace
}  // namespace attnps
