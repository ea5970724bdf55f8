#include "ps/embedding_shard.h"

#include <glog/logging.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "ps/initializer.h"
#include "ps/sparse_optimizer.h"

namespace attnps::ps {
namespace {

constexpr int64_t kHashAhead = 32;  // keys whose hash slots are prefetched ahead
constexpr int64_t kRowAhead = 16;   // keys whose rows are prefetched ahead of their use
constexpr size_t kAlignment = 64;
constexpr size_t kHugePage = size_t{2} << 20;

uint32_t StepToMeta(uint64_t step) {
  CHECK_LT(step, uint64_t{1} << 32) << "global step beyond 2^32";
  return static_cast<uint32_t>(step);
}

template <int kWrite>  // a constant, as __builtin_prefetch needs, whatever gets inlined
void PrefetchRange(const float* p, int floats) {
  const char* begin = reinterpret_cast<const char*>(p);
  const char* end = reinterpret_cast<const char*>(p + floats);
  for (const char* c = begin; c < end; c += kAlignment) __builtin_prefetch(c, kWrite);
  __builtin_prefetch(end - 1, kWrite);
}

}  // namespace

void EmbeddingShard::FreeDeleter::operator()(float* p) const { std::free(p); }

EmbeddingShard::EmbeddingShard(TableConfig config)
    : config_(std::move(config)),
      state_width_(StateWidth(config_.optimizer.kind, config_.dim)),
      stride_(config_.dim + state_width_) {
  CHECK_GT(config_.dim, 0) << "table " << config_.name << ": dim must be positive";
}

uint32_t EmbeddingShard::AllocateSlot() {
  if (!free_slots_.empty()) {
    const uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  const uint32_t slot = next_slot_++;
  CHECK_NE(next_slot_, 0u) << "table " << config_.name << ": more than 2^32 rows in one shard";
  if ((slot >> kChunkBits) >= chunks_.size()) {
    // Not zeroed: pages become resident only as rows are written. Huge pages where the kernel
    // grants them on request: fewer TLB misses on random row access.
    const size_t used = sizeof(float) * stride_ << kChunkBits;
    const size_t bytes = (used + kHugePage - 1) / kHugePage * kHugePage;
    float* rows = static_cast<float*>(std::aligned_alloc(kHugePage, bytes));
    CHECK(rows != nullptr) << "table " << config_.name << ": out of memory for " << bytes
                           << " bytes";
    madvise(rows, bytes, MADV_HUGEPAGE);  // advisory: a refusal only costs speed
    chunks_.push_back(Chunk{std::unique_ptr<float, FreeDeleter>(rows),
                            std::unique_ptr<uint32_t[]>(new uint32_t[size_t{1} << kChunkBits])});
  }
  return slot;
}

void EmbeddingShard::WriteInitialValue(uint64_t key, float* out) const {
  InitializeEmbedding(config_.initializer, config_.seed, config_.id, key, config_.dim, out);
}

uint32_t EmbeddingShard::CreateRow(uint64_t key, uint64_t step) {
  const uint32_t slot = AllocateSlot();
  index_.emplace(key, slot);
  float* row = RowAt(slot);
  WriteInitialValue(key, row);
  InitOptimizerState(config_.optimizer, config_.dim, row + config_.dim);
  LastUpdateAt(slot) = StepToMeta(step);
  return slot;
}

const float* EmbeddingShard::RowForPull(uint64_t key, uint64_t step, float* out) {
  auto it = index_.find(key);
  if (it != index_.end()) return RowAt(it->second);
  const uint32_t min_count = config_.admission.min_count;
  if (min_count > 1) {
    uint32_t& seen = pending_[key];
    if (++seen < min_count) {
      if (config_.admission.unadmitted_value == UnadmittedValue::kZeros) {
        std::memset(out, 0, sizeof(float) * config_.dim);
      } else {
        WriteInitialValue(key, out);
      }
      return nullptr;
    }
    pending_.erase(key);
  }
  return RowAt(CreateRow(key, step));
}

template <int kDim>
void EmbeddingShard::PullRows(const uint64_t* keys, int64_t n, uint64_t step, float* out) {
  const int dim = kDim > 0 ? kDim : config_.dim;
  const size_t row_bytes = sizeof(float) * dim;
  const float* ahead[kRowAhead];  // rows looked up, prefetched, copied kRowAhead keys later
  for (int64_t i = 0; i < n + kRowAhead; ++i) {
    const int64_t j = i - kRowAhead;  // consume slot j % kRowAhead before key i reuses it
    if (j >= 0 && ahead[j % kRowAhead] != nullptr) {
      std::memcpy(out + j * dim, ahead[j % kRowAhead], row_bytes);
    }
    if (i >= n) continue;
    if (i + kHashAhead < n) index_.prefetch(keys[i + kHashAhead]);
    const auto it = index_.find(keys[i]);
    const float* row =
        it != index_.end() ? RowAt(it->second) : RowForPull(keys[i], step, out + i * dim);
    if (row != nullptr) PrefetchRange<0>(row, dim);
    ahead[i % kRowAhead] = row;
  }
}

void EmbeddingShard::Pull(const uint64_t* keys, int64_t n, uint64_t step, float* out) {
  switch (config_.dim) {  // the common widths get fixed-size row copies
    case 8:
      return PullRows<8>(keys, n, step, out);
    case 16:
      return PullRows<16>(keys, n, step, out);
    case 32:
      return PullRows<32>(keys, n, step, out);
    case 64:
      return PullRows<64>(keys, n, step, out);
    default:
      return PullRows<0>(keys, n, step, out);
  }
}

int64_t EmbeddingShard::Push(const uint64_t* keys, int64_t n, const float* grads, uint64_t step) {
  const int dim = config_.dim;
  const uint32_t meta = StepToMeta(step);
  const SparseStep at = PrepareSparseStep(config_.optimizer, step);
  int64_t updated = 0;
  uint32_t ahead[kRowAhead];
  constexpr uint32_t kAbsent = ~0u;
  for (int64_t i = 0; i < n + kRowAhead; ++i) {
    const int64_t j = i - kRowAhead;  // update key j before key i reuses its slot
    if (j >= 0 && ahead[j % kRowAhead] != kAbsent) {
      const uint32_t slot = ahead[j % kRowAhead];
      float* row = RowAt(slot);
      ApplySparseUpdate(config_.optimizer, at, dim, grads + j * dim, row, row + dim);
      LastUpdateAt(slot) = meta;
      ++updated;
    }
    if (i >= n) continue;
    if (i + kHashAhead < n) index_.prefetch(keys[i + kHashAhead]);
    auto it = index_.find(keys[i]);
    ahead[i % kRowAhead] = it == index_.end() ? kAbsent : it->second;
    if (it != index_.end()) PrefetchRange<1>(RowAt(it->second), stride_);
  }
  return updated;
}

void EmbeddingShard::Remove(uint64_t key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  free_slots_.push_back(it->second);
  index_.erase(it);
}

int64_t EmbeddingShard::Evict(uint64_t current_step) {
  const int64_t before = num_rows();
  const uint64_t ttl = config_.eviction.ttl_steps;
  if (ttl > 0 && current_step > ttl) {
    const uint64_t oldest_kept = current_step - ttl;
    std::vector<uint64_t> expired;
    for (const auto& [key, slot] : index_) {
      if (LastUpdateAt(slot) < oldest_kept) expired.push_back(key);
    }
    for (uint64_t key : expired) Remove(key);
  }
  const uint64_t max_rows = config_.eviction.max_rows;
  if (max_rows > 0 && static_cast<uint64_t>(num_rows()) > max_rows) {
    std::vector<std::pair<uint64_t, uint64_t>> by_age;  // (last update, key)
    by_age.reserve(index_.size());
    for (const auto& [key, slot] : index_) by_age.emplace_back(LastUpdateAt(slot), key);
    const size_t excess = by_age.size() - max_rows;
    std::nth_element(by_age.begin(), by_age.begin() + excess, by_age.end());
    for (size_t i = 0; i < excess; ++i) Remove(by_age[i].second);
  }
  return before - num_rows();
}

const float* EmbeddingShard::Find(uint64_t key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : RowAt(it->second);
}

uint64_t EmbeddingShard::LastUpdate(uint64_t key) const {
  auto it = index_.find(key);
  return it == index_.end() ? 0 : LastUpdateAt(it->second);
}

void EmbeddingShard::ForEachRow(const std::function<void(uint64_t key, const float* value,
                                                         uint64_t last_update)>& visit) const {
  for (const auto& [key, slot] : index_) visit(key, RowAt(slot), LastUpdateAt(slot));
}

void EmbeddingShard::InsertRow(uint64_t key, const float* value, uint64_t last_update) {
  auto it = index_.find(key);
  const uint32_t slot = it != index_.end() ? it->second : AllocateSlot();
  if (it == index_.end()) index_.emplace(key, slot);
  pending_.erase(key);
  std::memcpy(RowAt(slot), value, sizeof(float) * value_width());
  LastUpdateAt(slot) = StepToMeta(last_update);
}

}  // namespace attnps::ps
