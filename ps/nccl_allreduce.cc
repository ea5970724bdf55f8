// NcclDenseAllreduce: see ps/dense_allreduce.h. Compiled into every build; the NCCL part only
// where CUDA was found (ATTNPS_WITH_CUDA).
#include <glog/logging.h>

#include <algorithm>
#include <string>

#include "ps/dense_allreduce.h"
#include "ps/mpi_transport.h"

#if ATTNPS_WITH_CUDA
#include "ops/cuda/check.cuh"
#include "ps/nccl_check.h"
#endif

namespace attnps::ps {

#if ATTNPS_WITH_CUDA
namespace {

class NcclDenseAllreduce : public DenseAllreduce {
 public:
  NcclDenseAllreduce(MPI_Comm workers, int device, AllreduceOptions options)
      : workers_(workers), device_(device), options_(options) {
    int rank = 0;
    ATTNPS_MPI_CHECK(MPI_Comm_rank(workers, &rank));
    ATTNPS_MPI_CHECK(MPI_Comm_size(workers, &size_));
    ncclUniqueId id;
    if (rank == 0) ATTNPS_NCCL_CHECK(ncclGetUniqueId(&id));
    ATTNPS_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, workers));
    ATTNPS_CUDA_CHECK(cudaSetDevice(device_));
    ATTNPS_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank));
    ATTNPS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclDenseAllreduce() override {
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }
  int num_workers() const override { return size_; }

  Status Sum(float* data, size_t count) override { return Reduce(data, count, ncclSum); }
  Status Average(float* data, size_t count) override { return Reduce(data, count, ncclAvg); }
  Status AllGather(const std::string& mine, std::vector<std::string>* all) override {
    return MpiAllGather(workers_, mine, all);
  }

 private:
  Status Reduce(float* data, size_t count, ncclRedOp_t op) {
    ATTNPS_CUDA_CHECK(cudaSetDevice(device_));
    const size_t bucket = BucketFloats(options_.bucket_bytes);
    ATTNPS_NCCL_CHECK(ncclGroupStart());
    for (size_t begin = 0; begin < count; begin += bucket) {
      const size_t n = std::min(bucket, count - begin);
      ATTNPS_NCCL_CHECK(
          ncclAllReduce(data + begin, data + begin, n, ncclFloat, op, comm_, stream_));
    }
    ATTNPS_NCCL_CHECK(ncclGroupEnd());
    ATTNPS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  MPI_Comm workers_;  // not owned
  int device_ = 0;
  int size_ = 1;
  AllreduceOptions options_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

bool NcclAvailable() { return true; }

Status MakeNcclDenseAllreduce(MPI_Comm workers, int device, AllreduceOptions options,
                              std::unique_ptr<DenseAllreduce>* out) {
  if (workers == MPI_COMM_NULL) return Status::InvalidArgument("NCCL allreduce on a non-worker");
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || device < 0 || device >= devices) {
    return Status::InvalidArgument("NCCL allreduce on CUDA device " + std::to_string(device) +
                                   ": this machine has " + std::to_string(devices) + " GPU(s)");
  }
  *out = std::make_unique<NcclDenseAllreduce>(workers, device, options);
  return Status::Ok();
}

#else  // !ATTNPS_WITH_CUDA

bool NcclAvailable() { return false; }

Status MakeNcclDenseAllreduce(MPI_Comm, int, AllreduceOptions, std::unique_ptr<DenseAllreduce>*) {
  return Status::InvalidArgument(
      "NCCL allreduce requested, but attnps was built without CUDA (see docs/build.md)");
}

#endif

}  // namespace attnps::ps
