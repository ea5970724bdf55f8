// Dense gradient averaging across the workers of a job: one interface, three implementations.
//
//   MpiDenseAllreduce   CPU workers: MPI_Allreduce on the workers' sub-communicator
//   NcclDenseAllreduce  GPU workers: NCCL, its communicator bootstrapped over the same
//                       sub-communicator (ncclUniqueId broadcast over MPI); CUDA builds only
//   SingleWorkerAllreduce  one worker (local mode): nothing to exchange
//
// A step's gradients are one flat buffer, reduced in buckets of `bucket_bytes`. The trainer
// scales its loss by 1/workers, so that Sum of the gradients is their average at no extra pass
// over memory; Average (sum, then scale each bucket while it is in cache) is for callers that
// did not. Both are deterministic: every worker ends with bit-identical values.
//
// Thread-safety: one caller at a time per instance (collective calls must be issued in the same
// order on every worker). Errors: MPI/NCCL failures CHECK-fail through their checking macros
// (a dead peer ends the job); misuse returns InvalidArgument.
#ifndef ATTNPS_PS_DENSE_ALLREDUCE_H_
#define ATTNPS_PS_DENSE_ALLREDUCE_H_

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "ops/status.h"

namespace attnps::ps {

struct AllreduceOptions {
  size_t bucket_bytes = size_t{4} << 20;
};

class DenseAllreduce {
 public:
  virtual ~DenseAllreduce() = default;
  virtual int num_workers() const = 0;
  // Replaces data[0, count) with its sum (Sum) or mean (Average) over the workers. Host memory
  // for MPI, device memory (of the device given at construction) for NCCL.
  virtual Status Sum(float* data, size_t count) = 0;
  virtual Status Average(float* data, size_t count) = 0;
  // Every worker's `mine`, in worker order, into *all on every worker: host bytes of the control
  // plane (e.g. evaluation results), never gradients. Over MPI for every implementation.
  // InvalidArgument when the total exceeds 2 GiB.
  virtual Status AllGather(const std::string& mine, std::vector<std::string>* all) = 0;
};

class SingleWorkerAllreduce : public DenseAllreduce {
 public:
  int num_workers() const override { return 1; }
  Status Sum(float*, size_t) override { return Status::Ok(); }
  Status Average(float*, size_t) override { return Status::Ok(); }
  Status AllGather(const std::string& mine, std::vector<std::string>* all) override {
    *all = {mine};
    return Status::Ok();
  }
};

// AllGather over the ranks of `comm` (MPI_Allgather of the sizes, then MPI_Allgatherv).
Status MpiAllGather(MPI_Comm comm, const std::string& mine, std::vector<std::string>* all);

class MpiDenseAllreduce : public DenseAllreduce {
 public:
  // `workers` is the sub-communicator of the worker ranks (WorkerCommunicator); not owned.
  explicit MpiDenseAllreduce(MPI_Comm workers, AllreduceOptions options = {});
  int num_workers() const override { return size_; }
  Status Sum(float* data, size_t count) override { return Reduce(data, count, 1.0f); }
  Status Average(float* data, size_t count) override {
    return Reduce(data, count, 1.0f / static_cast<float>(size_));
  }
  Status AllGather(const std::string& mine, std::vector<std::string>* all) override {
    return MpiAllGather(comm_, mine, all);
  }

 private:
  Status Reduce(float* data, size_t count, float scale);

  MPI_Comm comm_;
  int size_ = 1;
  AllreduceOptions options_;
};

// Floats per allreduce bucket: bucket_bytes / 4, at least one, at most an int count.
size_t BucketFloats(size_t bucket_bytes);

// True when this build has NCCL (CUDA builds).
bool NcclAvailable();

// An NCCL allreduce over the ranks of `workers` (collective: every worker calls it together),
// on CUDA device `device`. InvalidArgument in builds without CUDA.
Status MakeNcclDenseAllreduce(MPI_Comm workers, int device, AllreduceOptions options,
                              std::unique_ptr<DenseAllreduce>* out);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_DENSE_ALLREDUCE_H_
