// Helpers shared by the op benchmarks (bench/ops_bench*.cc).
// Each benchmark reports its floating-point work through SetFlops so that the summary in
// ops_bench.cc can print GFLOP/s and the fraction of the sgemm rate measured in the same run.
#ifndef ATTNPS_BENCH_BENCH_UTIL_H_
#define ATTNPS_BENCH_BENCH_UTIL_H_

#include <benchmark/benchmark.h>

#include <random>

#include "ops/tensor.h"

namespace attnps::bench {

// DIN-sized shapes: batch, history length, item embedding dim.
constexpr int64_t kB = 128;
constexpr int64_t kT = 50;
constexpr int64_t kD = 36;

// Records `flops` floating-point operations per iteration (forward + backward) as "FLOPS".
inline void SetFlops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOPS"] =
      benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

inline Tensor Uniform(const Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::Empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = dist(rng);
  return t;
}

// A [B, T] prefix mask with lengths spread over [1, T].
inline Tensor PrefixMask(int64_t b, int64_t t) {
  Tensor m = Tensor::Zeros({b, t});
  for (int64_t r = 0; r < b; ++r) {
    const int64_t len = 1 + (r * 7919) % t;
    for (int64_t c = 0; c < len; ++c) m[r * t + c] = 1.0f;
  }
  return m;
}

}  // namespace attnps::bench

#endif  // ATTNPS_BENCH_BENCH_UTIL_H_
