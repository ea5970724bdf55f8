#include "ops/blas.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include <cblas.h>
#include <glog/logging.h>
#include <omp.h>

#ifdef ATTNPS_GEMM_ONEDNN
#include <oneapi/dnnl/dnnl.h>

#include <string>
#endif

namespace attnps {

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C untouched when K = 0 only if beta == 1
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
#ifdef ATTNPS_GEMM_ONEDNN
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                                          a, lda, b, ldb, beta, c, ldc);
  CHECK_EQ(status, dnnl_success) << "dnnl_sgemm(" << (trans_a ? 'T' : 'N') << (trans_b ? 'T' : 'N')
                                 << " m=" << m << " n=" << n << " k=" << k << " lda=" << lda
                                 << " ldb=" << ldb << " ldc=" << ldc << ")";
#else
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
#endif
}

void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t stride_a, const float* b, int64_t stride_b,
                        float beta, float* c, int64_t stride_c, int64_t batch) {
  const int64_t lda = trans_a ? m : k;
  const int64_t ldb = trans_b ? k : n;
  // Small matrices: one thread per matrix (Gemm runs single-threaded inside a parallel region).
#pragma omp parallel for schedule(static) if (batch > 1)
  for (int64_t g = 0; g < batch; ++g) {
    Gemm(trans_a, trans_b, m, n, k, alpha, a + g * stride_a, lda, b + g * stride_b, ldb, beta,
         c + g * stride_c, n);
  }
}

const char* GemmLibrary() {
#ifdef ATTNPS_GEMM_ONEDNN
  static const std::string name = [] {
    const dnnl_version_t* v = dnnl_version();
    return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch);
  }();
  return name.c_str();
#else
  return "openblas";
#endif
}

void SetNumThreads(int threads) {
  CHECK_GT(threads, 0) << "SetNumThreads";
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  EnableFlushToZero();
}

void EnableFlushToZero() {
#if defined(__SSE__) || defined(__x86_64__)
  auto set = [] {
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
  };
  set();
#pragma omp parallel
  set();
#endif
}

int NumThreads() { return omp_get_max_threads(); }

}  // namespace attnps
