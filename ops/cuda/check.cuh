// One checking macro per GPU library: every CUDA, cuBLAS and NCCL call goes through it, and a
// failure CHECK-fails naming the file, line, expression and the library's error string.
#ifndef ATTNPS_OPS_CUDA_CHECK_CUH_
#define ATTNPS_OPS_CUDA_CHECK_CUH_

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <glog/logging.h>
#include <nccl.h>

#define ATTNPS_CUDA_CHECK(expr)                                                   \
  do {                                                                            \
    cudaError_t attnps_err_ = (expr);                                             \
    LOG_IF(FATAL, attnps_err_ != cudaSuccess)                                     \
        << #expr << " failed: " << cudaGetErrorString(attnps_err_);               \
  } while (0)

#define ATTNPS_CUBLAS_CHECK(expr)                                                 \
  do {                                                                            \
    cublasStatus_t attnps_st_ = (expr);                                           \
    LOG_IF(FATAL, attnps_st_ != CUBLAS_STATUS_SUCCESS)                            \
        << #expr << " failed: " << cublasGetStatusString(attnps_st_);             \
  } while (0)

#define ATTNPS_NCCL_CHECK(expr)                                                   \
  do {                                                                            \
    ncclResult_t attnps_res_ = (expr);                                            \
    LOG_IF(FATAL, attnps_res_ != ncclSuccess)                                     \
        << #expr << " failed: " << ncclGetErrorString(attnps_res_);               \
  } while (0)

#endif  // ATTNPS_OPS_CUDA_CHECK_CUH_
