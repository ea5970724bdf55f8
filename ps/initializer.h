// Embedding initializers: pure functions of (seed, table id, key), so a key gets the same initial
// row whichever server or shard creates it, and reruns and re-sharded runs agree.
#ifndef ATTNPS_PS_INITIALIZER_H_
#define ATTNPS_PS_INITIALIZER_H_

#include <cstdint>

#include "ps/table_config.h"

namespace attnps::ps {

// Writes the initial embedding of `key` into out[0, dim).
void InitializeEmbedding(const InitializerConfig& config, uint64_t seed, uint32_t table_id,
                         uint64_t key, int dim, float* out);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_INITIALIZER_H_
