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
// A saved shard directory holds only files whose bytes are fixed once SaveShard returns:
//   CURRENT, IDENTITY, MANIFEST-<n>, OPTIONS-<n> and <n>.sst (the rows).
// No info LOG (RocksDB's logging is discarded), no LOCK and no WAL (the WAL is off; the LOCK and
// the empty WAL files are removed after Close). Loading opens the database read-only and creates,
// changes or removes no file in it.
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

// Writes every row of `tables` into a new database at `dir` (which must not exist yet), flushed,
// synced and closed on return. Errors: InvalidArgument when `dir` exists; IoError naming `dir` and
// the cause (e.g. RocksDB's "No space left on device") on any write failure, a full disk included,
// after which `dir` is removed and no work of its database is left running.
Status SaveShard(const std::string& dir, const std::vector<const EmbeddingShard*>& tables);

// Reads the databases in `dirs` (all shards of a checkpoint, any count) into `shards`, where
// shards[j] lists shard j's tables (the same table ids in every j). Each row goes to the table of
// its id in shards[route(key)], or nowhere when route returns -1; a null route sends every row to
// shards[0]. Rows of tables not listed are ignored. Table dims and optimizers must match the saved
// ones. This is how a checkpoint loads into a different number of shards or servers.
Status LoadShards(const std::vector<std::string>& dirs, const std::function<int(uint64_t)>& route,
                  const std::vector<std::vector<EmbeddingShard*>>& shards);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_SHARD_STORAGE_H_
