// Output helpers for `attnps prepare`: files that appear only when complete (temp name + rename),
// a deterministic bucket shuffle for large line files, and portable seeded random draws.
#ifndef ATTNPS_WORKER_DATA_OUTPUT_H_
#define ATTNPS_WORKER_DATA_OUTPUT_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ops/status.h"

namespace attnps::data {

// Uniform in [0, n), n > 0; the same on every platform (unlike std::uniform_int_distribution).
uint64_t UniformIndex(std::mt19937_64* rng, uint64_t n);
// Uniform in [0, 1) with 53 random bits.
double UniformDouble(std::mt19937_64* rng);
// Fisher-Yates with UniformIndex.
template <typename T>
void Shuffle(std::vector<T>* v, std::mt19937_64* rng) {
  for (size_t i = v->size(); i > 1; --i) std::swap((*v)[i - 1], (*v)[UniformIndex(rng, i)]);
}

// Writes `path` through `path`.tmp; the file appears under its name only after Commit().
// Destroying an uncommitted file removes the temp file.
class AtomicFile {
 public:
  static constexpr size_t kBufferBytes = 1 << 20;

  AtomicFile() = default;
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  Status Open(const std::string& path);
  Status Append(std::string_view data);
  // Flushes, closes and renames the temp file to its final name.
  Status Commit();
  uint64_t bytes() const { return bytes_; }
  const std::string& path() const { return path_; }

 private:
  Status Flush();

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
  uint64_t bytes_ = 0;
};

// Writes lines to a file in a uniformly random order that depends only on the seed and the lines:
// each line goes to one of kBuckets buckets at random; buckets are kept in memory up to
// memory_bytes in total and spill to temp files beyond it; Commit shuffles each bucket in memory
// and concatenates them. Peak memory is about memory_bytes + the largest bucket.
class ShuffledWriter {
 public:
  static constexpr int kBuckets = 64;

  ShuffledWriter(uint64_t seed, uint64_t memory_bytes = 64ull << 20);
  ~ShuffledWriter();
  Status Open(const std::string& path);
  // Adds one line; `line` must end with '\n'.
  Status Add(std::string_view line);
  Status Commit();
  uint64_t lines() const { return lines_; }

 private:
  Status Spill();
  std::string BucketPath(int b) const;

  std::mt19937_64 rng_;
  uint64_t memory_bytes_;
  std::string path_;
  std::vector<std::string> buckets_;
  std::vector<bool> spilled_;
  uint64_t buffered_ = 0;
  uint64_t lines_ = 0;
};

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_OUTPUT_H_
