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
  path_ = path;
  options_ = options;
  ATTNPS_RETURN_IF_ERROR(reader_.Open(path, options));
  return Seek(StreamPosition{});
}

StreamPosition RemapPositions(const std::vector<StreamPosition>& old_positions, int32_t epoch,
                              int index, int new_workers) {
  StreamPosition p;
  p.epoch = epoch;
  p.remapped = true;
  p.remap.old_workers = static_cast<int>(old_positions.size());
  p.remap.new_workers = new_workers;
  p.remap.index = index;
  for (const StreamPosition& old : old_positions) {
    // An old worker that finished the epoch has nothing left: an empty remainder at end of file
    // is expressed by skipping it (its position is at the start of the next epoch).
    if (old.epoch > epoch) {
      p.remap.rest.push_back({~uint64_t{0}, 0, 0});
    } else {
      p.remap.rest.push_back({old.block_offset, old.block_line, old.taken});
    }
  }
  return p;
}

StreamPosition SampleStream::position() const {
  StreamPosition p{epoch_, block_start_.offset, block_start_.line, static_cast<int64_t>(next_)};
  if (remapped_) {
    p.remapped = true;
    p.remap = remap_;
    const StreamPosition now = old_ ? old_->position() : StreamPosition{};
    if (old_ && !p.remap.rest.empty() && now.epoch == epoch_) {
      p.remap.rest[0] = {now.block_offset, now.block_line, now.taken};
    }
  }
  return p;
}

Status SampleStream::OpenOldStream() {
  while (!remap_.rest.empty() && remap_.rest[0].block_offset == ~uint64_t{0}) {
    remap_.rest.erase(remap_.rest.begin());  // that old worker had finished the epoch
    ++remap_.current;
  }
  old_.reset();
  if (remap_.rest.empty()) return Status::Ok();
  data::CtrReaderOptions options = options_;
  options.worker_index = remap_.current;
  options.num_workers = remap_.old_workers;
  auto old = std::make_unique<SampleStream>();
  ATTNPS_RETURN_IF_ERROR(old->Open(path_, options, block_, shuffle_, seed_));
  const BlockPosition& at = remap_.rest[0];
  ATTNPS_RETURN_IF_ERROR(old->Seek({epoch_, at.block_offset, at.block_line, at.taken}));
  old_ = std::move(old);
  return Status::Ok();
}

Status SampleStream::ReadRemapped(data::CtrSample* sample, bool* end) {
  std::vector<data::CtrSample> one;
  for (;;) {
    *end = false;
    if (!old_) {
      *end = true;
      return Status::Ok();
    }
    bool old_end = false;
    ATTNPS_RETURN_IF_ERROR(old_->Read(1, &one, &old_end));
    if (!one.empty()) {
      const bool mine =
          remap_.counter++ % remap_.new_workers == static_cast<uint64_t>(remap_.index);
      if (mine) {
        *sample = std::move(one[0]);
        return Status::Ok();
      }
      continue;
    }
    if (old_end) {  // this old stream's epoch is over: the next one
      remap_.rest.erase(remap_.rest.begin());
      ++remap_.current;
      ATTNPS_RETURN_IF_ERROR(OpenOldStream());
    }
  }
}

Status SampleStream::Seek(const StreamPosition& position) {
  remapped_ = position.remapped;
  if (remapped_) {
    if (position.remap.new_workers != options_.num_workers ||
        position.remap.index != options_.worker_index) {
      return Status::InvalidArgument(
          path() + ": the resume position continues an epoch with " +
          std::to_string(position.remap.new_workers) + " workers; resume with " +
          std::to_string(position.remap.new_workers) + " workers until epoch " +
          std::to_string(position.epoch + 1) + " ends");
    }
    epoch_ = position.epoch;
    remap_ = position.remap;
    return OpenOldStream();
  }
  old_.reset();
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
  while (remapped_ && static_cast<int>(out->size()) < n) {
    data::CtrSample s;
    ATTNPS_RETURN_IF_ERROR(ReadRemapped(&s, end));
    if (!*end) {
      out->push_back(std::move(s));
      continue;
    }
    // The remapped epoch is over: the next one is this worker's own partition.
    remapped_ = false;
    remap_ = StreamRemap();
    ++epoch_;
    at_eof_ = false;
    ATTNPS_RETURN_IF_ERROR(reader_.Seek({0, 0}));
    return FillBlock();
  }
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
