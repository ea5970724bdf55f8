// ops_bench: forward+backward of every op at a DIN-sized shape (B = 128, T = 50, D = 36) beside an
// sgemm of comparable size measured in the same run, and the CPU's peak FMA rate beside a large
// sgemm (ops_bench_peak.cc). Prints the BLAS kernels in use, each op's GFLOP/s and its fraction of
// the sgemm rate, then `sgemm_vs_peak=<ratio>` and, last, `din_unit_vs_sgemm=<ratio>`. Like
// attnps, it first makes sure OpenBLAS runs the kernels of this CPU (ops/cpu_kernels.h).
//
//   ops_bench [--threads=N] [Google Benchmark flags, e.g. --benchmark_filter=Din]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "bench/bench_util.h"
#include "ops/blas.h"
#include "ops/cpu_kernels.h"
#include "ops/din_attention.h"

namespace attnps::bench {
namespace {

constexpr int64_t kH1 = 80, kH2 = 40;

// The baseline: [B*T, 4D] x [4D, H1], the DIN unit's first layer before folding.
void BM_Sgemm(benchmark::State& state) {
  const int64_t m = kB * kT, k = 4 * kD, n = kH1;
  Tensor a = Uniform({m, k}, 1), b = Uniform({k, n}, 2), c = Tensor::Empty({m, n});
  for (auto _ : state) {
    Gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  SetFlops(state, 2.0 * m * n * k);
}
BENCHMARK(BM_Sgemm)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_DinAttentionForwardBackward(benchmark::State& state) {
  const auto norm =
      state.range(0) ? AttentionNormalization::kSoftmax : AttentionNormalization::kNone;
  Tensor q = Uniform({kB, kD}, 1), k = Uniform({kB, kT, kD}, 2), mask = PrefixMask(kB, kT);
  DinAttentionParams p{Uniform({4 * kD, kH1}, 3, -0.1f, 0.1f), Uniform({kH1}, 4),
                       Uniform({kH1, kH2}, 5, -0.1f, 0.1f),    Uniform({kH2}, 6),
                       Uniform({kH2, 1}, 7, -0.1f, 0.1f),      Uniform({1}, 8)};
  DinAttentionParams grads = DinAttentionParams::Zeros(kD, kH1, kH2);
  DinAttentionWorkspace ws = DinAttentionWorkspace::Allocate(kB, kT, kD, kH1, kH2);
  Tensor weights = Tensor::Empty({kB, kT}), pooled = Tensor::Empty({kB, kD});
  Tensor d_pooled = Uniform({kB, kD}, 9), dq = Tensor::Zeros({kB, kD});
  Tensor dk = Tensor::Zeros({kB, kT, kD});
  const DinAttentionOptions options{norm, DinActivation::kSigmoid};
  for (auto _ : state) {
    DinAttentionForward(q, k, mask, p, options, &ws, &weights, &pooled);
    DinAttentionBackward(q, k, mask, p, options, weights, Tensor(), d_pooled, &ws, &dq, &dk,
                         &grads);
    benchmark::DoNotOptimize(grads.w1.data());
  }
  // GEMM work of the folded unit: forward once, backward twice (input and weight gradients).
  const double bt = kB * kT;
  const double gemm = 2.0 * bt * (2 * kD * kH1 + kH1 * kH2 + kH2) + 2.0 * kB * kD * kH1;
  SetFlops(state, 3.0 * gemm + 6.0 * bt * kD);
}
BENCHMARK(BM_DinAttentionForwardBackward)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("softmax")
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Collects every run's FLOPS counter beside the usual console output.
class FlopsReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto it = run.counters.find("FLOPS");
      if (it != run.counters.end() && run.run_type == Run::RT_Iteration) {
        flops_[run.benchmark_name()] = it->second.value;
      }
    }
  }
  const std::map<std::string, double>& flops() const { return flops_; }

 private:
  std::map<std::string, double> flops_;
};

int ParseThreads(int* argc, char** argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return threads > 0 ? threads : 1;
}

int Main(int argc, char** argv) {
  const std::string kernels = UseBestBlasKernels(argv);  // may re-execute this program
  const int threads = ParseThreads(&argc, argv);
  SetNumThreads(threads);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("ops_bench: %d threads, B=%ld T=%ld D=%ld\n%s\nblas_core=%s gemm=%s\n", threads,
              static_cast<long>(kB), static_cast<long>(kT), static_cast<long>(kD), kernels.c_str(),
              CurrentBlasKernels().core.c_str(), GemmLibrary());
  FlopsReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const auto& flops = reporter.flops();
  auto sgemm = flops.find("BM_Sgemm/real_time");
  if (sgemm == flops.end() || sgemm->second <= 0) {
    std::printf("BM_Sgemm was not run: no ratios (do not filter it out)\n");
    return 0;
  }
  std::printf("\n%-52s %10s %14s\n", "op (forward+backward)", "GFLOP/s", "of sgemm rate");
  for (const auto& [name, rate] : flops) {
    std::printf("%-52s %10.2f %14.3f\n", name.c_str(), rate / 1e9, rate / sgemm->second);
  }
  auto peak = flops.find("BM_PeakFma/real_time");
  auto large = flops.find("BM_SgemmLarge/real_time");
  if (peak != flops.end() && large != flops.end() && peak->second > 0) {
    std::printf("peak_gflops=%.1f sgemm_large_gflops=%.1f\nsgemm_vs_peak=%.3f\n",
                peak->second / 1e9, large->second / 1e9, large->second / peak->second);
  }
  auto din = flops.find("BM_DinAttentionForwardBackward/softmax:0/real_time");
  if (din != flops.end()) std::printf("din_unit_vs_sgemm=%.3f\n", din->second / sgemm->second);
  return 0;
}

}  // namespace
}  // namespace attnps::bench

int main(int argc, char** argv) { return attnps::bench::Main(argc, argv); }
