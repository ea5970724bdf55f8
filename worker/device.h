// The device seam: where a worker runs its dense model (train.device). Every decision that
// depends on it is taken here, in one place:
//   - which dense allreduce the job's runtime is built with (AllreduceBackendFor: MPI for CPU
//     workers, NCCL for GPU workers);
//   - where pulled rows go before the model reads them, and where the rows' gradients come back
//     from before they are pushed (WorkerDevice::RowsToDevice / GradsToHost);
//   - where the dense optimizer runs (WorkerDevice::MakeOptimizer: beside the parameters).
//
// Today only CPU workers exist: CheckDevice refuses CUDA at start, saying why (a build without
// CUDA, no GPU visible, or GPU workers not implemented yet).
// Thread-safety: the functions are pure; a WorkerDevice is used by its trainer's thread.
#ifndef ATTNPS_WORKER_DEVICE_H_
#define ATTNPS_WORKER_DEVICE_H_

#include <cstdint>
#include <memory>

#include "ops/optimizer.h"
#include "ops/status.h"
#include "proto/job_config.pb.h"
#include "ps/job_runtime.h"
#include "worker/sparse_pipeline.h"

namespace attnps::worker {

// OK when this process can run workers on `device`; otherwise InvalidArgument, one line naming
// train.device and the reason.
Status CheckDevice(config::TrainConfig::Device device);

// The dense allreduce for workers on `device`.
ps::AllreduceBackend AllreduceBackendFor(config::TrainConfig::Device device);

class WorkerDevice {
 public:
  virtual ~WorkerDevice() = default;
  // The device of train.device, or CheckDevice's error.
  static Status Create(config::TrainConfig::Device device, std::unique_ptr<WorkerDevice>* out);

  // After a batch's pull: makes batch->rows readable by the model (CPU: where they are).
  virtual void RowsToDevice(SparseBatch* batch) = 0;
  // Before its push: batch->grads in host memory for the wire (CPU: where they are).
  virtual void GradsToHost(SparseBatch* batch) = 0;
  // The dense optimizer over `n` parameters, running where the parameters live.
  virtual std::unique_ptr<DenseOptimizer> MakeOptimizer(const DenseOptimizerOptions& options,
                                                        int64_t n) = 0;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_DEVICE_H_
