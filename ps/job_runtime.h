// JobRuntime: this process's place in a job, and the handles the trainer needs.
//
//   mpirun -np N (N >= 2)  ranks [0, servers) serve, the rest work; workers get a PsClient over
//                          MPI and a DenseAllreduce on their sub-communicator
//   one process (N == 1)   local mode: `servers` ShardServers run on threads of this process
//                          behind an in-process transport; the process is the only worker and
//                          uses the same PsClient API
//
// Usage: Create, then on a server rank Serve() (returns when every worker has finished); on a
// worker rank use client()/allreduce(), then Finish().
// Ownership: the MpiSession must outlive the runtime. Thread-safety: client() is thread-safe
// (see PsClient); the rest is for the main thread.
#ifndef ATTNPS_PS_JOB_RUNTIME_H_
#define ATTNPS_PS_JOB_RUNTIME_H_

#include <memory>
#include <thread>
#include <vector>

#include "ops/status.h"
#include "ps/dense_allreduce.h"
#include "ps/mpi_transport.h"
#include "ps/ps_client.h"
#include "ps/ps_server.h"
#include "ps/shard_server.h"
#include "ps/table_config.h"
#include "ps/transport.h"

namespace attnps::ps {

enum class AllreduceBackend { kMpi, kNccl };

struct RuntimeOptions {
  int servers = 1;        // server ranks (or in-process servers in local mode)
  int shard_threads = 1;  // per server
  std::vector<TableConfig> tables;
  AllreduceBackend allreduce_backend = AllreduceBackend::kMpi;
  int cuda_device = 0;  // kNccl
  AllreduceOptions allreduce;
  // Local mode: the in-process servers handle each request on the worker's thread as it is sent
  // (no server or receive threads, no hand-offs between them). For a worker that waits for every
  // request before its next step anyway (staleness 0); otherwise each server has a thread, which
  // overlaps the pulls ahead and the pushes with the worker's compute.
  bool serve_inline = false;
};

class JobRuntime {
 public:
  // Collective over MPI_COMM_WORLD: every rank calls it. InvalidArgument for an impossible split
  // (e.g. --servers=2 with 2 processes) or an unavailable allreduce backend.
  static Status Create(const MpiSession& mpi, const RuntimeOptions& options,
                       std::unique_ptr<JobRuntime>* out);
  // Local mode without MPI (tests, tools): `servers` in-process servers, this thread's worker.
  static Status CreateLocal(const RuntimeOptions& options, std::unique_ptr<JobRuntime>* out);
  ~JobRuntime();
  JobRuntime(const JobRuntime&) = delete;
  JobRuntime& operator=(const JobRuntime&) = delete;

  bool local() const { return local_; }
  bool is_server() const { return roles_.is_server; }
  const Roles& roles() const { return roles_; }
  int worker_index() const { return roles_.worker_index; }
  int num_workers() const { return roles_.workers; }

  // Server ranks: serves requests until every worker has finished.
  Status Serve();
  // Worker ranks (and local mode).
  PsClient* client() { return client_.get(); }
  DenseAllreduce* allreduce() { return allreduce_.get(); }
  // This worker's raw endpoint (tests and tools that speak the wire format directly).
  Transport* transport() { return transport_.get(); }
  // Worker ranks: tells the servers this worker is done; in local mode also stops the
  // in-process servers and returns their status.
  Status Finish();

 private:
  JobRuntime() = default;
  static Status CheckOptions(const RuntimeOptions& options);
  Status StartLocal(const RuntimeOptions& options);
  Status StartMpi(const MpiSession& mpi, const RuntimeOptions& options);

  bool local_ = false;
  bool finished_ = false;
  Roles roles_;
  MPI_Comm worker_comm_ = MPI_COMM_NULL;
  std::unique_ptr<InProcessHub> hub_;                    // local mode
  std::vector<std::unique_ptr<Transport>> server_ends_;  // local mode, one per server
  std::vector<std::unique_ptr<ShardServer>> tables_;     // this rank's (or every local) server
  std::vector<std::thread> server_threads_;              // local mode, unless inline
  std::vector<std::unique_ptr<RequestHandler>> inline_servers_;  // local mode, inline
  std::vector<Status> server_status_;                            // local mode
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<PsClient> client_;
  std::unique_ptr<DenseAllreduce> allreduce_;
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_JOB_RUNTIME_H_
