// Device dispatch inside the CPU ops (internal to ops/): after its ShapeCheck (on the first
// tensor's device), an op hands tensors in CUDA memory to its twin in ops/cuda/device_ops.h.
// In builds without CUDA no tensor can be on the device and the macros expand to nothing.
#ifndef ATTNPS_OPS_DEVICE_DISPATCH_H_
#define ATTNPS_OPS_DEVICE_DISPATCH_H_

#include "ops/tensor.h"

#ifdef ATTNPS_WITH_CUDA
#include "ops/cuda/device_ops.h"
// Runs cuda::call and returns when `tensor` is on the device.
#define ATTNPS_RUN_ON_CUDA(tensor, call)                \
  do {                                                  \
    if ((tensor).device() == ::attnps::Device::kCUDA) { \
      ::attnps::cuda::call;                             \
      return;                                           \
    }                                                   \
  } while (0)
// As ATTNPS_RUN_ON_CUDA, returning cuda::call's value.
#define ATTNPS_RETURN_ON_CUDA(tensor, call)                                        \
  do {                                                                             \
    if ((tensor).device() == ::attnps::Device::kCUDA) return ::attnps::cuda::call; \
  } while (0)
#else
#define ATTNPS_RUN_ON_CUDA(tensor, call) \
  do {                                   \
  } while (0)
#define ATTNPS_RETURN_ON_CUDA(tensor, call) \
  do {                                      \
  } while (0)
#endif

#endif  // ATTNPS_OPS_DEVICE_DISPATCH_H_
