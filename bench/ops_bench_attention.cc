// Forward+backward benchmarks of the attention ops (ops/attention.h) at DIN-sized shapes.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "ops/attention.h"

namespace attnps::bench {
namespace {

constexpr int64_t kHeads = 2;
constexpr int64_t kAdditiveHidden = 36;
constexpr double kSoftmaxFlopsPerElement =
    10.0;  // forward ~5 (scale, max, exp, sum, mul), backward ~5

void BM_MaskedSoftmaxForwardBackward(benchmark::State& state) {
  Tensor x = Uniform({kB, kT}, 1, -3.0f, 3.0f), mask = PrefixMask(kB, kT);
  Tensor y = Tensor::Empty({kB, kT}), dy = Uniform({kB, kT}, 2), dx = Tensor::Zeros({kB, kT});
  for (auto _ : state) {
    MaskedSoftmaxForward(x, mask, 0.5f, &y);
    MaskedSoftmaxBackward(y, dy, 0.5f, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  SetFlops(state, kSoftmaxFlopsPerElement * kB * kT);
}
BENCHMARK(BM_MaskedSoftmaxForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Multi-head attention with D = Pk = Pv = Dout = kD and kHeads heads over T = kT keys.
void RunMultiHeadAttention(benchmark::State& state, int64_t tq, bool self) {
  Tensor keys = Uniform({kB, kT, kD}, 1);
  Tensor query = self ? keys : Uniform({kB, tq, kD}, 2);
  Tensor mask = PrefixMask(kB, kT);
  MultiHeadAttentionParams p{Uniform({kD, kD}, 3, -0.2f, 0.2f), Uniform({kD}, 4),
                             Uniform({kD, kD}, 5, -0.2f, 0.2f), Uniform({kD}, 6),
                             Uniform({kD, kD}, 7, -0.2f, 0.2f), Uniform({kD}, 8),
                             Uniform({kD, kD}, 9, -0.2f, 0.2f), Uniform({kD}, 10)};
  MultiHeadAttentionParams grads = MultiHeadAttentionParams::ZerosLike(p);
  const MultiHeadAttentionOptions options{kHeads, /*causal=*/false};
  MultiHeadAttentionWorkspace ws =
      MultiHeadAttentionWorkspace::Allocate(kB, tq, kT, kHeads, kD / kHeads, kD / kHeads);
  Tensor out = Tensor::Empty({kB, tq, kD}), d_out = Uniform({kB, tq, kD}, 11);
  Tensor d_query = Tensor::Zeros(query.shape()), d_keys = Tensor::Zeros(keys.shape());
  Tensor* d_query_ptr = self ? &d_keys : &d_query;
  for (auto _ : state) {
    MultiHeadAttentionForward(query, keys, mask, p, options, &ws, &out);
    MultiHeadAttentionBackward(query, keys, mask, p, options, d_out, &ws, d_query_ptr, &d_keys,
                               &grads);
    benchmark::DoNotOptimize(grads.wq.data());
  }
  // Forward GEMMs: 4 projections and the two attention products; backward does each twice.
  const double q_rows = kB * tq, k_rows = kB * kT;
  const double gemm = 2.0 * kD * kD * (2 * q_rows + 2 * k_rows) + 2.0 * 2 * q_rows * kT * kD;
  SetFlops(state, 3.0 * gemm + kSoftmaxFlopsPerElement * kHeads * q_rows * kT);
}

void BM_TargetAttentionForwardBackward(benchmark::State& state) {
  RunMultiHeadAttention(state, /*tq=*/1, /*self=*/false);
}
BENCHMARK(BM_TargetAttentionForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SelfAttentionForwardBackward(benchmark::State& state) {
  RunMultiHeadAttention(state, /*tq=*/kT, /*self=*/true);
}
BENCHMARK(BM_SelfAttentionForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AdditiveAttentionForwardBackward(benchmark::State& state) {
  constexpr int64_t a = kAdditiveHidden;
  Tensor q = Uniform({kB, kD}, 1), k = Uniform({kB, kT, kD}, 2), mask = PrefixMask(kB, kT);
  AdditiveAttentionParams p{Uniform({kD, a}, 3, -0.2f, 0.2f), Uniform({kD, a}, 4, -0.2f, 0.2f),
                            Uniform({a}, 5), Uniform({a}, 6)};
  AdditiveAttentionParams grads = AdditiveAttentionParams::Zeros(kD, kD, a);
  AdditiveAttentionWorkspace ws = AdditiveAttentionWorkspace::Allocate(kB, kT, a);
  Tensor weights = Tensor::Empty({kB, kT}), pooled = Tensor::Empty({kB, kD});
  Tensor d_pooled = Uniform({kB, kD}, 7), dq = Tensor::Zeros({kB, kD});
  Tensor dk = Tensor::Zeros({kB, kT, kD});
  for (auto _ : state) {
    AdditiveAttentionForward(q, k, mask, p, &ws, &weights, &pooled);
    AdditiveAttentionBackward(q, k, mask, p, weights, Tensor(), d_pooled, &ws, &dq, &dk, &grads);
    benchmark::DoNotOptimize(grads.wk.data());
  }
  // Forward GEMMs (q and k projections, pooling), each done twice more in backward; elementwise:
  // tanh + score ~4 and backward ~7 per hidden unit, plus the softmax.
  const double bt = kB * kT;
  const double gemm = 2.0 * kB * kD * a + 2.0 * bt * kD * a + 2.0 * bt * kD;
  SetFlops(state, 3.0 * gemm + 11.0 * bt * a + kSoftmaxFlopsPerElement * bt);
}
BENCHMARK(BM_AdditiveAttentionForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace attnps::bench
