#include "worker/data/line_reader.h"

#include <cerrno>
#include <cstring>

#include <glog/logging.h>

namespace attnps::data {

LineReader::~LineReader() {
  if (file_ != nullptr) std::fclose(file_);
}

Status LineReader::Open(const std::string& path) {
  if (file_ != nullptr) std::fclose(file_);
  path_ = path;
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) {
    return Status::NotFound("cannot open " + path + ": " + std::strerror(errno));
  }
  buffer_.resize(kChunkBytes);
  begin_ = end_ = 0;
  file_eof_ = false;
  offset_ = line_number_ = 0;
  return Status::Ok();
}

Status LineReader::Fill() {
  size_t unread = end_ - begin_;
  if (begin_ > 0 && unread > 0) std::memmove(&buffer_[0], &buffer_[begin_], unread);
  begin_ = 0;
  end_ = unread;
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // a line longer than a chunk
  size_t got = std::fread(&buffer_[end_], 1, buffer_.size() - end_, file_);
  end_ += got;
  if (got == 0) {
    if (std::ferror(file_)) return Status::IoError("read error in " + path_);
    file_eof_ = true;
  }
  return Status::Ok();
}

Status LineReader::Next(std::string_view* line, bool* eof) {
  CHECK_NOTNULL(file_);
  *eof = false;
  size_t scan_from = begin_;
  while (true) {
    const char* start = buffer_.data() + scan_from;
    const void* nl = std::memchr(start, '\n', end_ - scan_from);
    if (nl != nullptr) {
      size_t pos = static_cast<const char*>(nl) - buffer_.data();
      size_t len = pos - begin_;
      if (len > 0 && buffer_[pos - 1] == '\r') --len;
      *line = std::string_view(buffer_.data() + begin_, len);
      offset_ += pos + 1 - begin_;
      begin_ = pos + 1;
      ++line_number_;
      return Status::Ok();
    }
    if (file_eof_) {
      if (begin_ == end_) {
        *eof = true;
        return Status::Ok();
      }
      size_t len = end_ - begin_;  // last line without '\n'
      if (buffer_[end_ - 1] == '\r') --len;
      *line = std::string_view(buffer_.data() + begin_, len);
      offset_ += end_ - begin_;
      begin_ = end_;
      ++line_number_;
      return Status::Ok();
    }
    size_t scanned = end_ - begin_;
    ATTNPS_RETURN_IF_ERROR(Fill());
    scan_from = begin_ + scanned;
  }
}

Status LineReader::Seek(uint64_t offset, uint64_t line_number) {
  CHECK_NOTNULL(file_);
  if (std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0) {
    return Status::IoError("cannot seek " + path_ + " to byte " + std::to_string(offset));
  }
  std::clearerr(file_);
  begin_ = end_ = 0;
  file_eof_ = false;
  offset_ = offset;
  line_number_ = line_number;
  return Status::Ok();
}

}  // namespace attnps::data
