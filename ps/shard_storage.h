// Shard storage: a shard's rows of every table in one RocksDB database (a directory).
//
// Records (keys big-endian so a table's rows are contiguous):
//   'm' table_id            -> table metadata: format version, dim, state width, optimizer,
//                              row count and the sum of the rows' CRCs, name; CRC32
//   'r' table_id key        -> format version, last-update step, [embedding | optimizer state]
//                              floats; CRC32 over key and value
// Loading verifies RocksDB's block checksums first (a damaged or truncated SST file is refused with
// its path), then every record's CRC, and the per-table row counts and CRC sums (a lost or
// altered row is refused). Nothing is loaded into the tables unless the whole database verifies.
//
// Thread-safety: the functions touch only their arguments; a table must not be used concurrently.
#ifndef ATTNPS_PS_SHARD_STORAGE_H_
#define ATTNPS_PS_SHARD_STORAGE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ops/status.h"
#include "ps/embedding_shard.h"

namespace attnps::ps {

constexpr uint8_t kShardFormatVersion = 1;

// Writes every row of `tables` into a new database at `dir` (which must not exist yet), flushed
// and closed on return.
Status SaveShard(const std::string& dir, const std::vector<const EmbeddingShard*>& tables);

// Reads the databases in `dirs` (all shards of a checkpoint, any count) and inserts each row whose
// key `keep` accepts into the table of the same id in `tables`; rows of tables not in `tables`
// are ignored. `keep` picks this shard's keys when the shard count changed; pass nullptr to keep
// all. Table dims and optimizers must match the saved ones.
Status LoadShards(const std::vector<std::string>& dirs, const std::function<bool(uint64_t)>& keep,
                  const std::vector<EmbeddingShard*>& tables);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_SHARD_STORAGE_H_
