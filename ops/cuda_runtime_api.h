// The few CUDA runtime services the CPU side needs (memory and copies), implemented in
// ops/cuda/runtime.cu when the build has CUDA and as CHECK-failing stubs otherwise.
#ifndef ATTNPS_OPS_CUDA_RUNTIME_API_H_
#define ATTNPS_OPS_CUDA_RUNTIME_API_H_

#include <cstddef>

namespace attnps::cuda {

bool DeviceAvailable();
void* Malloc(size_t bytes);
void Free(void* ptr);
enum class CopyKind { kHostToDevice, kDeviceToHost, kDeviceToDevice };
void Memcpy(void* dst, const void* src, size_t bytes, CopyKind kind);
void FillFloat(float* dst, size_t count, float value);
void Synchronize();

}  // namespace attnps::cuda

#endif  // ATTNPS_OPS_CUDA_RUNTIME_API_H_
