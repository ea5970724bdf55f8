// Row-major GEMM front-ends, and the process-wide thread count shared by BLAS and the OpenMP loops
// of the CPU kernels. The GEMMs run on oneDNN's dnnl_sgemm when the build found it (CMake option
// ATTNPS_GEMM; its kernels are JIT-compiled for the running CPU and beat OpenBLAS on the small
// products of the attention units, see bench/gemm_paths_bench.cc), else on OpenBLAS's cblas_sgemm.
// Inside a parallel region either runs single-threaded; outside it uses NumThreads() threads.
// Thread-safety: the GEMM calls are reentrant; SetNumThreads is process-wide, call it at start-up.
#ifndef ATTNPS_OPS_BLAS_H_
#define ATTNPS_OPS_BLAS_H_

#include <cstdint>

namespace attnps {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major with leading dimensions lda, ldb, ldc.
// op(A) is [M,K] (A stored [K,M] when trans_a), op(B) is [K,N] (B stored [N,K] when trans_b).
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// G independent GEMMs of the same shape, matrix g at a + g*stride_a (etc.), packed row-major.
void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t stride_a, const float* b, int64_t stride_b,
                        float beta, float* c, int64_t stride_c, int64_t batch);

// The library behind Gemm: "onednn 2.6.3" or "openblas".
const char* GemmLibrary();

// Threads used by BLAS and by the kernels' parallel loops (default: all cores). Also turns on
// EnableFlushToZero for them.
void SetNumThreads(int threads);
// Flush-to-zero and denormals-are-zero (x86 MXCSR) on the calling thread and on every OpenMP
// thread; threads created later by the caller inherit them. Values below 1.2e-38 become 0:
// training loses nothing by that, and arithmetic on them (softmax tails, decaying optimizer
// moments) is up to 100x slower. No-op elsewhere.
void EnableFlushToZero();
int NumThreads();

}  // namespace attnps

#endif  // ATTNPS_OPS_BLAS_H_
