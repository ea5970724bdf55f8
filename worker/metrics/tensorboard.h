// TensorBoardWriter: scalar summaries in a TensorBoard event file, the format TensorBoard (and
// tf.summary, torch.utils.tensorboard) read: TFRecord framing (length, masked CRC-32C of the
// length, an Event protobuf, masked CRC-32C of it) of events with TensorFlow's field numbers
// (proto/tensorboard_event.proto). The file is <dir>/events.out.tfevents.<unix seconds>.<host>.
// <pid>.attnps; its first event names the file version.
//
// Values are float32 in the file (TensorBoard's simple_value). Every Add is flushed to the
// operating system, so a job killed later keeps what was added.
// Errors: IoError naming the file. Thread-compatible (one writer).
#ifndef ATTNPS_WORKER_METRICS_TENSORBOARD_H_
#define ATTNPS_WORKER_METRICS_TENSORBOARD_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ops/status.h"

namespace attnps::metrics {

class TensorBoardWriter {
 public:
  // Creates `dir` when absent and a new event file in it.
  static Status Open(const std::string& dir, std::unique_ptr<TensorBoardWriter>* writer);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event at `step` holding every (tag, value); non-finite values are skipped.
  Status Add(int64_t step, double wall_time,
             const std::vector<std::pair<std::string, double>>& scalars);
  const std::string& path() const { return path_; }

 private:
  TensorBoardWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  Status WriteRecord(const std::string& data);

  std::string path_;
  std::FILE* file_;
};

// CRC-32C (Castagnoli) of [data, data + n), and TFRecord's masked form of it.
uint32_t Crc32c(const char* data, size_t n);
uint32_t MaskedCrc32c(const char* data, size_t n);

}  // namespace attnps::metrics

#endif  // ATTNPS_WORKER_METRICS_TENSORBOARD_H_
