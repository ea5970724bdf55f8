#include "worker/device.h"

#include "ops/tensor.h"

namespace attnps::worker {

Status CheckDevice(config::TrainConfig::Device device) {
  if (device == config::TrainConfig::CPU) return Status::Ok();
#ifndef ATTNPS_WITH_CUDA
  return Status::InvalidArgument(
      "train.device: CUDA, but this attnps was built without CUDA (configure with "
      "-DATTNPS_CUDA=ON where the CUDA toolkit is installed, docs/build.md); use CPU");
#else
  if (!CudaAvailable()) {
    return Status::InvalidArgument(
        "train.device: CUDA, but no GPU is visible to this process (cudaGetDeviceCount found "
        "none); use CPU");
  }
  return Status::InvalidArgument(
      "train.device: CUDA: GPU workers are not implemented yet (the GPU workers issue); use CPU");
#endif
}

}  // namespace attnps::worker
