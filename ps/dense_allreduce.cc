#include "ps/dense_allreduce.h"

#include <glog/logging.h>

#include <algorithm>
#include <climits>

#include "ps/mpi_transport.h"

namespace attnps::ps {

size_t BucketFloats(size_t bucket_bytes) {
  return std::clamp<size_t>(bucket_bytes / sizeof(float), 1, INT_MAX);
}

MpiDenseAllreduce::MpiDenseAllreduce(MPI_Comm workers, AllreduceOptions options)
    : comm_(workers), options_(options) {
  CHECK(workers != MPI_COMM_NULL) << "MpiDenseAllreduce on a rank that is not a worker";
  ATTNPS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

Status MpiDenseAllreduce::Reduce(float* data, size_t count, float scale) {
  if (size_ == 1) return Status::Ok();
  const size_t bucket = BucketFloats(options_.bucket_bytes);
  for (size_t begin = 0; begin < count; begin += bucket) {
    const size_t n = std::min(bucket, count - begin);
    float* part = data + begin;
    ATTNPS_MPI_CHECK(
        MPI_Allreduce(MPI_IN_PLACE, part, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_));
    if (scale != 1.0f) {
      for (size_t i = 0; i < n; ++i) part[i] *= scale;
    }
  }
  return Status::Ok();
}

}  // namespace attnps::ps
