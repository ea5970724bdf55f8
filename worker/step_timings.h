// StepTimings: where a worker's training steps spend their time, and the embedding bytes they
// move, accumulated over steps (this worker's wall time, steady clock).
//
// Phases: data (waiting for the reader, indexing, submitting pulls), pull wait (the step's rows
// not arrived yet), gather (the pulled rows into model inputs), compute (the model: forward, loss,
// backward), scatter (input gradients onto the unique keys), push (sending the
// gradients; waits when the staleness bound holds a push), allreduce (the step's flags and the
// dense gradients), dense update (clipping and the dense optimizer). Bytes: keys and rows pulled,
// keys and gradients pushed (payload, not framing). Traffic: this worker's whole frames to and
// from each server (ps::PsClient::Traffic, header and payload), the dense allreduce's payload,
// and the unique-key ratio (unique keys over key lookups, all tables: 1 when no key repeats in a
// batch, low when a hot key does). A skewed shard shows as a server's bytes above the mean.
// Thread-safety: one thread.
#ifndef ATTNPS_WORKER_STEP_TIMINGS_H_
#define ATTNPS_WORKER_STEP_TIMINGS_H_

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ps/wire.h"

namespace attnps::worker {

enum class StepPhase {
  kData,
  kPullWait,
  kGather,
  kCompute,
  kScatter,
  kPush,
  kAllreduce,
  kDenseUpdate
};
inline constexpr int kNumStepPhases = 8;

class StepTimings {
 public:
  void Add(StepPhase phase, double seconds) { seconds_[static_cast<int>(phase)] += seconds; }
  void AddBytes(uint64_t pulled, uint64_t pushed) {
    pulled_ += pulled;
    pushed_ += pushed;
  }
  // traffic: per server, this step's share (a difference of two ps::PsClient::Traffic calls).
  void AddTraffic(const std::vector<ps::PeerTraffic>& traffic, uint64_t allreduce_bytes);
  void AddKeys(uint64_t unique, uint64_t lookups) {
    unique_keys_ += unique;
    lookups_ += lookups;
  }
  void EndStep(int64_t samples) {
    ++steps_;
    samples_ += samples;
  }
  int64_t steps() const { return steps_; }
  int64_t samples() const { return samples_; }
  // The phases' sum: the steps' time.
  double seconds() const;
  void Reset() { *this = StepTimings(); }

  // Per step: "data 0.12 pull 0.30 gather 0.20 compute 2.10 scatter 0.15 push 0.05 allreduce
  // 0.41 dense 0.08 ms, 84.0 KB pulled 80.1 KB pushed; net 90.2 KB out 86.3 KB in over 2
  // servers, busiest s1 1.04x mean, unique keys 0.62"; "" before the first step.
  std::string Summary() const;
  // Per step, for the metrics record: step_ms_data, step_ms_pull_wait, step_ms_gather,
  // step_ms_compute, step_ms_scatter, step_ms_push, step_ms_allreduce, step_ms_dense_update,
  // pulled_bytes, pushed_bytes, unique_key_ratio, allreduce_bytes, sent_bytes, received_bytes,
  // sent_messages, received_messages, and per server s: s<s>_sent_bytes, s<s>_received_bytes,
  // s<s>_sent_messages, s<s>_received_messages.
  std::vector<std::pair<std::string, double>> Fields() const;

 private:
  std::array<double, kNumStepPhases> seconds_{};
  uint64_t pulled_ = 0, pushed_ = 0;
  std::vector<ps::PeerTraffic> traffic_;  // per server
  uint64_t allreduce_bytes_ = 0, unique_keys_ = 0, lookups_ = 0;
  int64_t steps_ = 0, samples_ = 0;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_STEP_TIMINGS_H_
