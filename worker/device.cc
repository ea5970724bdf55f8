#include "worker/device.h"

#include "ops/tensor.h"

namespace attnps::worker {
namespace {

class CpuDevice final : public WorkerDevice {
 public:
  void RowsToDevice(SparseBatch*) override {}
  void GradsToHost(SparseBatch*) override {}
  std::unique_ptr<DenseOptimizer> MakeOptimizer(const DenseOptimizerOptions& options,
                                                int64_t n) override {
    return MakeDenseOptimizer(options, n);
  }
};

}  // namespace

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

ps::AllreduceBackend AllreduceBackendFor(config::TrainConfig::Device device) {
  return device == config::TrainConfig::CUDA ? ps::AllreduceBackend::kNccl
                                             : ps::AllreduceBackend::kMpi;
}

Status WorkerDevice::Create(config::TrainConfig::Device device,
                            std::unique_ptr<WorkerDevice>* out) {
  ATTNPS_RETURN_IF_ERROR(CheckDevice(device));
  *out = std::make_unique<CpuDevice>();
  return Status::Ok();
}

}  // namespace attnps::worker
