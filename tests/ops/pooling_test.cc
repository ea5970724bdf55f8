#include "ops/pooling.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/ops/gradcheck.h"

namespace attnps {
namespace {

using testing::AllClose;
using testing::GradientsMatch;
using testing::RandomTensor;

enum class Pool { kSum, kMean };

struct PoolCase {
  int64_t b, t, d;
  Pool pool;
};

class MaskedPoolGradTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaskedPoolGradTest, MatchesFiniteDifferences) {
  const PoolCase c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.b * 100 + c.t * 10 + c.d));
  Tensor x = RandomTensor({c.b, c.t, c.d}, &rng);
  Tensor mask = testing::RandomPrefixMask(c.b, c.t, &rng, 1);
  if (c.b > 1) {
    for (int64_t t = 0; t < c.t; ++t) mask[t] = 0.0f;  // row 0 fully masked
  }
  auto forward = [&] {
    Tensor y = Tensor::Empty({c.b, c.d});
    if (c.pool == Pool::kSum) {
      MaskedSumPoolForward(x, mask, &y);
    } else {
      MaskedMeanPoolForward(x, mask, &y);
    }
    return std::vector<Tensor>{y};
  };
  auto backward = [&](const std::vector<Tensor>& dy, std::vector<Tensor>* d) {
    if (c.pool == Pool::kSum) {
      MaskedSumPoolBackward(mask, dy[0], &(*d)[0]);
    } else {
      MaskedMeanPoolBackward(mask, dy[0], &(*d)[0]);
    }
  };
  EXPECT_TRUE(GradientsMatch({{"x", &x}}, forward, backward));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MaskedPoolGradTest,
    ::testing::Values(PoolCase{3, 5, 4, Pool::kSum}, PoolCase{1, 1, 1, Pool::kSum},
                      PoolCase{4, 1, 3, Pool::kSum}, PoolCase{5, 7, 2, Pool::kSum},
                      PoolCase{3, 5, 4, Pool::kMean}, PoolCase{1, 1, 1, Pool::kMean},
                      PoolCase{4, 1, 3, Pool::kMean}, PoolCase{5, 7, 2, Pool::kMean}));

// x [3, 3, 2]; row 0 keeps positions 0 and 1, row 1 is fully masked, row 2 keeps all three.
Tensor ExampleX() {
  return Tensor::FromVector({3, 3, 2},
                            {1, 2, 3, 4, 5, 6, -1, 0.5f, 2, 2, 7, -3, 1, 1, 2, 2, 6, -3});
}
Tensor ExampleMask() { return Tensor::FromVector({3, 3}, {1, 1, 0, 0, 0, 0, 1, 1, 1}); }

TEST(MaskedSumPoolTest, HandComputedForward) {
  Tensor y = Tensor::Filled({3, 2}, 99.0f);
  MaskedSumPoolForward(ExampleX(), ExampleMask(), &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({3, 2}, {4, 6, 0, 0, 9, 0})));
}

TEST(MaskedMeanPoolTest, HandComputedForward) {
  Tensor y = Tensor::Filled({3, 2}, 99.0f);
  MaskedMeanPoolForward(ExampleX(), ExampleMask(), &y);
  EXPECT_TRUE(AllClose(y, Tensor::FromVector({3, 2}, {2, 3, 0, 0, 3, 0})));
}

TEST(MaskedMeanPoolTest, HandComputedBackward) {
  Tensor dy = Tensor::FromVector({3, 2}, {2, -4, 5, 5, 3, 6});
  Tensor dx = Tensor::Filled({3, 3, 2}, 1.0f);
  MaskedMeanPoolBackward(ExampleMask(), dy, &dx);
  // Row 0: dy / 2 at the two valid positions; row 1: nothing; row 2: dy / 3 everywhere (+ 1).
  EXPECT_TRUE(AllClose(
      dx, Tensor::FromVector({3, 3, 2}, {2, -1, 2, -1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 2, 3, 2, 3})));
}

TEST(MaskedPoolDeathTest, MismatchedMaskNamesOpAndShapes) {
  Tensor x = Tensor::Zeros({2, 5, 3}), y = Tensor::Zeros({2, 3});
  EXPECT_DEATH(MaskedSumPoolForward(x, Tensor::Zeros({2, 4}), &y),
               "masked_sum_pool_forward: mask dim 1 is 4, expected T=5 .*x=\\[2, 5, 3\\]");
  EXPECT_DEATH(MaskedMeanPoolForward(x, Tensor::Zeros({2, 5}), &x),
               "masked_mean_pool_forward: y has rank 3");
  Tensor dx = Tensor::Zeros({2, 5, 4});
  EXPECT_DEATH(MaskedMeanPoolBackward(Tensor::Zeros({2, 5}), y, &dx),
               "masked_mean_pool_backward: dx dim 2 is 4, expected D=3");
  EXPECT_DEATH(MaskedSumPoolBackward(Tensor::Zeros({2, 5}), y, &dx),
               "masked_sum_pool_backward: dx dim 2 is 4, expected D=3");
}

}  // namespace
}  // namespace attnps
