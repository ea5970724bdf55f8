// The CPU's peak single-precision FMA rate (an FMA-chain probe on every thread, with the widest
// vectors the CPU and the OS support) and a large sgemm beside it: ops_bench prints
// `sgemm_vs_peak=<ratio>`, how close the BLAS kernels in use come to the machine's limit.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>

#include "bench/bench_util.h"
#include "ops/blas.h"
#include "ops/cpu_kernels.h"

namespace attnps::bench {
namespace {

// Independent FMA chains, more than latency x FMA ports on current cores, and few enough to stay
// in registers with the two constants (16 ymm registers with AVX2, 32 zmm with AVX-512).
constexpr int kChains512 = 16;
constexpr int kChains256 = 12;

__attribute__((target("avx512f"))) float FmaChains512(int64_t iters) {
  constexpr int kChains = kChains512;
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.001f * j);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  float sum = 0;
  for (int j = 0; j < kChains; ++j) sum += _mm512_reduce_add_ps(acc[j]);
  return sum;
}

__attribute__((target("avx2,fma"))) float FmaChains256(int64_t iters) {
  constexpr int kChains = kChains256;
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(0.001f * j);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  alignas(32) float out[8];
  float sum = 0;
  for (int j = 0; j < kChains; ++j) {
    _mm256_store_ps(out, acc[j]);
    for (float v : out) sum += v;
  }
  return sum;
}

// FLOP/s of the FMA probe on every thread of the pool at once.
void BM_PeakFma(benchmark::State& state) {
  const CpuFeatures cpu = DetectCpuFeatures();
  const bool wide = BestTier(cpu) >= VectorTier::kAvx512;
  const int lanes = wide ? 16 : 8, chains = wide ? kChains512 : kChains256;
  constexpr int64_t kIters = 1 << 20;
  const int threads = NumThreads();
  volatile float sink = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const float s = wide ? FmaChains512(kIters) : FmaChains256(kIters);
      if (s == 12345.0f) sink = s;
    }
  }
  SetFlops(state, 2.0 * kIters * chains * lanes * threads);
  state.SetLabel(wide ? "avx512" : "avx2");
}
BENCHMARK(BM_PeakFma)->Unit(benchmark::kMillisecond)->UseRealTime();

// A large square sgemm: what the BLAS kernels reach when the shape is no obstacle.
void BM_SgemmLarge(benchmark::State& state) {
  const int64_t n = 1536;
  Tensor a = Uniform({n, n}, 1), b = Uniform({n, n}, 2), c = Tensor::Empty({n, n});
  for (auto _ : state) {
    Gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  SetFlops(state, 2.0 * n * n * n);
}
BENCHMARK(BM_SgemmLarge)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace attnps::bench
