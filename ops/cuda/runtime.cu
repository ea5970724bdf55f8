// CUDA runtime services for Tensor: device memory, copies, fill.
#include "ops/cuda/check.cuh"
#include "ops/cuda_runtime_api.h"

namespace attnps::cuda {
namespace {

__global__ void FillKernel(float* dst, size_t count, float value) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    dst[i] = value;
  }
}

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

void FillFloat(float* dst, size_t count, float value) {
  if (count == 0) return;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<size_t>((count + threads - 1) / threads, 4096));
  FillKernel<<<blocks, threads>>>(dst, count, value);
  ATTNPS_CUDA_CHECK(cudaGetLastError());
}

void Synchronize() { ATTNPS_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace attnps::cuda
