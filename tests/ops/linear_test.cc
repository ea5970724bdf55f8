#include "ops/linear.h"

#include <gtest/gtest.h>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::GradientsMatch;
using testing::RandomTensor;

struct LinearCase {
  int64_t n, i, o;
  bool bias;
};

class LinearGradTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearGradTest, MatchesFiniteDifferences) {
  const LinearCase c = GetParam();
  std::mt19937 rng(c.n * 100 + c.i * 10 + c.o);
  Tensor x = RandomTensor({c.n, c.i}, &rng);
  Tensor w = RandomTensor({c.i, c.o}, &rng);
  Tensor b = c.bias ? RandomTensor({c.o}, &rng) : Tensor();
  std::vector<testing::NamedInput> inputs = {{"x", &x}, {"w", &w}};
  if (c.bias) inputs.push_back({"b", &b});
  auto forward = [&] {
    Tensor y = Tensor::Empty({c.n, c.o});
    LinearForward(x, w, b, &y);
    return std::vector<Tensor>{y};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    LinearBackward(x, w, dy[0], &(*d)[0], &(*d)[1], c.bias ? &(*d)[2] : nullptr);
  };
  EXPECT_TRUE(GradientsMatch(inputs, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearGradTest,
                         ::testing::Values(LinearCase{1, 1, 1, true}, LinearCase{3, 5, 7, true},
                                           LinearCase{17, 13, 1, false},
                                           LinearCase{1, 9, 4, true}));

TEST(LinearTest, HandComputedForward) {
  Tensor x = Tensor::FromVector({2, 2}, {1, 2, 3, 4});
  Tensor w = Tensor::FromVector({2, 3}, {1, 0, -1, 2, 1, 0});
  Tensor b = Tensor::FromVector({3}, {0.5f, 0, 0});
  Tensor y = Tensor::Empty({2, 3});
  LinearForward(x, w, b, &y);
  EXPECT_TRUE(testing::AllClose(y, Tensor::FromVector({2, 3}, {5.5f, 2, -1, 11.5f, 4, -3})));
}

TEST(LinearTest, BackwardAccumulatesIntoGradients) {
  Tensor x = Tensor::FromVector({1, 1}, {2});
  Tensor w = Tensor::FromVector({1, 1}, {3});
  Tensor dy = Tensor::FromVector({1, 1}, {1});
  Tensor dw = Tensor::Filled({1, 1}, 10);
  LinearBackward(x, w, dy, nullptr, &dw, nullptr);
  EXPECT_FLOAT_EQ(dw[0], 12.0f);
}

TEST(LinearDeathTest, MismatchedInnerDimensionNamesOpAndShapes) {
  Tensor x = Tensor::Zeros({4, 36});
  Tensor w = Tensor::Zeros({37, 8});
  Tensor y = Tensor::Zeros({4, 8});
  EXPECT_DEATH(LinearForward(x, w, Tensor(), &y),
               "linear_forward: w dim 0 is 37, expected I=36 .*x=\\[4, 36\\] w=\\[37, 8\\]");
  Tensor dy = Tensor::Zeros({4, 9});
  EXPECT_DEATH(LinearBackward(x, Tensor::Zeros({36, 8}), dy, nullptr, nullptr, nullptr),
               "linear_backward: dy dim 1 is 9, expected O=8");
  EXPECT_DEATH(LinearForward(Tensor::Zeros({36}), w, Tensor(), &y), "linear_forward: x has rank 1");
}

struct MatmulCase {
  bool ta, tb;
};

class BatchedMatmulGradTest : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(BatchedMatmulGradTest, MatchesFiniteDifferences) {
  const auto [ta, tb] = GetParam();
  const int64_t g = 3, m = 4, k = 5, p = 2;
  std::mt19937 rng(ta * 2 + tb);
  Tensor a = ta ? RandomTensor({g, k, m}, &rng) : RandomTensor({g, m, k}, &rng);
  Tensor b = tb ? RandomTensor({g, p, k}, &rng) : RandomTensor({g, k, p}, &rng);
  auto forward = [&] {
    Tensor c = Tensor::Empty({g, m, p});
    BatchedMatmulForward(a, ta, b, tb, &c);
    return std::vector<Tensor>{c};
  };
  auto backward = [&](const std::vector<Tensor>& dc, std::vector<Tensor>* d) {
    BatchedMatmulBackward(a, ta, b, tb, dc[0], &(*d)[0], &(*d)[1]);
  };
  EXPECT_TRUE(GradientsMatch({{"a", &a}, {"b", &b}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(Transposes, BatchedMatmulGradTest,
                         ::testing::Values(MatmulCase{false, false}, MatmulCase{true, false},
                                           MatmulCase{false, true}, MatmulCase{true, true}));

TEST(BatchedMatmulDeathTest, MismatchedBatchNamesShapes) {
  Tensor a = Tensor::Zeros({2, 3, 4});
  Tensor b = Tensor::Zeros({3, 4, 5});
  Tensor c = Tensor::Zeros({2, 3, 5});
  EXPECT_DEATH(BatchedMatmulForward(a, false, b, false, &c),
               "batched_matmul_forward: b dim 0 is 3, expected G=2");
}

// The checker itself must fail on a wrong gradient, or no op test could fail.
TEST(GradCheckTest, RejectsAWrongBackward) {
  std::mt19937 rng(1);
  Tensor x = RandomTensor({3, 4}, &rng);
  Tensor w = RandomTensor({4, 2}, &rng);
  auto forward = [&] {
    Tensor y = Tensor::Empty({3, 2});
    LinearForward(x, w, Tensor(), &y);
    return std::vector<Tensor>{y};
  };
  auto wrong_backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    LinearBackward(x, w, dy[0], &(*d)[0], &(*d)[1], nullptr);
    (*d)[1][5] += 0.1f;
  };
  ::testing::AssertionResult r = GradientsMatch({{"x", &x}, {"w", &w}}, forward, wrong_backward);
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("input 'w' [4, 2] at flat index 5"), std::string::npos)
      << r.message();
}

TEST(CopyColumnsTest, CopiesAndAccumulatesAColumnBlock) {
  Tensor src = Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor dst = Tensor::Filled({2, 4}, 10.0f);
  CopyColumns(src, 1, &dst, 2, 2, false);
  EXPECT_EQ(dst.ToVector(), (std::vector<float>{10, 10, 2, 3, 10, 10, 5, 6}));
  CopyColumns(src, 0, &dst, 0, 1, true);
  EXPECT_EQ(dst.ToVector(), (std::vector<float>{11, 10, 2, 3, 14, 10, 5, 6}));
  EXPECT_DEATH(CopyColumns(src, 2, &dst, 0, 2, false), "copy_columns: .*src columns in range");
}

}  // namespace
}  // namespace attnps
