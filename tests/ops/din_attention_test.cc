#include "ops/din_attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ops/linear.h"
#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::GradientsMatch;
using testing::RandomTensor;

struct DinCase {
  int64_t b, t, d, h1, h2;
  AttentionNormalization norm;
  DinActivation act;
  bool fully_masked_row;
};

DinAttentionParams RandomParams(int64_t d, int64_t h1, int64_t h2, std::mt19937* rng) {
  return {RandomTensor({4 * d, h1}, rng), RandomTensor({h1}, rng),    RandomTensor({h1, h2}, rng),
          RandomTensor({h2}, rng),        RandomTensor({h2, 1}, rng), RandomTensor({1}, rng)};
}

class DinAttentionGradTest : public ::testing::TestWithParam<DinCase> {};

TEST_P(DinAttentionGradTest, MatchesFiniteDifferences) {
  const DinCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 1000 + c.t * 10 + c.d));
  Tensor q = RandomTensor({c.b, c.d}, &rng);
  Tensor k = RandomTensor({c.b, c.t, c.d}, &rng);
  Tensor mask = testing::RandomPrefixMask(c.b, c.t, &rng, 1);
  if (c.fully_masked_row) testing::MaskOutRow(&mask, 0);
  DinAttentionParams p = RandomParams(c.d, c.h1, c.h2, &rng);
  const DinAttentionOptions options{c.norm, c.act};
  DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(c.b, c.t, c.d, c.h1, c.h2);
  Tensor weights = Tensor::Empty({c.b, c.t});
  auto forward = [&] {
    Tensor pooled = Tensor::Empty({c.b, c.d});
    DinAttentionForward(q, k, mask, p, options, &ws, &weights, &pooled);
    return std::vector<Tensor>{weights.Clone(), pooled};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* g) {
    DinAttentionParams grads{(*g)[2], (*g)[3], (*g)[4], (*g)[5], (*g)[6], (*g)[7]};
    DinAttentionBackward(q, k, mask, p, options, weights, dy[0], dy[1], &ws, &(*g)[0], &(*g)[1],
                         &grads);
  };
  testing::GradCheckOptions opts;
  if (c.act == DinActivation::kRelu) opts.step = 2e-3;  // stay clear of the kinks
  EXPECT_TRUE(GradientsMatch({{"q", &q},
                              {"k", &k},
                              {"w1", &p.w1},
                              {"b1", &p.b1},
                              {"w2", &p.w2},
                              {"b2", &p.b2},
                              {"w3", &p.w3},
                              {"b3", &p.b3}},
                             forward, backward, opts));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DinAttentionGradTest,
    ::testing::Values(
        DinCase{3, 5, 4, 6, 3, AttentionNormalization::kNone, DinActivation::kSigmoid, false},
        DinCase{3, 5, 4, 6, 3, AttentionNormalization::kSoftmax, DinActivation::kSigmoid, true},
        DinCase{1, 1, 3, 5, 2, AttentionNormalization::kNone, DinActivation::kSigmoid, false},
        DinCase{1, 1, 3, 5, 2, AttentionNormalization::kSoftmax, DinActivation::kSigmoid, false},
        DinCase{2, 7, 5, 7, 3, AttentionNormalization::kNone, DinActivation::kRelu, true},
        DinCase{2, 7, 5, 7, 3, AttentionNormalization::kSoftmax, DinActivation::kRelu, false},
        // several blocks of samples (blocks hold about 256 rows)
        DinCase{13, 40, 3, 4, 2, AttentionNormalization::kSoftmax, DinActivation::kSigmoid, true}));

// Reference: the unit exactly as the paper writes it, [q, k, q-k, q*k] through an unfolded MLP.
Tensor NaiveScores(const Tensor& q, const Tensor& k, const DinAttentionParams& p) {
  const int64_t b = k.dim(0), t = k.dim(1), d = k.dim(2);
  Tensor in = Tensor::Empty({b * t, 4 * d});
  for (int64_t r = 0; r < b * t; ++r)
    for (int64_t j = 0; j < d; ++j) {
      const float qv = q[(r / t) * d + j], kv = k[r * d + j];
      in[r * 4 * d + j] = qv;
      in[r * 4 * d + d + j] = kv;
      in[r * 4 * d + 2 * d + j] = qv - kv;
      in[r * 4 * d + 3 * d + j] = qv * kv;
    }
  auto sigmoid_all = [](Tensor* x) {
    for (int64_t i = 0; i < x->numel(); ++i) (*x)[i] = 1.0f / (1.0f + std::exp(-(*x)[i]));
  };
  Tensor h1 = Tensor::Empty({b * t, p.w1.dim(1)});
  LinearForward(in, p.w1, p.b1, &h1);
  sigmoid_all(&h1);
  Tensor h2 = Tensor::Empty({b * t, p.w2.dim(1)});
  LinearForward(h1, p.w2, p.b2, &h2);
  sigmoid_all(&h2);
  Tensor s = Tensor::Empty({b * t, 1});
  LinearForward(h2, p.w3, p.b3, &s);
  return s.Reshaped({b, t});
}

TEST(DinAttentionTest, FoldedQueryTermsEqualThePaperForm) {
  std::mt19937 rng(3);
  const int64_t b = 4, t = 6, d = 5, h1 = 8, h2 = 4;
  Tensor q = RandomTensor({b, d}, &rng), k = RandomTensor({b, t, d}, &rng);
  Tensor mask = Tensor::Filled({b, t}, 1.0f);
  DinAttentionParams p = RandomParams(d, h1, h2, &rng);
  DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(b, t, d, h1, h2);
  Tensor weights = Tensor::Empty({b, t}), pooled = Tensor::Empty({b, d});
  DinAttentionForward(q, k, mask, p, {}, &ws, &weights, &pooled);
  EXPECT_TRUE(testing::AllClose(weights, NaiveScores(q, k, p), 1e-5f, 1e-4f));
}

// D = 1, H1 = H2 = 1: every number below is worked out by hand.
TEST(DinAttentionTest, HandComputedExample) {
  Tensor q = Tensor::FromVector({1, 1}, {1.0f});
  Tensor k = Tensor::FromVector({1, 2, 1}, {2.0f, 0.0f});
  Tensor mask = Tensor::FromVector({1, 2}, {1.0f, 1.0f});
  // z1 = q*1 + k*0 + (q-k)*0 + (q*k)*0 + 0 = 1 at both positions -> a1 = sigmoid(1) = 0.731059
  // a2 = sigmoid(0 * a1 + 0) = 0.5; score = 2 * 0.5 + 1 = 2 at both positions.
  DinAttentionParams p{Tensor::FromVector({4, 1}, {1, 0, 0, 0}), Tensor::FromVector({1}, {0}),
                       Tensor::FromVector({1, 1}, {0}),          Tensor::FromVector({1}, {0}),
                       Tensor::FromVector({1, 1}, {2}),          Tensor::FromVector({1}, {1})};
  DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(1, 2, 1, 1, 1);
  Tensor weights = Tensor::Empty({1, 2}), pooled = Tensor::Empty({1, 1});
  DinAttentionForward(q, k, mask, p, {AttentionNormalization::kNone, DinActivation::kSigmoid}, &ws,
                      &weights, &pooled);
  EXPECT_TRUE(testing::AllClose(weights, Tensor::FromVector({1, 2}, {2.0f, 2.0f})));
  EXPECT_TRUE(testing::AllClose(pooled, Tensor::FromVector({1, 1}, {4.0f})));  // 2*2 + 2*0
  DinAttentionForward(q, k, mask, p, {AttentionNormalization::kSoftmax, DinActivation::kSigmoid},
                      &ws, &weights, &pooled);
  EXPECT_TRUE(testing::AllClose(weights, Tensor::FromVector({1, 2}, {0.5f, 0.5f})));
  EXPECT_TRUE(testing::AllClose(pooled, Tensor::FromVector({1, 1}, {1.0f})));
  mask[1] = 0.0f;  // softmax over the single valid position
  DinAttentionForward(q, k, mask, p, {AttentionNormalization::kSoftmax, DinActivation::kSigmoid},
                      &ws, &weights, &pooled);
  EXPECT_TRUE(testing::AllClose(weights, Tensor::FromVector({1, 2}, {1.0f, 0.0f})));
}

TEST(DinAttentionTest, FullyMaskedRowGivesZerosNotNaN) {
  std::mt19937 rng(5);
  Tensor q = RandomTensor({2, 3}, &rng), k = RandomTensor({2, 4, 3}, &rng);
  Tensor mask = Tensor::Zeros({2, 4});
  DinAttentionParams p = RandomParams(3, 4, 2, &rng);
  DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(2, 4, 3, 4, 2);
  Tensor weights = Tensor::Empty({2, 4}), pooled = Tensor::Empty({2, 3});
  for (auto norm : {AttentionNormalization::kNone, AttentionNormalization::kSoftmax}) {
    DinAttentionForward(q, k, mask, p, {norm, DinActivation::kSigmoid}, &ws, &weights, &pooled);
    EXPECT_TRUE(testing::AllClose(weights, Tensor::Zeros({2, 4})));
    EXPECT_TRUE(testing::AllClose(pooled, Tensor::Zeros({2, 3})));
  }
}

TEST(DinAttentionDeathTest, FirstLayerMustHaveFourDRows) {
  const int64_t b = 2, t = 3, d = 4;
  Tensor q = Tensor::Zeros({b, d}), k = Tensor::Zeros({b, t, d}), mask = Tensor::Zeros({b, t});
  DinAttentionParams p = DinAttentionParams::Zeros(d, 5, 2);
  p.w1 = Tensor::Zeros({3 * d, 5});
  DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(b, t, d, 5, 2);
  Tensor weights = Tensor::Empty({b, t}), pooled = Tensor::Empty({b, d});
  EXPECT_DEATH(DinAttentionForward(q, k, mask, p, {}, &ws, &weights, &pooled),
               "din_attention_forward: requires w1 rows = 4 \\* D .*w1=\\[12, 5\\]");
  Tensor k_bad = Tensor::Zeros({b, t + 1, d});
  p.w1 = Tensor::Zeros({4 * d, 5});
  EXPECT_DEATH(DinAttentionForward(q, k_bad, mask, p, {}, &ws, &weights, &pooled),
               "din_attention_forward: mask dim 1 is 3, expected T=4 .*k=\\[2, 4, 4\\]");
}

}  // namespace
}  // namespace attnps
