// Benchmarks of the sequence ops: GRU / AUGRU (DIEN) and the ComiRec multi-interest extractors,
// forward + backward at the DIN-sized shape of bench_util.h.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "ops/multi_interest.h"
#include "ops/rnn.h"

namespace attnps::bench {
namespace {

constexpr int64_t kInterests = 4;

// Floating-point work of one GRU forward + backward with I = H = kD.
double GruFlops() {
  const double bt = kB * kT, in = kD, h = kD;
  // x Wx and the per-step h Wh forward; dx, dWx, dh_{t-1}, dWh backward: 3x the forward GEMMs.
  const double gemm = 3.0 * 2.0 * bt * 3.0 * h * (in + h);
  // Cell: two sigmoids and a tanh (~15 flops each with FastExp) plus ~10 forward, ~25 backward.
  return gemm + 80.0 * bt * h;
}

void RunGru(benchmark::State& state, bool augru) {
  Tensor x = Uniform({kB, kT, kD}, 1), mask = PrefixMask(kB, kT), h0 = Uniform({kB, kD}, 2);
  Tensor att = Uniform({kB, kT}, 3, 0.0f, 1.0f);
  GruParams p{Uniform({kD, 3 * kD}, 4, -0.2f, 0.2f), Uniform({kD, 3 * kD}, 5, -0.2f, 0.2f),
              Uniform({3 * kD}, 6, -0.1f, 0.1f)};
  GruParams grads = GruParams::Zeros(kD, kD);
  GruWorkspace ws = GruWorkspace::Allocate(kB, kT, kD, kD);
  Tensor states = Tensor::Empty({kB, kT, kD}), d_states = Uniform({kB, kT, kD}, 7);
  Tensor dx = Tensor::Zeros({kB, kT, kD}), dh0 = Tensor::Zeros({kB, kD});
  Tensor d_att = Tensor::Zeros({kB, kT});
  for (auto _ : state) {
    if (augru) {
      AugruForward(x, mask, att, h0, p, &ws, &states);
      AugruBackward(x, mask, att, h0, p, d_states, &ws, &dx, &dh0, &d_att, &grads);
    } else {
      GruForward(x, mask, h0, p, &ws, &states);
      GruBackward(x, mask, h0, p, d_states, &ws, &dx, &dh0, &grads);
    }
    benchmark::DoNotOptimize(grads.wh.data());
  }
  SetFlops(state, GruFlops() + (augru ? 4.0 * kB * kT * kD : 0.0));
}

void BM_GruForwardBackward(benchmark::State& state) { RunGru(state, false); }
BENCHMARK(BM_GruForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AugruForwardBackward(benchmark::State& state) { RunGru(state, true); }
BENCHMARK(BM_AugruForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_ComiRecSaForwardBackward(benchmark::State& state) {
  const int64_t da = 4 * kD, k = kInterests;
  Tensor h = Uniform({kB, kT, kD}, 1), mask = PrefixMask(kB, kT);
  ComiRecSaParams p{Uniform({kT, kD}, 2, -0.1f, 0.1f), Uniform({kD, da}, 3, -0.2f, 0.2f),
                    Uniform({da, k}, 4, -0.2f, 0.2f)};
  ComiRecSaParams grads = ComiRecSaParams::Zeros(kT, kD, da, k);
  ComiRecSaWorkspace ws = ComiRecSaWorkspace::Allocate(kB, kT, kD, da, k);
  Tensor v = Tensor::Empty({kB, k, kD}), dv = Uniform({kB, k, kD}, 5);
  Tensor dh = Tensor::Zeros({kB, kT, kD});
  for (auto _ : state) {
    ComiRecSaForward(h, mask, p, &ws, &v);
    ComiRecSaBackward(h, mask, p, dv, &ws, &dh, &grads);
    benchmark::DoNotOptimize(grads.w1.data());
  }
  const double bt = kB * kT;
  // Three GEMMs forward ((H+P) W1, hidden W2, A H), each twice backward.
  const double gemm = 3.0 * 2.0 * bt * (kD * da + da * k + k * kD);
  // tanh and its gradient (~25 per hidden unit), softmax and its gradient (~25 per score),
  // the position add and its gradients (~3 per input element).
  SetFlops(state, gemm + 25.0 * bt * da + 25.0 * bt * k + 3.0 * bt * kD);
}
BENCHMARK(BM_ComiRecSaForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CapsuleRoutingForwardBackward(benchmark::State& state) {
  const int64_t k = kInterests, dc = kD;
  constexpr int kIterations = 3;
  Tensor e = Uniform({kB, kT, kD}, 1), mask = PrefixMask(kB, kT);
  Tensor w = Uniform({kT, k, dc, kD}, 2, -0.2f, 0.2f), dw = Tensor::Zeros({kT, k, dc, kD});
  Tensor u_hat = Tensor::Empty({kB, kT, k, dc}), du_hat = Tensor::Empty({kB, kT, k, dc});
  Tensor coupling = Tensor::Empty({kB, k, kT});
  Tensor s = Tensor::Empty({kB, k, dc}), v = Tensor::Empty({kB, k, dc});
  Tensor dv = Uniform({kB, k, dc}, 3), de = Tensor::Zeros({kB, kT, kD});
  for (auto _ : state) {
    BilinearCapsuleMapForward(e, w, &u_hat);
    DynamicRoutingCoefficients(u_hat, mask, kIterations, &coupling);
    RoutedCapsulesForward(u_hat, coupling, &s, &v);
    du_hat.SetZero();
    RoutedCapsulesBackward(u_hat, coupling, s, dv, &du_hat);
    BilinearCapsuleMapBackward(e, w, du_hat, &de, &dw);
    benchmark::DoNotOptimize(dw.data());
  }
  const double btkd = static_cast<double>(kB) * kT * k * dc;
  const double map = 3.0 * 2.0 * btkd * kD;  // forward, de and dw
  // Routing: (iterations - 1) rounds of weighted sum + agreement (2 + 2 per u_hat element) and a
  // softmax over K per position and round (~20 per coupling); routed capsules: weighted sum
  // forward, scatter backward (2 each), squash (negligible, per capsule).
  const double routing = (kIterations - 1) * 4.0 * btkd + kIterations * 20.0 * kB * kT * k;
  SetFlops(state, map + routing + 4.0 * btkd);
}
BENCHMARK(BM_CapsuleRoutingForwardBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace attnps::bench
