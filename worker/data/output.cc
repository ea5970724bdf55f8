#include "worker/data/output.h"

#include <glog/logging.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace attnps::data {

uint64_t UniformIndex(std::mt19937_64* rng, uint64_t n) {
  CHECK_GT(n, 0u);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // reject the biased tail
  while (true) {
    uint64_t x = (*rng)();
    if (x < limit) return x % n;
  }
}

double UniformDouble(std::mt19937_64* rng) {
  return static_cast<double>((*rng)() >> 11) * (1.0 / 9007199254740992.0);
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(tmp_path_.c_str());
  }
}

Status AtomicFile::Open(const std::string& path) {
  CHECK(file_ == nullptr) << "AtomicFile opened twice";
  path_ = path;
  tmp_path_ = path + ".tmp";
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    return Status::IoError("cannot create " + tmp_path_ + ": " + std::strerror(errno));
  }
  buffer_.reserve(kBufferBytes);
  return Status::Ok();
}

Status AtomicFile::Flush() {
  if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) {
    return Status::IoError("write error on " + tmp_path_ + ": " + std::strerror(errno));
  }
  buffer_.clear();
  return Status::Ok();
}

Status AtomicFile::Append(std::string_view data) {
  CHECK_NOTNULL(file_);
  bytes_ += data.size();
  buffer_.append(data);
  if (buffer_.size() >= kBufferBytes) return Flush();
  return Status::Ok();
}

Status AtomicFile::Commit() {
  CHECK_NOTNULL(file_);
  ATTNPS_RETURN_IF_ERROR(Flush());
  int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) {
    std::remove(tmp_path_.c_str());
    return Status::IoError("cannot close " + tmp_path_ + ": " + std::strerror(errno));
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return Status::IoError("cannot rename " + tmp_path_ + " to " + path_ + ": " +
                           std::strerror(errno));
  }
  return Status::Ok();
}

ShuffledWriter::ShuffledWriter(uint64_t seed, uint64_t memory_bytes)
    : rng_(seed), memory_bytes_(memory_bytes), buckets_(kBuckets), spilled_(kBuckets, false) {}

ShuffledWriter::~ShuffledWriter() {
  for (int b = 0; b < kBuckets; ++b) {
    if (spilled_[b]) std::remove(BucketPath(b).c_str());
  }
}

std::string ShuffledWriter::BucketPath(int b) const {
  return path_ + ".bucket" + std::to_string(b) + ".tmp";
}

Status ShuffledWriter::Open(const std::string& path) {
  path_ = path;
  return Status::Ok();
}

Status ShuffledWriter::Add(std::string_view line) {
  CHECK(!line.empty() && line.back() == '\n') << "ShuffledWriter lines end with a newline";
  buckets_[UniformIndex(&rng_, kBuckets)].append(line);
  buffered_ += line.size();
  ++lines_;
  if (buffered_ > memory_bytes_) return Spill();
  return Status::Ok();
}

Status ShuffledWriter::Spill() {
  for (int b = 0; b < kBuckets; ++b) {
    if (buckets_[b].empty()) continue;
    std::FILE* f = std::fopen(BucketPath(b).c_str(), spilled_[b] ? "ab" : "wb");
    if (f == nullptr) {
      return Status::IoError("cannot write " + BucketPath(b) + ": " + std::strerror(errno));
    }
    spilled_[b] = true;
    size_t wrote = std::fwrite(buckets_[b].data(), 1, buckets_[b].size(), f);
    bool ok = std::fclose(f) == 0 && wrote == buckets_[b].size();
    if (!ok) return Status::IoError("write error on " + BucketPath(b));
    std::string().swap(buckets_[b]);
  }
  buffered_ = 0;
  return Status::Ok();
}

Status ShuffledWriter::Commit() {
  AtomicFile out;
  ATTNPS_RETURN_IF_ERROR(out.Open(path_));
  std::vector<std::string_view> lines;
  for (int b = 0; b < kBuckets; ++b) {
    std::string data;
    if (spilled_[b]) {
      std::ifstream in(BucketPath(b), std::ios::binary);
      if (!in) return Status::IoError("cannot read " + BucketPath(b));
      data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      std::remove(BucketPath(b).c_str());
      spilled_[b] = false;
    }
    data.append(buckets_[b]);
    std::string().swap(buckets_[b]);
    lines.clear();
    for (size_t start = 0; start < data.size();) {
      size_t nl = data.find('\n', start);
      CHECK_NE(nl, std::string::npos);
      lines.emplace_back(data.data() + start, nl + 1 - start);
      start = nl + 1;
    }
    Shuffle(&lines, &rng_);
    for (std::string_view line : lines) ATTNPS_RETURN_IF_ERROR(out.Append(line));
  }
  return out.Commit();
}

}  // namespace attnps::data
