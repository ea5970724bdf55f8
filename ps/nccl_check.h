// The NCCL checking macro (CUDA builds only; include only where ATTNPS_WITH_CUDA): every NCCL call
// goes through ATTNPS_NCCL_CHECK, which CHECK-fails naming the file, line, expression and NCCL's
// error string. NCCL belongs to the runtime (ps/nccl_allreduce.cc); the CUDA and cuBLAS macros
// are in ops/cuda/check.cuh.
#ifndef ATTNPS_PS_NCCL_CHECK_H_
#define ATTNPS_PS_NCCL_CHECK_H_

#include <glog/logging.h>
#include <nccl.h>

#define ATTNPS_NCCL_CHECK(expr)                                     \
  do {                                                              \
    ncclResult_t attnps_res_ = (expr);                              \
    LOG_IF(FATAL, attnps_res_ != ncclSuccess)                       \
        << #expr << " failed: " << ncclGetErrorString(attnps_res_); \
  } while (0)

#endif  // ATTNPS_PS_NCCL_CHECK_H_
