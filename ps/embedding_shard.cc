#include "ps/embedding_shard.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "ps/initializer.h"
#include "ps/sparse_optimizer.h"

namespace attnps::ps {
namespace {

constexpr int kMetaFloats = 2;    // last-update step as the bits of a uint64
constexpr int64_t kPrefetch = 8;  // keys looked up ahead in batched loops

}  // namespace

EmbeddingShard::EmbeddingShard(TableConfig config)
    : config_(std::move(config)),
      state_width_(StateWidth(config_.optimizer.kind, config_.dim)),
      stride_(config_.dim + state_width_ + kMetaFloats) {
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
    // Not value-initialized: pages become resident only as rows are written.
    chunks_.emplace_back(new float[static_cast<size_t>(stride_) << kChunkBits]);
  }
  return slot;
}

void EmbeddingShard::SetLastUpdate(float* row, uint64_t step) const {
  std::memcpy(row + config_.dim + state_width_, &step, sizeof(step));
}

uint64_t EmbeddingShard::GetLastUpdate(const float* row) const {
  uint64_t step;
  std::memcpy(&step, row + config_.dim + state_width_, sizeof(step));
  return step;
}

void EmbeddingShard::WriteInitialValue(uint64_t key, float* out) const {
  InitializeEmbedding(config_.initializer, config_.seed, config_.id, key, config_.dim, out);
}

float* EmbeddingShard::CreateRow(uint64_t key, uint64_t step) {
  const uint32_t slot = AllocateSlot();
  index_.emplace(key, slot);
  float* row = RowAt(slot);
  WriteInitialValue(key, row);
  InitOptimizerState(config_.optimizer, config_.dim, row + config_.dim);
  SetLastUpdate(row, step);
  return row;
}

void EmbeddingShard::Pull(const uint64_t* keys, int64_t n, uint64_t step, float* out) {
  const int dim = config_.dim;
  const size_t bytes = sizeof(float) * dim;
  for (int64_t i = 0; i < n; ++i) {
    if (i + kPrefetch < n) index_.prefetch(keys[i + kPrefetch]);
    float* dst = out + i * dim;
    auto it = index_.find(keys[i]);
    if (it != index_.end()) {
      std::memcpy(dst, RowAt(it->second), bytes);
      continue;
    }
    const uint32_t min_count = config_.admission.min_count;
    if (min_count > 1) {
      uint32_t& seen = pending_[keys[i]];
      if (++seen < min_count) {
        if (config_.admission.unadmitted_value == UnadmittedValue::kZeros) {
          std::memset(dst, 0, bytes);
        } else {
          WriteInitialValue(keys[i], dst);
        }
        continue;
      }
      pending_.erase(keys[i]);
    }
    std::memcpy(dst, CreateRow(keys[i], step), bytes);
  }
}

int64_t EmbeddingShard::Push(const uint64_t* keys, int64_t n, const float* grads, uint64_t step) {
  const int dim = config_.dim;
  int64_t updated = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i + kPrefetch < n) index_.prefetch(keys[i + kPrefetch]);
    auto it = index_.find(keys[i]);
    if (it == index_.end()) continue;
    float* row = RowAt(it->second);
    ApplySparseUpdate(config_.optimizer, dim, grads + i * dim, row, row + dim);
    SetLastUpdate(row, step);
    ++updated;
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
      if (GetLastUpdate(RowAt(slot)) < oldest_kept) expired.push_back(key);
    }
    for (uint64_t key : expired) Remove(key);
  }
  const uint64_t max_rows = config_.eviction.max_rows;
  if (max_rows > 0 && static_cast<uint64_t>(num_rows()) > max_rows) {
    std::vector<std::pair<uint64_t, uint64_t>> by_age;  // (last update, key)
    by_age.reserve(index_.size());
    for (const auto& [key, slot] : index_) by_age.emplace_back(GetLastUpdate(RowAt(slot)), key);
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
  const float* row = Find(key);
  return row ? GetLastUpdate(row) : 0;
}

void EmbeddingShard::ForEachRow(const std::function<void(uint64_t key, const float* value,
                                                         uint64_t last_update)>& visit) const {
  for (const auto& [key, slot] : index_) {
    const float* row = RowAt(slot);
    visit(key, row, GetLastUpdate(row));
  }
}

void EmbeddingShard::InsertRow(uint64_t key, const float* value, uint64_t last_update) {
  auto it = index_.find(key);
  const uint32_t slot = it != index_.end() ? it->second : AllocateSlot();
  if (it == index_.end()) index_.emplace(key, slot);
  pending_.erase(key);
  float* row = RowAt(slot);
  std::memcpy(row, value, sizeof(float) * value_width());
  SetLastUpdate(row, last_update);
}

}  // namespace attnps::ps
