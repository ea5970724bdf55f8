#include "ps/mpi_transport.h"

#include <glog/logging.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace attnps::ps {

void MpiFatal(const char* expr, int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  LOG(FATAL) << expr << " failed: " << std::string(text, len);
  __builtin_unreachable();
}

// Open MPI's TCP transport sends a message above btl_tcp_eager_limit (64 KB by default) by
// rendezvous, and the rest of it moves only while the sender is inside an MPI call: a push or a
// pull reply of 100 KB then waits for the sender's next step instead of overlapping its compute
// (2.5x slower steps across emulated hosts, docs/scaling.md). Eager messages up to 4 MB (a
// request of max_keys_per_request keys fits) go at once. A value the user set (environment, or
// mpirun --mca, which sets the same variables) is kept.
void PreferEagerTcp() {
  for (const char* name : {"OMPI_MCA_btl_tcp_eager_limit", "OMPI_MCA_btl_tcp_rndv_eager_limit",
                           "OMPI_MCA_btl_tcp_max_send_size"}) {
    setenv(name, "4194304", /*overwrite=*/0);
  }
}

MpiSession::MpiSession(int* argc, char*** argv) {
  PreferEagerTcp();
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

void MpiSession::Abort(int code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; in case it does
}

int MpiSession::MaxOverRanks(int value) const {
  int max = value;
  ATTNPS_MPI_CHECK(MPI_Allreduce(&value, &max, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  return max;
}

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

MpiTransport::MpiTransport(MPI_Comm comm, int spin_us) : comm_(comm), spin_us_(spin_us) {
  ATTNPS_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  ATTNPS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

namespace {

// Envelope: magic | pad | payload bytes (uint64) | head.
constexpr char kEnvelopeMagic[4] = {'A', 'T', 'E', '1'};
constexpr size_t kEnvelopePrefix = 16;

}  // namespace

Status MpiTransport::Send(int dst, Tag tag, Buffer message) {
  return SendFrame(dst, tag, std::move(message), 0);
}

Status MpiTransport::SendFrame(int dst, Tag tag, Buffer message, size_t head_bytes) {
  if (dst < 0 || dst >= size_)
    return Status::InvalidArgument("send to rank " + std::to_string(dst));
  if (message.size() > static_cast<size_t>(INT_MAX)) {
    return Status::InvalidArgument("message of " + std::to_string(message.size()) +
                                   " bytes exceeds MPI's int count");
  }
  head_bytes = std::min(head_bytes, message.size());
  if (message.size() - head_bytes < kMinSplitBytes) head_bytes = message.size();
  const uint64_t payload_bytes = message.size() - head_bytes;
  Buffer envelope(kEnvelopePrefix + head_bytes);
  std::memcpy(envelope.data(), kEnvelopeMagic, 4);
  std::memset(envelope.data() + 4, 0, 4);
  std::memcpy(envelope.data() + 8, &payload_bytes, 8);
  if (head_bytes > 0) std::memcpy(envelope.data() + kEnvelopePrefix, message.data(), head_bytes);
  last_send_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                      std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(send_mu_);
  MPI_Request request;
  ATTNPS_MPI_CHECK(MPI_Isend(envelope.data(), static_cast<int>(envelope.size()), MPI_BYTE, dst,
                             static_cast<int>(tag), comm_, &request));
  sends_.push_back(request);
  send_buffers_.push_back(std::move(envelope));
  if (payload_bytes > 0) {
    ATTNPS_MPI_CHECK(MPI_Isend(message.data() + head_bytes, static_cast<int>(payload_bytes),
                               MPI_BYTE, dst, static_cast<int>(tag) + kNumTags, comm_, &request));
    sends_.push_back(request);
    send_buffers_.push_back(std::move(message));
  }
  ReapSends(false);
  return Status::Ok();
}

void MpiTransport::ReapSends(bool wait) {
  if (sends_.empty()) return;
  if (wait) {
    ATTNPS_MPI_CHECK(
        MPI_Waitall(static_cast<int>(sends_.size()), sends_.data(), MPI_STATUSES_IGNORE));
  } else {
    int done = 0;
    send_indices_.resize(sends_.size());
    ATTNPS_MPI_CHECK(MPI_Testsome(static_cast<int>(sends_.size()), sends_.data(), &done,
                                  send_indices_.data(), MPI_STATUSES_IGNORE));
    if (done == MPI_UNDEFINED || done == 0) return;
  }
  size_t kept = 0;  // completed requests are MPI_REQUEST_NULL now
  for (size_t i = 0; i < sends_.size(); ++i) {
    if (sends_[i] == MPI_REQUEST_NULL) continue;
    sends_[kept] = sends_[i];
    send_buffers_[kept] = std::move(send_buffers_[i]);
    ++kept;
  }
  sends_.resize(kept);
  send_buffers_.resize(kept);
}

MpiTransport::~MpiTransport() {
  std::lock_guard<std::mutex> lock(send_mu_);
  ReapSends(true);
}

Status MpiTransport::Recv(Tag tag, int timeout_ms, int* source, Buffer* message) {
  bool placed = false;
  return RecvPlaced(tag, timeout_ms, source, message, nullptr, &placed);
}

Status MpiTransport::Take(Tag tag, MPI_Message handle, int bytes, int source, Buffer* message,
                          const Placer* place, bool* placed) {
  Buffer& envelope = envelope_[static_cast<int>(tag)];
  envelope.Resize(static_cast<size_t>(bytes));
  ATTNPS_MPI_CHECK(MPI_Mrecv(envelope.data(), bytes, MPI_BYTE, &handle, MPI_STATUS_IGNORE));
  uint64_t payload_bytes = 0;
  size_t head_at = 0;
  if (envelope.size() >= kEnvelopePrefix && std::memcmp(envelope.data(), kEnvelopeMagic, 4) == 0) {
    std::memcpy(&payload_bytes, envelope.data() + 8, 8);
    head_at = kEnvelopePrefix;
  }  // else not one of ours: the bytes as they came
  if (payload_bytes > static_cast<uint64_t>(INT_MAX)) {
    return Status::Corruption("message from rank " + std::to_string(source) +
                              ": envelope announces a payload of " + std::to_string(payload_bytes) +
                              " bytes");
  }
  const size_t head_bytes = envelope.size() - head_at;
  const char* head = envelope.data() + head_at;
  char* room = nullptr;
  if (payload_bytes > 0 && place != nullptr && *place) {
    room = (*place)(source, head, head_bytes, payload_bytes);
  }
  if (room != nullptr) {
    message->Resize(head_bytes);
  } else {
    message->Resize(head_bytes + payload_bytes);
    room = message->data() + head_bytes;
  }
  if (head_bytes > 0) std::memcpy(message->data(), head, head_bytes);
  *placed = false;
  if (payload_bytes == 0) return Status::Ok();
  // The payload is the next message from `source` on the payload tag; its size is checked
  // before it is received into the room.
  MPI_Message body;
  MPI_Status status;
  ATTNPS_MPI_CHECK(MPI_Mprobe(source, static_cast<int>(tag) + kNumTags, comm_, &body, &status));
  int got = 0;
  ATTNPS_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &got));
  if (static_cast<uint64_t>(got) != payload_bytes) {
    Buffer discard(static_cast<size_t>(got));
    ATTNPS_MPI_CHECK(MPI_Mrecv(discard.data(), got, MPI_BYTE, &body, MPI_STATUS_IGNORE));
    return Status::Corruption("message from rank " + std::to_string(source) + ": payload of " +
                              std::to_string(got) + " bytes, envelope says " +
                              std::to_string(payload_bytes));
  }
  ATTNPS_MPI_CHECK(MPI_Mrecv(room, got, MPI_BYTE, &body, MPI_STATUS_IGNORE));
  *placed = room != message->data() + head_bytes;
  return Status::Ok();
}

Status MpiTransport::RecvPlaced(Tag tag, int timeout_ms, int* source, Buffer* message,
                                const Placer& place, bool* placed) {
  // Matched probe: safe with several receiving threads (the probed message is ours), and the
  // tag's lock pairs each envelope with its payload.
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto spin = std::chrono::microseconds(spin_us_);
  const auto deadline = start + std::chrono::milliseconds(timeout_ms);
  int wait_us = 1;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(recv_mu_[static_cast<int>(tag)]);
      int found = 0;
      MPI_Message handle;
      MPI_Status status;
      ATTNPS_MPI_CHECK(
          MPI_Improbe(MPI_ANY_SOURCE, static_cast<int>(tag), comm_, &found, &handle, &status));
      if (found) {
        int bytes = 0;
        ATTNPS_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &bytes));
        *source = status.MPI_SOURCE;
        return Take(tag, handle, bytes, status.MPI_SOURCE, message, &place, placed);
      }
    }
    if (std::unique_lock<std::mutex> lock(send_mu_, std::try_to_lock); lock) ReapSends(false);
    const auto now = Clock::now();
    if (timeout_ms >= 0 && now >= deadline) {
      return Status::Unavailable("no message within " + std::to_string(timeout_ms) + " ms");
    }
    const Clock::time_point last_send{
        Clock::duration(last_send_ns_.load(std::memory_order_relaxed))};
    if (now < std::max(start, last_send) + spin) {
      sched_yield();
      continue;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
    wait_us = std::min(wait_us * 2, 200);  // back off: an idle rank should not hold a core
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
