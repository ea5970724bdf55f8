// Key placement: key -> server by one hash, key -> shard thread within a server by a second,
// independent hash (so that the keys of one server spread evenly over its shards).
#ifndef ATTNPS_PS_SHARDING_H_
#define ATTNPS_PS_SHARDING_H_

#include <cstdint>

#include "ops/random.h"

namespace attnps::ps {

inline int ServerOf(uint64_t key, int num_servers) {
  return static_cast<int>(Mix64(key ^ 0x5EB5EB5EB5EB5EB5ull) % static_cast<uint64_t>(num_servers));
}

inline int ShardOf(uint64_t key, int num_shards) {
  return static_cast<int>(Mix64(key + 0x2545F4914F6CDD1Dull) % static_cast<uint64_t>(num_shards));
}

}  // namespace attnps::ps

#endif  // ATTNPS_PS_SHARDING_H_
