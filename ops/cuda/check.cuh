// One checking macro per GPU library: every CUDA and cuBLAS call goes through it, and a failure
// CHECK-fails naming the file, line, expression and the library's error string.
#ifndef ATTNPS_OPS_CUDA_CHECK_CUH_
#define ATTNPS_OPS_CUDA_CHECK_CUH_

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <glog/logging.h>

#define ATTNPS_CUDA_CHECK(expr)                                     \
  do {                                                              \
    cudaError_t attnps_err_ = (expr);                               \
    LOG_IF(FATAL, attnps_err_ != cudaSuccess)                       \
        << #expr << " failed: " << cudaGetErrorString(attnps_err_); \
  } while (0)

#define ATTNPS_CUBLAS_CHECK(expr)                                     \
  do {                                                                \
    cublasStatus_t attnps_st_ = (expr);                               \
    LOG_IF(FATAL, attnps_st_ != CUBLAS_STATUS_SUCCESS)                \
        << #expr << " failed: " << cublasGetStatusString(attnps_st_); \
  } while (0)

#endif  // ATTNPS_OPS_CUDA_CHECK_CUH_
