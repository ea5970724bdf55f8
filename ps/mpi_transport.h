// MPI for attnps jobs: process-wide initialization (MPI_THREAD_MULTIPLE), the role split of the
// world into servers and workers, a Transport over MPI point-to-point messages, and the workers'
// sub-communicator for dense allreduce (ps/dense_allreduce.h).
//
// Every MPI call goes through ATTNPS_MPI_CHECK, which CHECK-fails naming the call and MPI's error
// string; MPI's default error handler aborts the whole job when a peer dies, so a dead rank makes
// the job fail instead of hanging.
#ifndef ATTNPS_PS_MPI_TRANSPORT_H_
#define ATTNPS_PS_MPI_TRANSPORT_H_

#include <mpi.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "ops/status.h"
#include "ps/transport.h"

#define ATTNPS_MPI_CHECK(expr)                                                        \
  do {                                                                                \
    const int attnps_mpi_rc_ = (expr);                                                \
    if (attnps_mpi_rc_ != MPI_SUCCESS) ::attnps::ps::MpiFatal(#expr, attnps_mpi_rc_); \
  } while (0)

namespace attnps::ps {

[[noreturn]] void MpiFatal(const char* expr, int rc);

// Initializes MPI once per process (MPI_THREAD_MULTIPLE) and finalizes it at destruction.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ends every process of the job with `code` (MPI_Abort on MPI_COMM_WORLD) after flushing this
  // one's output: for an error on one rank while the others may wait for it in a collective.
  [[noreturn]] void Abort(int code) const;
  // The largest `value` over all ranks (collective: every rank must call it).
  int MaxOverRanks(int value) const;

 private:
  int rank_ = 0, size_ = 1;
};

// Ranks [0, servers) serve, [servers, size) work.
struct Roles {
  int servers = 0;
  int workers = 0;
  bool is_server = false;
  int worker_index = -1;  // 0-based among workers, -1 on servers
};

// InvalidArgument for an impossible split (no server, no worker, more servers than ranks).
Status SplitRoles(int world_size, int rank, int servers, Roles* roles);

// Recv polls with MPI_Improbe: it spins (yielding the core) while less than `spin_us` have passed
// since it started waiting or since this rank last sent (a reply is then due), and otherwise
// sleeps between probes with a backoff up to 200 us: a busy rank answers within microseconds and
// an idle one does not hold a core.
// Send is non-blocking (MPI_Isend): it owns the message until MPI has delivered it, so a server
// goes on to its next request while a reply is being copied. The destructor waits for every
// send in flight.
// On the wire a message is an envelope on MPI tag `tag` (magic, payload size, then the head: the
// whole message when it is small) and, for a payload of at least kMinSplitBytes, the payload as a
// second MPI message on tag `tag + kNumTags`, sent from the message itself (no copy). A receiver
// takes an envelope and its payload under one lock per tag, so they pair up (MPI keeps the order
// of one source's messages on one tag); RecvPlaced receives the payload straight into the room
// its placer gives (a pull reply into the caller's rows).
class MpiTransport : public Transport {
 public:
  static constexpr size_t kMinSplitBytes = 32 << 10;

  explicit MpiTransport(MPI_Comm comm, int spin_us = 1000);
  ~MpiTransport() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status Send(int dst, Tag tag, Buffer message) override;
  Status Recv(Tag tag, int timeout_ms, int* source, Buffer* message) override;
  Status SendFrame(int dst, Tag tag, Buffer message, size_t head_bytes) override;
  Status RecvPlaced(Tag tag, int timeout_ms, int* source, Buffer* message, const Placer& place,
                    bool* placed) override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  // Completes finished sends (all of them, waiting, when `wait`); caller holds send_mu_.
  void ReapSends(bool wait);
  // Receives the envelope `handle` of `bytes` and its payload; caller holds recv_mu_[tag].
  Status Take(Tag tag, MPI_Message handle, int bytes, int source, Buffer* message,
              const Placer* place, bool* placed);

  std::mutex recv_mu_[kNumTags];
  Buffer envelope_[kNumTags];  // receive scratch, under recv_mu_

  int spin_us_;
  std::atomic<int64_t> last_send_ns_{0};  // steady clock
  std::mutex send_mu_;
  std::vector<MPI_Request> sends_;  // in flight, with their messages
  std::vector<Buffer> send_buffers_;
  std::vector<int> send_indices_;  // MPI_Testsome scratch
};

// MPI_Comm_split of the world: the workers' communicator on workers, MPI_COMM_NULL on servers.
MPI_Comm WorkerCommunicator(const Roles& roles);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_MPI_TRANSPORT_H_
