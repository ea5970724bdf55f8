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

#include <string>

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

class MpiTransport : public Transport {
 public:
  explicit MpiTransport(MPI_Comm comm);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status Send(int dst, Tag tag, std::string message) override;
  Status Recv(Tag tag, int timeout_ms, int* source, std::string* message) override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

// MPI_Comm_split of the world: the workers' communicator on workers, MPI_COMM_NULL on servers.
MPI_Comm WorkerCommunicator(const Roles& roles);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_MPI_TRANSPORT_H_
