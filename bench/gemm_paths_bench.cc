// gemm_paths_bench: which GEMM library to put behind attnps::Gemm. Times, in one run, OpenBLAS
// (cblas_sgemm) and each library this build found (libxsmm JIT kernels, BLIS's native API, oneDNN's
// dnnl_sgemm) on
//   din:   the DIN activation unit's per-block products (ops/din_attention.cc): B*T = 6400 rows in
//          blocks of 250, one block per thread at a time, forward and backward;
//   mlp:   the tower's [128,144]x[144,200] and [128,200]x[200,80], forward and backward, each call
//          free to use every thread;
//   large: one 1536^3 sgemm on every thread.
// Trials alternate between the libraries (the machine is noisy); prints the median and best
// GFLOP/s and the ratio of the best against OpenBLAS's, and checks each library's DIN results
// against OpenBLAS's.
//
//   gemm_paths_bench [--threads=N] [--trials=N]
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#ifdef ATTNPS_BENCH_XSMM
#include <libxsmm.h>
#endif
#ifdef ATTNPS_BENCH_BLIS
#define BLIS_DISABLE_BLAS  // its BLAS and CBLAS declarations: OpenBLAS provides those
#define BLIS_DISABLE_CBLAS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
#include ATTNPS_BLIS_HEADER
#pragma GCC diagnostic pop
#endif
#ifdef ATTNPS_BENCH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#include "ops/cpu_kernels.h"

namespace {

// Row-major C = alpha op(A) op(B) + beta C, the contract of attnps::Gemm.
using GemmFn = void (*)(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                        const float* b, int ldb, float beta, float* c, int ldc);

void OpenBlasGemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                  const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#ifdef ATTNPS_BENCH_XSMM
// Column-major view: C^T[n,m] = op(B)^T op(A)^T. libxsmm 1.17 JIT-compiles any size for alpha = 1,
// beta in {0, 1}; a transposed first operand it does not JIT is transposed here first.
void XsmmGemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  if (alpha != 1.0f || (beta != 0.0f && beta != 1.0f)) {
    return OpenBlasGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  thread_local std::vector<float> scratch;
  if (tb) {  // B stored [n,k]: copy it to [k,n]
    scratch.resize(static_cast<size_t>(k) * n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < k; ++j) scratch[static_cast<size_t>(j) * n + i] = b[i * ldb + j];
    b = scratch.data();
    ldb = n;
  }
  const int flags = ta ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  const int prefetch = LIBXSMM_PREFETCH_NONE;
  const libxsmm_blasint mm = n, nn = m, kk = k, la = ldb, lb = lda, lc = ldc;
  const libxsmm_smmfunction kernel =
      libxsmm_smmdispatch(mm, nn, kk, &la, &lb, &lc, &alpha, &beta, &flags, &prefetch);
  if (kernel == nullptr)
    return OpenBlasGemm(ta, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  kernel(b, a, c);
}
#endif

#ifdef ATTNPS_BENCH_BLIS
// BLIS's typed API takes row and column strides: row-major needs no swap. One thread inside a
// parallel region, all of them outside.
void BlisGemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  bli_rntm_set_num_threads(omp_in_parallel() ? 1 : omp_get_max_threads(), &rntm);
  bli_sgemm_ex(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m,
               n, k, &alpha, const_cast<float*>(a), lda, 1, const_cast<float*>(b), ldb, 1, &beta, c,
               ldc, 1, nullptr, &rntm);
}
#endif

#ifdef ATTNPS_BENCH_DNNL
void DnnlGemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
#endif

struct Path {
  const char* name;
  GemmFn gemm;
};

std::vector<float> Random(size_t n, unsigned seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = static_cast<float>(seed >> 8) / 16777216.0f - 0.5f;
  }
  return v;
}

// The DIN unit's products: rows x [2D] -> [H1] -> [H2] -> [1] and back, per block of kBlock rows.
struct DinWork {
  static constexpr int kRows = 6400, kBlock = 250, kD2 = 72, kH1 = 80, kH2 = 40;
  std::vector<float> x = Random(kRows * kD2, 1), w1 = Random(kD2 * kH1, 2),
                     w2 = Random(kH1 * kH2, 3), w3 = Random(kH2, 4);
  std::vector<float> a1 = std::vector<float>(kRows * kH1), a2 = std::vector<float>(kRows * kH2),
                     s = std::vector<float>(kRows), dz1 = Random(kRows * kH1, 5),
                     dz2 = Random(kRows * kH2, 6), ds = Random(kRows, 7),
                     dx = std::vector<float>(kRows * kD2);
  std::vector<float> grads;  // per thread: [dw1 | dw2 | dw3]
  static constexpr int kGradSize = kD2 * kH1 + kH1 * kH2 + kH2;
  static double Flops() {
    return 3.0 * 2.0 * kRows * (kD2 * kH1 + kH1 * kH2 + kH2) - 2.0 * kRows * kH2;  // no dz2 <- ds
  }

  void Run(GemmFn gemm, int threads) {
    grads.assign(static_cast<size_t>(threads) * kGradSize, 0.0f);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int r0 = 0; r0 < kRows; r0 += kBlock) {
      const int n = std::min(kBlock, kRows - r0);
      float* g = grads.data() + omp_get_thread_num() * kGradSize;
      float *xb = &x[r0 * kD2], *a1b = &a1[r0 * kH1], *a2b = &a2[r0 * kH2], *sb = &s[r0];
      float *dz1b = &dz1[r0 * kH1], *dz2b = &dz2[r0 * kH2], *dsb = &ds[r0];
      gemm(false, false, n, kH1, kD2, 1, xb, kD2, w1.data(), kH1, 0, a1b, kH1);
      gemm(false, false, n, kH2, kH1, 1, a1b, kH1, w2.data(), kH2, 0, a2b, kH2);
      gemm(false, false, n, 1, kH2, 1, a2b, kH2, w3.data(), 1, 1, sb, 1);
      gemm(true, false, kH2, 1, n, 1, a2b, kH2, dsb, 1, 1, g + kD2 * kH1 + kH1 * kH2, 1);
      gemm(true, false, kH1, kH2, n, 1, a1b, kH1, dz2b, kH2, 1, g + kD2 * kH1, kH2);
      gemm(false, true, n, kH1, kH2, 1, dz2b, kH2, w2.data(), kH2, 0, dz1b, kH1);
      gemm(true, false, kD2, kH1, n, 1, xb, kD2, dz1b, kH1, 1, g, kH1);
      gemm(false, true, n, kD2, kH1, 1, dz1b, kH1, w1.data(), kH1, 0, &dx[r0 * kD2], kD2);
    }
  }
  // Outputs to compare between libraries.
  std::vector<float> Result() const {
    std::vector<float> out(a2);
    out.insert(out.end(), dx.begin(), dx.end());
    for (size_t i = 0; i < kGradSize; ++i) {
      float sum = 0;
      for (size_t t = 0; t * kGradSize < grads.size(); ++t) sum += grads[t * kGradSize + i];
      out.push_back(sum);
    }
    return out;
  }
};

// The MLP tower's products, forward and backward, with batch 128.
struct MlpWork {
  static constexpr int kB = 128, kIn = 144, kH1 = 200, kH2 = 80;
  std::vector<float> x = Random(kB * kIn, 1), w1 = Random(kIn * kH1, 2), w2 = Random(kH1 * kH2, 3),
                     h1 = Random(kB * kH1, 4), h2 = Random(kB * kH2, 5), dw1 = Random(kIn * kH1, 6),
                     dw2 = Random(kH1 * kH2, 7), dx = Random(kB * kIn, 8);
  static double Flops() { return 3.0 * 2.0 * kB * (kIn * kH1 + kH1 * kH2); }
  void Run(GemmFn gemm, int) {
    gemm(false, false, kB, kH1, kIn, 1, x.data(), kIn, w1.data(), kH1, 0, h1.data(), kH1);
    gemm(false, false, kB, kH2, kH1, 1, h1.data(), kH1, w2.data(), kH2, 0, h2.data(), kH2);
    gemm(true, false, kH1, kH2, kB, 1, h1.data(), kH1, h2.data(), kH2, 1, dw2.data(), kH2);
    gemm(false, true, kB, kH1, kH2, 1, h2.data(), kH2, w2.data(), kH2, 0, h1.data(), kH1);
    gemm(true, false, kIn, kH1, kB, 1, x.data(), kIn, h1.data(), kH1, 1, dw1.data(), kH1);
    gemm(false, true, kB, kIn, kH1, 1, h1.data(), kH1, w1.data(), kH1, 0, dx.data(), kIn);
  }
};

struct LargeWork {
  static constexpr int kN = 1536;
  std::vector<float> a = Random(kN * kN, 1), b = Random(kN * kN, 2),
                     c = std::vector<float>(kN * kN);
  static double Flops() { return 2.0 * kN * kN * kN; }
  void Run(GemmFn gemm, int) {
    gemm(false, false, kN, kN, kN, 1, a.data(), kN, b.data(), kN, 0, c.data(), kN);
  }
};

// GFLOP/s of `reps` back-to-back runs.
double Rate(const std::function<void()>& run, int reps, double flops) {
  run();  // warm-up: JIT, packing buffers, pages
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) run();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return flops * reps / s / 1e9;
}

template <typename Work>
void Measure(const char* workload, const std::vector<Path>& paths, int threads, int trials,
             int reps) {
  Work work;
  std::vector<std::vector<double>> rates(paths.size());
  for (int t = 0; t < trials; ++t) {
    for (size_t p = 0; p < paths.size(); ++p) {
      rates[p].push_back(Rate([&] { work.Run(paths[p].gemm, threads); }, reps, Work::Flops()));
    }
  }
  double base = 0;
  for (size_t p = 0; p < paths.size(); ++p) {
    std::vector<double>& r = rates[p];
    std::sort(r.begin(), r.end());
    const double median = r[r.size() / 2], best = r.back();
    if (p == 0) base = best;
    std::printf("%-6s %-9s median %7.1f  best %7.1f GFLOP/s  best/openblas %.3f\n", workload,
                paths[p].name, median, best, best / base);
  }
}

// Largest relative difference of each library's DIN results from OpenBLAS's.
void CheckDin(const std::vector<Path>& paths, int threads) {
  DinWork ref;
  ref.Run(paths[0].gemm, threads);
  const std::vector<float> want = ref.Result();
  for (size_t p = 1; p < paths.size(); ++p) {
    DinWork w;
    w.Run(paths[p].gemm, threads);
    const std::vector<float> got = w.Result();
    double err = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      err = std::max(err, std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i])));
    }
    std::printf("check  %-9s max relative difference from openblas %.2e%s\n", paths[p].name, err,
                err < 1e-4 ? "" : "  WRONG");
  }
}

int IntFlag(int argc, char** argv, const char* name, int fallback) {
  const size_t len = std::strlen(name);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], name, len) == 0 && argv[i][len] == '=')
      return std::atoi(argv[i] + len + 1);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string kernels = attnps::UseBestBlasKernels(argv);  // may re-execute this program
  const int threads = std::max(1, IntFlag(argc, argv, "--threads", omp_get_max_threads()));
  const int trials = std::max(1, IntFlag(argc, argv, "--trials", 7));
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  std::vector<Path> paths = {{"openblas", OpenBlasGemm}};
#ifdef ATTNPS_BENCH_XSMM
  libxsmm_init();
  paths.push_back({"libxsmm", XsmmGemm});
#endif
#ifdef ATTNPS_BENCH_BLIS
  bli_init();
  paths.push_back({"blis", BlisGemm});
#endif
#ifdef ATTNPS_BENCH_DNNL
  paths.push_back({"onednn", DnnlGemm});
#endif
  Dl_info cblas{};
  dladdr(reinterpret_cast<void*>(&cblas_sgemm), &cblas);  // BLIS exports one too
  std::printf("gemm_paths_bench: %d threads, %d trials\n%s\ncblas_sgemm from %s\n", threads, trials,
              kernels.c_str(), cblas.dli_fname ? cblas.dli_fname : "?");
  CheckDin(paths, threads);
  Measure<DinWork>("din", paths, threads, trials, 20);
  Measure<MlpWork>("mlp", paths, threads, trials, 200);
  // libxsmm has no threaded large GEMM (its JIT kernels are for small blocks).
  paths.erase(std::remove_if(paths.begin(), paths.end(),
                             [](const Path& p) { return std::strcmp(p.name, "libxsmm") == 0; }),
              paths.end());
  Measure<LargeWork>("large", paths, threads, trials, 3);
  return 0;
}
