// Checkpoint files of a training job (the sparse shards are written by the servers):
//
//   <dir>/LOCK                             held (flock) by the training job that writes <dir>
//   <dir>/LATEST                           "step-<N>", switched atomically after the manifest
//   <dir>/step-<N>/server-<r>/shard-<j>/   RocksDB, one per server shard (ps/shard_storage.h)
//   <dir>/step-<N>/dense.bin               dense weights, buffers, optimizer state (worker 0)
//   <dir>/step-<N>/worker-<i>.pos          worker i's reader position
//   <dir>/step-<N>/MANIFEST                written last: step, config, size and XXH64 of every
//                                          other file of the step directory; framed and
//                                          checksummed (CRC32) itself
//
// Every file is written to a temporary name, fsynced and renamed, so a crash at any moment leaves
// either the previous checkpoint (LATEST unchanged) or the new one complete. Verification
// (VerifyCheckpoint) refuses a step directory with any file missing, extra, truncated, altered or
// copied from another step, naming the file. docs/checkpoints.md describes the format.
// Thread-safety: pure functions over files; DirectoryLock is per process.
#ifndef ATTNPS_WORKER_CHECKPOINT_H_
#define ATTNPS_WORKER_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/optimizer.h"
#include "ops/status.h"
#include "ops/tensor.h"
#include "proto/job_config.pb.h"
#include "worker/sample_stream.h"

namespace attnps::worker {

std::string StepDirName(int64_t step);  // "step-<N>"

// Writes `bytes` to path via path.tmp + fsync + rename (+ fsync of the directory). IoError naming
// the path and the cause (e.g. "No space left on device"); the .tmp file is removed on failure.
Status WriteFileAtomically(const std::string& path, const std::string& bytes);
// NotFound when the path does not exist, InvalidArgument when it is not a regular file.
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

// Lists every file under step_dir (recursively, MANIFEST excepted) with its size and XXH64 into
// `manifest`, then writes MANIFEST (framed: magic, length, payload, CRC32).
Status WriteManifest(const std::string& step_dir, config::CheckpointManifest manifest);
// Reads MANIFEST and verifies its own framing and checksum and that it belongs to step_dir (its
// step matches the directory name). Does not read the other files: see VerifyStepFiles.
// NotFound when there is no MANIFEST (an incomplete checkpoint); Corruption otherwise.
Status ReadManifest(const std::string& step_dir, config::CheckpointManifest* manifest);
// Verifies that step_dir holds exactly the manifest's files (no file or directory missing or
// extra) with their sizes and XXH64 hashes. Corruption naming the first offending file.
Status VerifyStepFiles(const std::string& step_dir, const config::CheckpointManifest& manifest);
// ReadManifest + VerifyStepFiles.
Status VerifyCheckpoint(const std::string& step_dir, config::CheckpointManifest* manifest);

// LATEST: the newest complete checkpoint's step directory name.
Status PublishLatest(const std::string& dir, const std::string& step_dir_name);
// *step_dir = <dir>/step-<N> from LATEST, which must hold exactly "step-<N>" (a trailing newline,
// CR or spaces allowed). NotFound when there is no LATEST; Corruption for anything else.
Status ReadLatest(const std::string& dir, std::string* step_dir);
// Removes all but the newest keep_last step directories up to LATEST's (0 = keep all); steps
// newer than LATEST's (left by a resume from an older step) are kept.
Status PruneCheckpoints(const std::string& dir, int keep_last);

// Whether dir holds a complete checkpoint (LATEST, or a step directory with a MANIFEST); if so
// *what describes it for an error message.
bool HoldsCheckpoints(const std::string& dir, std::string* what);
// Removes LATEST and every step directory of dir (an explicit overwrite).
Status RemoveCheckpoints(const std::string& dir);

// An exclusive lock (flock) on <dir>/LOCK for the life of the object; the file records the holder
// ("pid <p> host <h>"). The kernel releases it when the process ends, however it ends.
class DirectoryLock {
 public:
  // Creates dir if needed. InvalidArgument naming dir and the holder when another process holds
  // the lock; IoError when dir cannot be created or written.
  static Status Acquire(const std::string& dir, std::unique_ptr<DirectoryLock>* out);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  explicit DirectoryLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_CHECKPOINT_H_
