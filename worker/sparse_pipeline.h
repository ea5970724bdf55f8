// SparsePipeline: a worker's embedding traffic for successive training steps under a staleness
// bound k.
//
// The rows a step computes with reflect every push of this worker's steps up to t - k - 1:
//   k = 0  the pull of step t is issued after step t-1's push is acknowledged (strict; one worker
//          with a fixed seed is deterministic);
//   k >= 1 the pulls of up to k later steps are issued while step t computes, overlapping
//          communication with compute; their rows may miss the last k pushes.
// Other workers' pushes arrive asynchronously in any case (the servers apply them as they come).
//
// Usage per step: Submit the batches ahead (the trainer keeps k + 1 submitted), Next to get the
// oldest with its rows, fill its grads, Push. Drain before a checkpoint or the end.
// Ownership: batches move in and out; the client must outlive the pipeline.
// Thread-safety: one thread (the trainer's). Errors: the first failed pull/push is returned.
#ifndef ATTNPS_WORKER_SPARSE_PIPELINE_H_
#define ATTNPS_WORKER_SPARSE_PIPELINE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "ops/status.h"
#include "ps/ps_client.h"

namespace attnps::worker {

struct SparseTable {
  uint32_t id = 0;
  int dim = 0;
};

// One step's embedding traffic, per table: the unique keys, their pulled rows [keys x dim] and
// the gradients to push [keys x dim].
struct SparseBatch {
  virtual ~SparseBatch() = default;  // trainers carry their own data in a derived batch

  uint64_t step = 0;
  uint64_t lookups = 0;  // key occurrences before deduplication, all tables (0: not counted)
  std::vector<std::vector<uint64_t>> keys;
  std::vector<std::vector<float>> rows;
  std::vector<std::vector<float>> grads;
};

class SparsePipeline {
 public:
  SparsePipeline(ps::PsClient* client, std::vector<SparseTable> tables, int staleness);
  ~SparsePipeline();

  // Queues a batch (steps in order); its pulls start as soon as the bound allows.
  void Submit(std::unique_ptr<SparseBatch> batch);
  // The oldest submitted batch, its rows pulled. CHECKs that one was submitted.
  Status Next(std::unique_ptr<SparseBatch>* batch);
  // Sends batch->grads (asynchronously).
  Status Push(std::unique_ptr<SparseBatch> batch);
  // Waits for every push in flight.
  Status Drain();

  int staleness() const { return staleness_; }
  int pulls_in_flight() const { return static_cast<int>(pulling_.size()); }
  size_t submitted() const { return waiting_.size() + pulling_.size(); }

 private:
  struct InFlight {
    std::unique_ptr<SparseBatch> batch;
    int64_t index = 0;  // 0-based position in the step sequence
    std::vector<ps::PsClient::Handle> handles;
  };
  // Issues the pulls the bound allows: batch i once pushes [0, i - k) are acknowledged.
  void IssuePulls();
  // Waits for the oldest push in flight.
  Status AckOldestPush();

  ps::PsClient* client_;
  std::vector<SparseTable> tables_;
  int staleness_;
  int64_t next_index_ = 0;        // of the next Submit
  int64_t acked_ = 0;             // batches whose pushes are acknowledged (a prefix)
  std::deque<InFlight> waiting_;  // submitted, pull not yet allowed
  std::deque<InFlight> pulling_;  // pulls in flight
  std::deque<InFlight> pushing_;  // pushes in flight (batch kept until acknowledged)
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_SPARSE_PIPELINE_H_
