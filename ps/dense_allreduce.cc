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

Status MpiAllGather(MPI_Comm comm, const std::string& mine, std::vector<std::string>* all) {
  int size = 1;
  ATTNPS_MPI_CHECK(MPI_Comm_size(comm, &size));
  long long my_bytes = static_cast<long long>(mine.size());
  std::vector<long long> bytes(size);
  ATTNPS_MPI_CHECK(
      MPI_Allgather(&my_bytes, 1, MPI_LONG_LONG, bytes.data(), 1, MPI_LONG_LONG, comm));
  std::vector<int> counts(size), offsets(size);
  long long total = 0;
  for (int r = 0; r < size; ++r) {
    offsets[r] = static_cast<int>(std::min<long long>(total, INT_MAX));
    counts[r] = static_cast<int>(std::min<long long>(bytes[r], INT_MAX));
    total += bytes[r];
  }
  if (total > INT_MAX) {  // the same on every rank: all return together
    return Status::InvalidArgument("AllGather of " + std::to_string(total) +
                                   " bytes: more than 2 GiB");
  }
  std::string gathered(static_cast<size_t>(total), '\0');
  ATTNPS_MPI_CHECK(MPI_Allgatherv(mine.data(), static_cast<int>(my_bytes), MPI_BYTE,
                                  gathered.data(), counts.data(), offsets.data(), MPI_BYTE, comm));
  all->assign(size, "");
  for (int r = 0; r < size; ++r) (*all)[r] = gathered.substr(offsets[r], counts[r]);
  return Status::Ok();
}

}  // namespace attnps::ps
