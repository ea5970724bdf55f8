// CUDA runtime services for Tensor: device memory and copies (FillFloat, which launches like the
// ops, is in ops/cuda/device_ops.cu).
#include "ops/cuda/check.cuh"
#include "ops/cuda_runtime_api.h"

namespace attnps::cuda {
namespace {

cudaMemcpyKind ToCuda(CopyKind kind) {
  switch (kind) {
    case CopyKind::kHostToDevice:
      return cudaMemcpyHostToDevice;
    case CopyKind::kDeviceToHost:
      return cudaMemcpyDeviceToHost;
    case CopyKind::kDeviceToDevice:
      return cudaMemcpyDeviceToDevice;
  }
  return cudaMemcpyDefault;
}

}  // namespace

bool DeviceAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

void* Malloc(size_t bytes) {
  void* p = nullptr;
  ATTNPS_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

void Free(void* ptr) {
  if (ptr != nullptr) ATTNPS_CUDA_CHECK(cudaFree(ptr));
}

void Memcpy(void* dst, const void* src, size_t bytes, CopyKind kind) {
  ATTNPS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, ToCuda(kind)));
}

void Synchronize() { ATTNPS_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace attnps::cuda
