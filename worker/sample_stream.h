// SampleStream: a worker's training samples, epoch after epoch, in a reproducible order that can
// be resumed exactly from a saved position.
//
// The file (already shuffled by `attnps prepare`) is read in blocks of `block` samples of this
// worker's partition; each block is shuffled with a generator seeded by (seed, epoch, block start)
// when shuffle is on. A position is (epoch, block start in the file, samples of the block already
// taken): re-reading the block and re-shuffling it gives the same order, so a resumed run sees
// exactly the samples an uninterrupted one would.
// Thread-safety: one thread. Errors: the reader's (file:line, bad-line fraction).
#ifndef ATTNPS_WORKER_SAMPLE_STREAM_H_
#define ATTNPS_WORKER_SAMPLE_STREAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ops/status.h"
#include "worker/data/sample.h"

namespace attnps::worker {

struct StreamPosition {
  int32_t epoch = 0;
  uint64_t block_offset = 0;  // byte offset of the block's first line
  uint64_t block_line = 0;    // its line number
  int64_t taken = 0;          // samples of the block already returned
};

class SampleStream {
 public:
  // block: samples per shuffle block (>= 1); shuffle = false keeps the file order.
  Status Open(const std::string& path, const data::CtrReaderOptions& options, int64_t block,
              bool shuffle, uint64_t seed);
  // Continues at `position` (from position()).
  Status Seek(const StreamPosition& position);
  // Up to n samples of the current epoch; fewer (maybe none) at its end, then *end = true.
  Status Read(int n, std::vector<data::CtrSample>* out, bool* end);
  // The position of the next sample.
  StreamPosition position() const {
    return {epoch_, block_start_.offset, block_start_.line, static_cast<int64_t>(next_)};
  }
  const std::string& path() const { return reader_.path(); }

 private:
  Status FillBlock();

  data::CtrFileReader reader_;
  int64_t block_ = 1;
  bool shuffle_ = false;
  uint64_t seed_ = 0;
  int32_t epoch_ = 0;
  bool at_eof_ = false;
  data::CtrFileReader::Position block_start_;
  std::vector<data::CtrSample> samples_;  // the current block
  size_t next_ = 0;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_SAMPLE_STREAM_H_
