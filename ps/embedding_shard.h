// EmbeddingShard: one shard's part of one embedding table.
//
// Rows live in a chunked slab of fixed-size rows [embedding (dim) | optimizer state], 64-byte
// aligned chunks, with each row's meta (the step of its last update, uint32) in a parallel array;
// a hash map (absl::flat_hash_map) maps key -> slot. Freed slots (eviction) are reused. Chunks are
// never moved, so row pointers stay valid until the row is evicted. Batched loops prefetch the
// hash slots and rows of keys ahead.
//
// Thread-safety: none. A shard is owned by exactly one shard thread (see ShardServer), which is
// what keeps locks off the hot path.
// Errors: Pull/Push cannot fail; InsertRow CHECKs the row width (storage validates before).
#ifndef ATTNPS_PS_EMBEDDING_SHARD_H_
#define ATTNPS_PS_EMBEDDING_SHARD_H_

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ps/table_config.h"

namespace attnps::ps {

class EmbeddingShard {
 public:
  explicit EmbeddingShard(TableConfig config);

  const TableConfig& config() const { return config_; }
  int dim() const { return config_.dim; }
  int state_width() const { return state_width_; }
  // Floats of embedding + optimizer state (what storage saves besides the meta).
  int value_width() const { return config_.dim + state_width_; }
  int64_t num_rows() const { return static_cast<int64_t>(index_.size()); }
  // Keys seen fewer than min_count times (admission counters).
  int64_t num_pending() const { return static_cast<int64_t>(pending_.size()); }

  // Writes the embeddings of keys[0, n) to out[n * dim]. A key without a row is counted toward
  // admission; it gets a row (initialized from (seed, table, key), last update = step) when it
  // reaches min_count, otherwise the unadmitted value is returned and nothing is stored.
  void Pull(const uint64_t* keys, int64_t n, uint64_t step, float* out);

  // Applies grads[n * dim] to the rows of keys[0, n) with the sparse optimizer (at global step
  // `step`: Adam's bias correction) and stamps them with `step`. Keys without a row (not admitted)
  // are skipped. Returns the rows updated.
  int64_t Push(const uint64_t* keys, int64_t n, const float* grads, uint64_t step);

  // Steps are stored as uint32 per row: a step >= 2^32 CHECK-fails.
  // Evicts rows not updated for more than ttl_steps before current_step (if ttl_steps > 0), then
  // the least recently updated rows beyond max_rows (if max_rows > 0). Returns the rows evicted.
  int64_t Evict(uint64_t current_step);

  // The row of `key` ([embedding | state], value_width floats) or null.
  const float* Find(uint64_t key) const;
  uint64_t LastUpdate(uint64_t key) const;  // 0 when absent

  // Storage: visit every row; insert a row as saved (replacing an existing one).
  void ForEachRow(const std::function<void(uint64_t key, const float* value, uint64_t last_update)>&
                      visit) const;
  void InsertRow(uint64_t key, const float* value, uint64_t last_update);

 private:
  static constexpr int kChunkBits = 16;  // rows per slab chunk: 65536
  struct FreeDeleter {
    void operator()(float* p) const;
  };
  struct Chunk {
    std::unique_ptr<float, FreeDeleter> rows;  // [rows per chunk, stride], not zeroed
    std::unique_ptr<uint32_t[]> last_update;   // [rows per chunk]
  };

  float* RowAt(uint32_t slot) const {
    return chunks_[slot >> kChunkBits].rows.get() +
           static_cast<size_t>(slot & ((1u << kChunkBits) - 1)) * stride_;
  }
  uint32_t& LastUpdateAt(uint32_t slot) const {
    return chunks_[slot >> kChunkBits].last_update[slot & ((1u << kChunkBits) - 1)];
  }
  uint32_t AllocateSlot();
  uint32_t CreateRow(uint64_t key, uint64_t step);
  // The row of keys[i] for a pull: existing, created on admission, or null after writing the
  // unadmitted value to `out`.
  const float* RowForPull(uint64_t key, uint64_t step, float* out);
  // Pull with the row width fixed at compile time (kDim > 0) or read from the config (0).
  template <int kDim>
  void PullRows(const uint64_t* keys, int64_t n, uint64_t step, float* out);
  void WriteInitialValue(uint64_t key, float* out) const;
  void Remove(uint64_t key);

  TableConfig config_;
  int state_width_;
  int stride_;  // floats per slab row: dim + state
  std::vector<Chunk> chunks_;
  uint32_t next_slot_ = 0;
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_map<uint64_t, uint32_t> index_;
  absl::flat_hash_map<uint64_t, uint32_t> pending_;  // admission counts
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_EMBEDDING_SHARD_H_
