// Checkpoint files of a training job (the sparse shards are written by the servers):
//
//   <dir>/step-<N>/server-<r>/shard-<j>/   RocksDB, one per server shard (ps/shard_storage.h)
//   <dir>/step-<N>/dense.bin               dense weights, buffers, optimizer state (worker 0)
//   <dir>/step-<N>/worker-<i>.pos          worker i's reader position
//   <dir>/step-<N>/MANIFEST                written last: step, config, checksums of the above
//   <dir>/LATEST                           "step-<N>", switched atomically after the manifest
//
// Every file is written to a temporary name, fsynced and renamed, so a crash at any moment leaves
// either the previous checkpoint (LATEST unchanged) or the new one complete. Reading verifies
// sizes and CRC32s and refuses a corrupted or partial checkpoint with a message naming the file.
// Thread-safety: pure functions over files.
#ifndef ATTNPS_WORKER_CHECKPOINT_H_
#define ATTNPS_WORKER_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ops/optimizer.h"
#include "ops/status.h"
#include "ops/tensor.h"
#include "proto/job_config.pb.h"
#include "worker/sample_stream.h"

namespace attnps::worker {

std::string StepDirName(int64_t step);  // "step-<N>"

// Writes `bytes` to path via path.tmp + fsync + rename (+ fsync of the directory).
Status WriteFileAtomically(const std::string& path, const std::string& bytes);
Status ReadFile(const std::string& path, std::string* bytes);
uint32_t Crc32(const std::string& bytes);

// The dense state: named float blocks (params, buffers, optimizer slots) and the optimizer's
// step count. Reading checks names and sizes against the live tensors, then copies into them.
struct DenseBlock {
  std::string name;
  Tensor tensor;  // shares the live buffer
};
Status WriteDense(const std::string& path, const std::vector<DenseBlock>& blocks,
                  int64_t optimizer_steps);
Status ReadDense(const std::string& path, const std::vector<DenseBlock>& blocks,
                 int64_t* optimizer_steps);

Status WritePosition(const std::string& path, const StreamPosition& position);
Status ReadPosition(const std::string& path, StreamPosition* position);

// Lists the manifest's files with their sizes and CRC32s, then writes MANIFEST.
Status WriteManifest(const std::string& step_dir, const std::vector<std::string>& files,
                     config::CheckpointManifest manifest);
// Reads MANIFEST and verifies every file it lists.
Status ReadManifest(const std::string& step_dir, config::CheckpointManifest* manifest);

// LATEST: the newest complete checkpoint's step directory name.
Status PublishLatest(const std::string& dir, const std::string& step_dir_name);
// NotFound when there is no LATEST.
Status ReadLatest(const std::string& dir, std::string* step_dir);
// Removes all but the newest keep_last step directories (0 = keep all), never LATEST's.
Status PruneCheckpoints(const std::string& dir, int keep_last);

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_CHECKPOINT_H_
