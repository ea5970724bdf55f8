// ShardServer: one server process's part of every embedding table, split over S shard threads.
//
// Key -> shard by ShardOf (independent of the key -> server hash). Calls are serialized; a call
// splits its keys by shard and runs the parts in parallel, one on the calling thread and the
// others on the shards' threads, and returns when all are done. A shard is touched by one thread
// at a time, so rows are read and written without locks.
//
// Thread-safety: all public methods may be called from several threads at once; calls touching
// the same keys are applied in the order the shard threads receive them.
// Errors: unknown table ids CHECK-fail here (the request decoder validates them first);
// storage failures return Status.
#ifndef ATTNPS_PS_SHARD_SERVER_H_
#define ATTNPS_PS_SHARD_SERVER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ops/status.h"
#include "ps/embedding_shard.h"
#include "ps/table_config.h"

namespace attnps::ps {

class ShardServer {
 public:
  ShardServer(const std::vector<TableConfig>& tables, int num_shards);
  ~ShardServer();
  ShardServer(const ShardServer&) = delete;
  ShardServer& operator=(const ShardServer&) = delete;

  int num_shards() const { return static_cast<int>(shards_.size()); }
  bool HasTable(uint32_t table_id) const { return dims_.count(table_id) > 0; }
  int Dim(uint32_t table_id) const;  // CHECKs the id
  std::vector<uint32_t> TableIds() const;
  int64_t NumRows(uint32_t table_id);

  // Gathers the rows of keys[0, n) into out[n * dim] (see EmbeddingShard::Pull).
  void Pull(uint32_t table_id, const uint64_t* keys, int64_t n, uint64_t step, float* out);
  // Applies grads[n * dim] (see EmbeddingShard::Push); returns the rows updated.
  int64_t Push(uint32_t table_id, const uint64_t* keys, int64_t n, const float* grads,
               uint64_t step);
  // Runs each table's eviction on every shard; returns the rows evicted.
  int64_t Evict(uint64_t current_step);

  // Runs eviction at `current_step`, then writes shard j of every table to <dir>/shard-<j>
  // (a RocksDB database each).
  Status Save(const std::string& dir, uint64_t current_step);
  // Loads the rows that belong to this server (`keep`, or all when null) from shard databases
  // written by any number of servers and shards, re-hashing keys onto this server's shards.
  Status Load(const std::vector<std::string>& shard_dirs,
              const std::function<bool(uint64_t)>& keep);

 private:
  struct Shard;
  // Runs task(shard) for every listed shard (the last on the caller) and waits for all.
  // The caller holds call_mu_.
  void RunOnShards(const std::vector<int>& shards, const std::function<void(int shard)>& task);
  // Groups keys by shard (offsets_, order_) and returns them grouped (`keys` itself for one shard).
  const uint64_t* Partition(const uint64_t* keys, int64_t n);
  std::vector<int> NonEmptyShards() const;
  std::vector<int> AllShards() const;

  std::map<uint32_t, int> dims_;
  std::vector<std::unique_ptr<Shard>> shards_;
  // One call at a time; a batched call's partition scratch lives here.
  std::mutex call_mu_;
  std::vector<int64_t> offsets_;      // [S + 1] start of each shard's part in order_
  std::vector<int64_t> order_;        // positions of the keys, grouped by shard
  std::vector<uint64_t> shard_keys_;  // keys grouped by shard
  std::vector<float> shard_values_;   // rows grouped by shard
  std::vector<int> partition_owner_;  // shard of each key
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_SHARD_SERVER_H_
