// StreamSource: a task's training samples read through a SampleStream (block-shuffled,
// resumable, remappable) from a file of CTR lines, in batches of the task's own type.
// Thread-safety: as SampleSource (the loop's reader thread only).
#ifndef ATTNPS_WORKER_STREAM_SOURCE_H_
#define ATTNPS_WORKER_STREAM_SOURCE_H_

#include <memory>
#include <string>
#include <utility>

#include "worker/sample_stream.h"
#include "worker/task.h"

namespace attnps::worker {

// Batch: a TaskBatch with a `std::vector<data::CtrSample> samples` member.
template <class Batch>
class StreamSource final : public SampleSource {
 public:
  // shuffle_buffer > 0: blocks of that many lines shuffled with `seed`; 0: file order.
  Status Open(const std::string& path, const data::CtrReaderOptions& options,
              int64_t shuffle_buffer, uint64_t seed) {
    const int64_t block = shuffle_buffer > 0 ? shuffle_buffer : 4096;
    return stream_.Open(path, options, block, shuffle_buffer > 0, seed);
  }
  Status Read(int n, std::unique_ptr<TaskBatch>* out, bool* epoch_end) override {
    auto batch = std::make_unique<Batch>();
    ATTNPS_RETURN_IF_ERROR(stream_.Read(n, &batch->samples, epoch_end));
    batch->num_samples = static_cast<int>(batch->samples.size());
    *out = std::move(batch);
    return Status::Ok();
  }
  Status Seek(const StreamPosition& position) override { return stream_.Seek(position); }
  StreamPosition position() const override { return stream_.position(); }

 private:
  SampleStream stream_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_STREAM_SOURCE_H_
