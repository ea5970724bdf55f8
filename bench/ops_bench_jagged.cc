// Padded vs jagged DIN activation unit on a short-history batch: B = 128, T = 50, lengths drawn
// geometric (median 5, one sample of length 50), forward + backward. Both report the FLOPs of the
// valid positions only, so their GFLOP/s compare as their speeds do (the padded unit also computes
// the padding, which counts as no useful work). BM_DinFullHistoryJagged: the jagged unit on full
// histories (every sample T = 50 long, as MovieLens-100K's batches nearly are), the same count.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "bench/bench_util.h"
#include "ops/din_attention.h"
#include "ops/jagged.h"

namespace attnps::bench {
namespace {

constexpr int64_t kH1 = 80, kH2 = 40;

struct ShortHistoryBatch {
  std::vector<int64_t> offsets;  // [B + 1]
  Tensor mask;                   // [B, T]
  Tensor k_padded;               // [B, T, D]
  Tensor k;                      // [N, D]
  int64_t n() const { return offsets.back(); }
};

// Lengths 1 + Geometric(p = 0.13): median 5, mean about 7.7; clipped at T, the last sample is T.
// With full = true every sample is T long.
ShortHistoryBatch MakeShortHistoryBatch(bool full = false) {
  std::mt19937 rng(2024);
  std::geometric_distribution<int64_t> geo(0.13);
  ShortHistoryBatch s;
  s.offsets.assign(1, 0);
  s.mask = Tensor::Zeros({kB, kT});
  s.k_padded = Uniform({kB, kT, kD}, 2);
  for (int64_t b = 0; b < kB; ++b) {
    const int64_t len = full || b == kB - 1 ? kT : std::min<int64_t>(kT, 1 + geo(rng));
    for (int64_t i = 0; i < len; ++i) s.mask[b * kT + i] = 1.0f;
    s.offsets.push_back(s.offsets.back() + len);
  }
  s.k = Tensor::Empty({s.n(), kD});
  for (int64_t b = 0; b < kB; ++b)
    for (int64_t i = 0; i < s.offsets[b + 1] - s.offsets[b]; ++i)
      for (int64_t j = 0; j < kD; ++j)
        s.k[(s.offsets[b] + i) * kD + j] = s.k_padded[(b * kT + i) * kD + j];
  return s;
}

DinAttentionParams Params() {
  return {Uniform({4 * kD, kH1}, 3, -0.1f, 0.1f), Uniform({kH1}, 4),
          Uniform({kH1, kH2}, 5, -0.1f, 0.1f),    Uniform({kH2}, 6),
          Uniform({kH2, 1}, 7, -0.1f, 0.1f),      Uniform({1}, 8)};
}

// As BM_DinAttentionForwardBackward counts it, over `rows` valid positions.
double UnitFlops(double rows) {
  const double gemm = 2.0 * rows * (2 * kD * kH1 + kH1 * kH2 + kH2) + 2.0 * kB * kD * kH1;
  return 3.0 * gemm + 6.0 * rows * kD;
}

AttentionNormalization Norm(const benchmark::State& state) {
  return state.range(0) ? AttentionNormalization::kSoftmax : AttentionNormalization::kNone;
}

void BM_DinShortHistoryPadded(benchmark::State& state) {
  const ShortHistoryBatch s = MakeShortHistoryBatch();
  Tensor q = Uniform({kB, kD}, 1);
  const DinAttentionParams p = Params();
  DinAttentionParams grads = DinAttentionParams::Zeros(kD, kH1, kH2);
  DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(kB, kT, kD, kH1, kH2);
  Tensor weights = Tensor::Empty({kB, kT}), pooled = Tensor::Empty({kB, kD});
  Tensor d_pooled = Uniform({kB, kD}, 9), dq = Tensor::Zeros({kB, kD});
  Tensor dk = Tensor::Zeros({kB, kT, kD});
  const DinAttentionOptions options{Norm(state), DinActivation::kSigmoid};
  for (auto _ : state) {
    DinAttentionForward(q, s.k_padded, s.mask, p, options, &ws, &weights, &pooled);
    DinAttentionBackward(q, s.k_padded, s.mask, p, options, weights, Tensor(), d_pooled, &ws, &dq,
                         &dk, &grads);
    benchmark::DoNotOptimize(grads.w1.data());
  }
  SetFlops(state, UnitFlops(static_cast<double>(s.n())));
}
BENCHMARK(BM_DinShortHistoryPadded)
    ->ArgName("softmax")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void JaggedUnit(benchmark::State& state, bool full) {
  const ShortHistoryBatch s = MakeShortHistoryBatch(full);
  Tensor q = Uniform({kB, kD}, 1);
  const DinAttentionParams p = Params();
  DinAttentionParams grads = DinAttentionParams::Zeros(kD, kH1, kH2);
  JaggedDinAttentionWorkspace ws = JaggedDinAttentionWorkspace::Allocate(kB * kT, kB, kD, kH1, kH2);
  Tensor weights = Tensor::Empty({s.n()}), pooled = Tensor::Empty({kB, kD});
  Tensor d_pooled = Uniform({kB, kD}, 9), dq = Tensor::Zeros({kB, kD});
  Tensor dk = Tensor::Zeros({s.n(), kD});
  const DinAttentionOptions options{Norm(state), DinActivation::kSigmoid};
  for (auto _ : state) {
    JaggedDinAttentionForward(q, s.k, s.offsets, p, options, &ws, &weights, &pooled);
    JaggedDinAttentionBackward(q, s.k, s.offsets, p, options, weights, Tensor(), d_pooled, &ws, &dq,
                               &dk, &grads);
    benchmark::DoNotOptimize(grads.w1.data());
  }
  SetFlops(state, UnitFlops(static_cast<double>(s.n())));
}

void BM_DinShortHistoryJagged(benchmark::State& state) { JaggedUnit(state, false); }
BENCHMARK(BM_DinShortHistoryJagged)
    ->ArgName("softmax")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_DinFullHistoryJagged(benchmark::State& state) { JaggedUnit(state, true); }
BENCHMARK(BM_DinFullHistoryJagged)
    ->ArgName("softmax")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace attnps::bench
