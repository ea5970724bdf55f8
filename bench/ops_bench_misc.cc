// Benchmarks of the losses, the interaction blocks (SENet, AFM) and the dense Adam step.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "ops/interaction.h"
#include "ops/loss.h"
#include "ops/optimizer.h"

namespace attnps::bench {
namespace {

void BM_BceWithLogitsForwardBackward(benchmark::State& state) {
  Tensor x = Uniform({kB}, 1, -3.0f, 3.0f), w = Uniform({kB}, 2, 0.5f, 1.5f);
  Tensor y = Tensor::Empty({kB});
  for (int64_t i = 0; i < kB; ++i) y[i] = static_cast<float>(i % 2);
  Tensor g = Tensor::Zeros({kB});
  for (auto _ : state) {
    benchmark::DoNotOptimize(BceWithLogitsForward(x, y, w));
    BceWithLogitsBackward(x, y, w, 1.0f, &g);
    benchmark::DoNotOptimize(g.data());
  }
  SetFlops(state, 30.0 * kB);  // exp, log1p and a few arithmetic ops per sample, both passes
}
BENCHMARK(BM_BceWithLogitsForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SampledSoftmaxForwardBackward(benchmark::State& state) {
  constexpr int64_t kDim = 64, kS = 1000;
  Tensor u = Uniform({kB, kDim}, 1), pos = Uniform({kB, kDim}, 2), neg = Uniform({kS, kDim}, 3);
  Tensor lq_pos = Uniform({kB}, 4, -10.0f, -5.0f), lq_neg = Uniform({kS}, 5, -10.0f, -5.0f);
  SampledSoftmaxWorkspace ws = SampledSoftmaxWorkspace::Allocate(kB, kS);
  Tensor du = Tensor::Zeros({kB, kDim}), dpos = Tensor::Zeros({kB, kDim});
  Tensor dneg = Tensor::Zeros({kS, kDim});
  for (auto _ : state) {
    benchmark::DoNotOptimize(SampledSoftmaxForward(u, pos, neg, lq_pos, lq_neg, {}, &ws));
    SampledSoftmaxBackward(u, pos, neg, lq_pos, lq_neg, 1.0f, &ws, &du, &dpos, &dneg);
    benchmark::DoNotOptimize(dneg.data());
  }
  // Three [B, D] x [D, S]-sized GEMMs (forward logits, du, dneg), softmax ~ 20 per logit.
  const double gemm = 2.0 * kB * kDim * kS;
  SetFlops(state, 3.0 * gemm + 20.0 * kB * (kS + 1) + 8.0 * kB * kDim);
}
BENCHMARK(BM_SampledSoftmaxForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_DienAuxLossForwardBackward(benchmark::State& state) {
  Tensor h = Uniform({kB, kT, kD}, 1), e_pos = Uniform({kB, kT, kD}, 2);
  Tensor e_neg = Uniform({kB, kT, kD}, 3), mask = PrefixMask(kB, kT);
  Tensor dh = Tensor::Zeros({kB, kT, kD}), de_pos = Tensor::Zeros({kB, kT, kD});
  Tensor de_neg = Tensor::Zeros({kB, kT, kD});
  for (auto _ : state) {
    benchmark::DoNotOptimize(DienAuxLossForward(h, e_pos, e_neg, mask));
    DienAuxLossBackward(h, e_pos, e_neg, mask, 1.0f, &dh, &de_pos, &de_neg);
    benchmark::DoNotOptimize(dh.data());
  }
  // Counted over every position (the mask skips about half): two dots forward, two dots and
  // three axpys (two for dh) backward.
  SetFlops(state, static_cast<double>(kB) * kT * (4.0 * kD + 4.0 * kD + 8.0 * kD));
}
BENCHMARK(BM_DienAuxLossForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SenetForwardBackward(benchmark::State& state) {
  constexpr int64_t kF = 8, kDim = 18, kRatio = 3;
  const int64_t r = SenetHiddenSize(kF, kRatio);
  Tensor e = Uniform({kB, kF, kDim}, 1);
  SenetParams p{Uniform({kF, r}, 2, -0.3f, 0.3f), Uniform({r}, 3, 0.0f, 0.5f),
                Uniform({r, kF}, 4, -0.3f, 0.3f), Uniform({kF}, 5, 0.0f, 0.5f)};
  SenetParams grads = SenetParams::Zeros(kF, r);
  SenetWorkspace ws = SenetWorkspace::Allocate(kB, kF, r);
  Tensor out = Tensor::Empty({kB, kF, kDim}), dout = Uniform({kB, kF, kDim}, 6);
  Tensor de = Tensor::Zeros({kB, kF, kDim});
  for (auto _ : state) {
    SenetForward(e, p, &ws, &out);
    SenetBackward(e, p, dout, &ws, &de, &grads);
    benchmark::DoNotOptimize(de.data());
  }
  // Two small GEMMs forward, twice that backward; mean, scale, dot and de ~ 7 per element.
  const double gemm = 2.0 * kB * (kF * r + r * kF);
  SetFlops(state, 3.0 * gemm + 7.0 * kB * kF * kDim);
}
BENCHMARK(BM_SenetForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AfmForwardBackward(benchmark::State& state) {
  constexpr int64_t kF = 8, kDim = 18, kA = 16;
  constexpr int64_t kP = kF * (kF - 1) / 2;
  Tensor v = Uniform({kB, kF, kDim}, 1);
  AfmParams p{Uniform({kDim, kA}, 2, -0.3f, 0.3f), Uniform({kA}, 3), Uniform({kA}, 4)};
  AfmParams grads = AfmParams::Zeros(kDim, kA);
  AfmWorkspace ws = AfmWorkspace::Allocate(kB, kF, kDim, kA);
  Tensor out = Tensor::Empty({kB, kDim}), dout = Uniform({kB, kDim}, 5);
  Tensor dv = Tensor::Zeros({kB, kF, kDim});
  for (auto _ : state) {
    AfmForward(v, p, &ws, &out);
    AfmBackward(v, p, dout, &ws, &dv, &grads);
    benchmark::DoNotOptimize(dv.data());
  }
  // [B*P, d] x [d, A] forward, twice backward; scores and dh ~ 4 per hidden unit; pairs, pooling,
  // their gradients ~ 10 per pair element.
  const double bp = static_cast<double>(kB) * kP;
  SetFlops(state, 3.0 * 2.0 * bp * kDim * kA + 6.0 * bp * kA + 10.0 * bp * kDim);
}
BENCHMARK(BM_AfmForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AdamStep(benchmark::State& state) {
  constexpr int64_t kP = 1 << 20;
  Tensor params = Uniform({kP}, 1), grads = Uniform({kP}, 2, -1e-3f, 1e-3f);
  std::unique_ptr<DenseOptimizer> opt = MakeDenseOptimizer({}, kP);
  for (auto _ : state) {
    opt->Step(grads, &params);
    benchmark::DoNotOptimize(params.data());
  }
  SetFlops(state, 12.0 * kP);  // moments, sqrt, divide and update per parameter
}
BENCHMARK(BM_AdamStep)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace attnps::bench
