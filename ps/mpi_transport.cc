#include "ps/mpi_transport.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

namespace attnps::ps {

void MpiFatal(const char* expr, int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  LOG(FATAL) << expr << " failed: " << std::string(text, len);
  __builtin_unreachable();
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  ATTNPS_MPI_CHECK(MPI_Initialized(&initialized));
  CHECK(!initialized) << "MpiSession: MPI already initialized";
  int provided = 0;
  ATTNPS_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  CHECK_EQ(provided, MPI_THREAD_MULTIPLE) << "this MPI does not provide MPI_THREAD_MULTIPLE";
  ATTNPS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  ATTNPS_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
}

MpiSession::~MpiSession() { MPI_Finalize(); }

Status SplitRoles(int world_size, int rank, int servers, Roles* roles) {
  if (servers < 1 || servers >= world_size) {
    return Status::InvalidArgument("--servers=" + std::to_string(servers) + " with " +
                                   std::to_string(world_size) +
                                   " processes: need 1 <= servers < processes (at least one "
                                   "worker); run mpirun -np <servers + workers>");
  }
  roles->servers = servers;
  roles->workers = world_size - servers;
  roles->is_server = rank < servers;
  roles->worker_index = roles->is_server ? -1 : rank - servers;
  return Status::Ok();
}

MpiTransport::MpiTransport(MPI_Comm comm) : comm_(comm) {
  ATTNPS_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  ATTNPS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

Status MpiTransport::Send(int dst, Tag tag, std::string message) {
  if (dst < 0 || dst >= size_)
    return Status::InvalidArgument("send to rank " + std::to_string(dst));
  if (message.size() > static_cast<size_t>(INT_MAX)) {
    return Status::InvalidArgument("message of " + std::to_string(message.size()) +
                                   " bytes exceeds MPI's int count");
  }
  ATTNPS_MPI_CHECK(MPI_Send(message.data(), static_cast<int>(message.size()), MPI_BYTE, dst,
                            static_cast<int>(tag), comm_));
  return Status::Ok();
}

Status MpiTransport::Recv(Tag tag, int timeout_ms, int* source, std::string* message) {
  // Matched probe: safe with several receiving threads (the probed message is ours).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int wait_us = 1;
  for (;;) {
    int found = 0;
    MPI_Message handle;
    MPI_Status status;
    ATTNPS_MPI_CHECK(
        MPI_Improbe(MPI_ANY_SOURCE, static_cast<int>(tag), comm_, &found, &handle, &status));
    if (found) {
      int bytes = 0;
      ATTNPS_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &bytes));
      message->resize(bytes);
      ATTNPS_MPI_CHECK(MPI_Mrecv(message->data(), bytes, MPI_BYTE, &handle, MPI_STATUS_IGNORE));
      *source = status.MPI_SOURCE;
      return Status::Ok();
    }
    if (timeout_ms >= 0 && std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable("no message within " + std::to_string(timeout_ms) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
    wait_us = std::min(wait_us * 2, 200);  // back off: an idle rank should not spin a core
  }
}

MPI_Comm WorkerCommunicator(const Roles& roles) {
  int rank = 0;
  ATTNPS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  MPI_Comm comm = MPI_COMM_NULL;
  ATTNPS_MPI_CHECK(
      MPI_Comm_split(MPI_COMM_WORLD, roles.is_server ? MPI_UNDEFINED : 1, rank, &comm));
  return comm;
}

}  // namespace attnps::ps
