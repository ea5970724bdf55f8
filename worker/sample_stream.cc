#include "worker/sample_stream.h"

#include <algorithm>
#include <random>

#include "ops/random.h"

namespace attnps::worker {

Status SampleStream::Open(const std::string& path, const data::CtrReaderOptions& options,
                          int64_t block, bool shuffle, uint64_t seed) {
  if (block < 1) return Status::InvalidArgument("shuffle block must be >= 1 samples");
  block_ = block;
  shuffle_ = shuffle;
  seed_ = seed;
  ATTNPS_RETURN_IF_ERROR(reader_.Open(path, options));
  return Seek(StreamPosition{});
}

Status SampleStream::Seek(const StreamPosition& position) {
  epoch_ = position.epoch;
  block_start_ = {position.block_offset, position.block_line};
  ATTNPS_RETURN_IF_ERROR(reader_.Seek(block_start_));
  at_eof_ = false;
  ATTNPS_RETURN_IF_ERROR(FillBlock());
  if (position.taken > static_cast<int64_t>(samples_.size())) {
    return Status::InvalidArgument(path() + ": resume position takes " +
                                   std::to_string(position.taken) + " samples of a block of " +
                                   std::to_string(samples_.size()));
  }
  next_ = static_cast<size_t>(position.taken);
  return Status::Ok();
}

Status SampleStream::FillBlock() {
  samples_.clear();
  next_ = 0;
  block_start_ = reader_.position();
  data::CtrSample s;
  while (!at_eof_ && static_cast<int64_t>(samples_.size()) < block_) {
    ATTNPS_RETURN_IF_ERROR(reader_.Next(&s, &at_eof_));
    if (!at_eof_) samples_.push_back(std::move(s));
  }
  if (shuffle_) {
    std::mt19937_64 rng(Mix64(seed_ ^ Mix64(static_cast<uint64_t>(epoch_) * 0x9E3779B97F4A7C15ull +
                                            block_start_.offset)));
    for (size_t i = samples_.size(); i > 1; --i) {  // Fisher-Yates with a portable draw
      std::swap(samples_[i - 1], samples_[rng() % i]);
    }
  }
  return Status::Ok();
}

Status SampleStream::Read(int n, std::vector<data::CtrSample>* out, bool* end) {
  out->clear();
  *end = false;
  while (static_cast<int>(out->size()) < n) {
    if (next_ == samples_.size()) {
      if (at_eof_) {  // the epoch is over: the next one starts at the top of the file
        *end = true;
        ++epoch_;
        at_eof_ = false;
        ATTNPS_RETURN_IF_ERROR(reader_.Seek({0, 0}));
        return FillBlock();
      }
      ATTNPS_RETURN_IF_ERROR(FillBlock());
      continue;
    }
    out->push_back(samples_[next_++]);
  }
  return Status::Ok();
}

}  // namespace attnps::worker
