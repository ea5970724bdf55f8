// CPU-only builds: the CUDA runtime services CHECK-fail with a clear message.
#ifndef ATTNPS_WITH_CUDA
#include <glog/logging.h>

#include "ops/cuda_runtime_api.h"

namespace attnps::cuda {
namespace {
[[noreturn]] void NoCuda(const char* what) {
  LOG(FATAL) << what << ": attnps was built without CUDA (configure with -DATTNPS_CUDA=ON "
             << "on a machine with the CUDA toolkit)";
  __builtin_unreachable();
}
}  // namespace

bool DeviceAvailable() { return false; }
void* Malloc(size_t) { NoCuda("cuda::Malloc"); }
void Free(void*) {}
void Memcpy(void*, const void*, size_t, CopyKind) { NoCuda("cuda::Memcpy"); }
void FillFloat(float*, size_t, float) { NoCuda("cuda::FillFloat"); }
void Synchronize() {}

}  // namespace attnps::cuda
#endif  // ATTNPS_WITH_CUDA
