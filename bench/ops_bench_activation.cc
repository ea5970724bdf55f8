// Forward + backward of the activation, normalization and pooling ops at DIN-sized shapes:
// elementwise ops, dropout and pooling on [kB, kT, kD] (the history tensor), LayerNorm on
// [kB * kT, kD], PReLU and Dice on the MLP's first hidden layer [128, 200].
// FLOP counts are per element; a FastSigmoid is counted as 24 (exp polynomial, scaling, add,
// divide), integer hashing (dropout) as 0.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "ops/activation.h"
#include "ops/norm.h"
#include "ops/pooling.h"

namespace attnps::bench {
namespace {

constexpr int64_t kMlpRows = 128, kMlpHidden = 200;
constexpr double kSigmoidFlops = 24.0;

void BM_ReluForwardBackward(benchmark::State& state) {
  Tensor x = Uniform({kB, kT, kD}, 1), dy = Uniform({kB, kT, kD}, 2);
  Tensor y = Tensor::Empty({kB, kT, kD}), dx = Tensor::Zeros({kB, kT, kD});
  for (auto _ : state) {
    ReluForward(x, &y);
    ReluBackward(y, dy, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  SetFlops(state, 3.0 * x.numel());  // compare; compare + add
}
BENCHMARK(BM_ReluForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SigmoidForwardBackward(benchmark::State& state) {
  Tensor x = Uniform({kB, kT, kD}, 1), dy = Uniform({kB, kT, kD}, 2);
  Tensor y = Tensor::Empty({kB, kT, kD}), dx = Tensor::Zeros({kB, kT, kD});
  for (auto _ : state) {
    SigmoidForward(x, &y);
    SigmoidBackward(y, dy, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  SetFlops(state, (kSigmoidFlops + 4.0) * x.numel());
}
BENCHMARK(BM_SigmoidForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_PreluForwardBackward(benchmark::State& state) {
  const int64_t n = kMlpRows, c = kMlpHidden;
  Tensor x = Uniform({n, c}, 1), alpha = Uniform({c}, 2, 0.0f, 0.3f), dy = Uniform({n, c}, 3);
  Tensor y = Tensor::Empty({n, c}), dx = Tensor::Zeros({n, c}), dalpha = Tensor::Zeros({c});
  for (auto _ : state) {
    PreluForward(x, alpha, &y);
    PreluBackward(x, alpha, dy, &dx, &dalpha);
    benchmark::DoNotOptimize(dalpha.data());
  }
  SetFlops(state, 8.0 * n * c);  // forward 2, dx 3, dalpha 3
}
BENCHMARK(BM_PreluForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_DiceForwardBackward(benchmark::State& state) {
  const int64_t n = kMlpRows, c = kMlpHidden;
  Tensor x = Uniform({n, c}, 1), alpha = Uniform({c}, 2, 0.0f, 0.3f), dy = Uniform({n, c}, 3);
  Tensor running_mean = Tensor::Zeros({c}), running_var = Tensor::Filled({c}, 1.0f);
  Tensor mean = Tensor::Empty({c}), rstd = Tensor::Empty({c});
  Tensor y = Tensor::Empty({n, c}), dx = Tensor::Zeros({n, c}), dalpha = Tensor::Zeros({c});
  for (auto _ : state) {
    DiceForward(x, alpha, Mode::kTraining, {}, &running_mean, &running_var, &y, &mean, &rstd);
    DiceBackward(x, alpha, Mode::kTraining, mean, rstd, dy, &dx, &dalpha);
    benchmark::DoNotOptimize(dalpha.data());
  }
  // Forward: statistics 4, output 6 + sigmoid. Backward pass 1: 14 + sigmoid; pass 2: 16 +
  // sigmoid (the gate is recomputed rather than stored).
  SetFlops(state, (40.0 + 3.0 * kSigmoidFlops) * n * c);
}
BENCHMARK(BM_DiceForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_LayerNormForwardBackward(benchmark::State& state) {
  const int64_t n = kB * kT, c = kD;
  Tensor x = Uniform({n, c}, 1), gamma = Uniform({c}, 2), beta = Uniform({c}, 3);
  Tensor dy = Uniform({n, c}, 4);
  Tensor y = Tensor::Empty({n, c}), mean = Tensor::Empty({n}), rstd = Tensor::Empty({n});
  Tensor dx = Tensor::Zeros({n, c}), dgamma = Tensor::Zeros({c}), dbeta = Tensor::Zeros({c});
  for (auto _ : state) {
    LayerNormForward(x, gamma, beta, kLayerNormEps, &y, &mean, &rstd);
    LayerNormBackward(x, gamma, mean, rstd, dy, &dx, &dgamma, &dbeta);
    benchmark::DoNotOptimize(dx.data());
  }
  SetFlops(state, 26.0 * n * c);  // forward 8; backward: dgamma/dbeta 5, row sums 6, dx 7
}
BENCHMARK(BM_LayerNormForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_DropoutForwardBackward(benchmark::State& state) {
  Tensor x = Uniform({kB, kT, kD}, 1), dy = Uniform({kB, kT, kD}, 2);
  Tensor mask = Tensor::Empty({kB, kT, kD}), y = Tensor::Empty({kB, kT, kD});
  Tensor dx = Tensor::Zeros({kB, kT, kD});
  uint64_t seed = 0;
  for (auto _ : state) {
    DropoutForward(x, 0.2f, ++seed, Mode::kTraining, &mask, &y);
    DropoutBackward(mask, dy, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  SetFlops(state, 3.0 * x.numel());  // y = x * mask; dx += dy * mask
}
BENCHMARK(BM_DropoutForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_MaskedSumPoolForwardBackward(benchmark::State& state) {
  Tensor x = Uniform({kB, kT, kD}, 1), mask = PrefixMask(kB, kT), dy = Uniform({kB, kD}, 2);
  Tensor y = Tensor::Empty({kB, kD}), dx = Tensor::Zeros({kB, kT, kD});
  for (auto _ : state) {
    MaskedSumPoolForward(x, mask, &y);
    MaskedSumPoolBackward(mask, dy, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  double valid = 0.0;
  for (int64_t i = 0; i < mask.numel(); ++i) valid += mask[i];
  SetFlops(state, 4.0 * valid * kD);  // multiply-add per valid element, forward and backward
}
BENCHMARK(BM_MaskedSumPoolForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace attnps::bench
