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
#include <memory>
#include <string>
#include <vector>

#include "ops/status.h"
#include "worker/data/sample.h"

namespace attnps::worker {

struct BlockPosition {
  uint64_t block_offset = 0;  // byte offset of the block's first line
  uint64_t block_line = 0;    // its line number
  int64_t taken = 0;          // samples of the block already returned
};

// After a resume with another number of workers, the rest of the epoch: the old workers' streams,
// each from where it stopped, read one after the other by every new worker, which keeps the
// samples whose ordinal (counted over all of them) % new_workers == index. Every remaining sample
// is read once in total; the next epoch uses the new partition.
struct StreamRemap {
  int old_workers = 0;
  int new_workers = 0;
  int index = 0;                    // this worker, of new_workers
  int current = 0;                  // the old stream being read
  uint64_t counter = 0;             // samples of the old streams passed so far
  std::vector<BlockPosition> rest;  // positions of old streams current, current + 1, ...
};

struct StreamPosition {
  int32_t epoch = 0;
  uint64_t block_offset = 0;  // byte offset of the block's first line
  uint64_t block_line = 0;    // its line number
  int64_t taken = 0;          // samples of the block already returned
  bool remapped = false;      // the epoch is being finished from the old streams (remap)
  StreamRemap remap;
};

// The position at which worker `index` of `new_workers` continues epoch `epoch` of a run whose
// old_positions[i] is old worker i's position (a position of a later epoch: that worker had
// finished the epoch).
StreamPosition RemapPositions(const std::vector<StreamPosition>& old_positions, int32_t epoch,
                              int index, int new_workers);

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
  StreamPosition position() const;
  const std::string& path() const { return reader_.path(); }

 private:
  Status FillBlock();
  // Remap: opens old stream remap_.current at remap_.rest[0].
  Status OpenOldStream();
  // Remap: the next sample kept for this worker, or *end when the old streams are done.
  Status ReadRemapped(data::CtrSample* sample, bool* end);

  data::CtrFileReader reader_;
  int64_t block_ = 1;
  bool shuffle_ = false;
  uint64_t seed_ = 0;
  int32_t epoch_ = 0;
  bool at_eof_ = false;
  data::CtrFileReader::Position block_start_;
  std::vector<data::CtrSample> samples_;  // the current block
  size_t next_ = 0;
  // Remap (finishing an epoch of another worker count).
  std::string path_;
  data::CtrReaderOptions options_;
  bool remapped_ = false;
  StreamRemap remap_;
  std::unique_ptr<SampleStream> old_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_SAMPLE_STREAM_H_
