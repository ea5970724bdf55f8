// LineReader: fast sequential line reading with 1 MiB fread chunks, byte offsets and line numbers
// for resumable reads. Lines are returned without the trailing '\n' (and '\r').
#ifndef ATTNPS_WORKER_DATA_LINE_READER_H_
#define ATTNPS_WORKER_DATA_LINE_READER_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "ops/status.h"

namespace attnps::data {

class LineReader {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  LineReader() = default;
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Opens `path` for reading from its start; NotFound when it cannot be opened.
  Status Open(const std::string& path);
  // Reads the next line into *line (valid until the next call). *eof is set at the end of file.
  Status Next(std::string_view* line, bool* eof);
  // Continues reading at byte `offset`, which must be the start of a line; the next line returned
  // gets number `line_number` + 1.
  Status Seek(uint64_t offset, uint64_t line_number);

  // Byte offset of the next unread line.
  uint64_t offset() const { return offset_; }
  // Number of lines returned so far (the 1-based number of the last line returned).
  uint64_t line_number() const { return line_number_; }
  const std::string& path() const { return path_; }

 private:
  Status Fill();  // Moves the unread tail to the buffer start and reads more.

  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
  size_t begin_ = 0;  // first unread byte in buffer_
  size_t end_ = 0;    // end of valid bytes in buffer_
  bool file_eof_ = false;
  uint64_t offset_ = 0;
  uint64_t line_number_ = 0;
};

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_LINE_READER_H_
