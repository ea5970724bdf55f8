// PsClient: a worker's asynchronous access to the parameter servers.
//
// Pull and Push split the keys by owning server (ServerOf) and each server's share into requests
// of at most `max_keys_per_request` keys (so the server works on one part while the next is on
// the wire), send them and return a handle at once; Wait(handle) blocks until every part has
// been answered (rows scattered back into `out` in the caller's key order) and returns the first
// error. Many operations may be in flight. A pull issued after a push's Wait sees that push.
//
// Ownership: `keys`, `out` and `grads` must stay valid until Wait returns. The transport must
// outlive the client. Thread-safety: all methods may be called concurrently.
#ifndef ATTNPS_PS_PS_CLIENT_H_
#define ATTNPS_PS_PS_CLIENT_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ops/status.h"
#include "ps/transport.h"
#include "ps/wire.h"

namespace attnps::ps {

struct PsClientOptions {
  int64_t max_keys_per_request = 16384;
  // A thread receives the replies as they come (false: Wait receives them itself, for a
  // transport whose servers reply before Send returns, as local mode's inline servers do).
  bool receive_thread = true;
};

class PsClient {
 public:
  using Handle = uint64_t;

  // Servers are ranks [0, num_servers) of the transport.
  PsClient(Transport* transport, int num_servers, PsClientOptions options = {});
  ~PsClient();
  PsClient(const PsClient&) = delete;
  PsClient& operator=(const PsClient&) = delete;

  Handle Pull(uint32_t table, const uint64_t* keys, int64_t n, int dim, uint64_t step, float* out);
  Handle Push(uint32_t table, const uint64_t* keys, int64_t n, int dim, const float* grads,
              uint64_t step);
  Status Wait(Handle handle);
  // Waits for every handle; returns the first error.
  Status WaitAll(const std::vector<Handle>& handles);

  // Collective or per-server commands, each sent to every server and waited for.
  Status Barrier();
  Status Save(const std::string& step_dir, uint64_t step);
  Status Load(const std::string& step_dir);
  // Row counts per table over all servers; with server_traffic, also each server's count of its
  // traffic with this client ([num_servers], the server's view: its received is what this client
  // sent), this STATS request counted and its reply not.
  Status Stats(std::map<uint32_t, uint64_t>* rows_per_table,
               std::vector<PeerTraffic>* server_traffic = nullptr);
  // This client's traffic with each server since construction ([num_servers]; whole frames,
  // header and payload, counted when sent and when received).
  std::vector<PeerTraffic> Traffic() const;
  Status Shutdown();

 private:
  struct Operation;
  struct Counters;
  // One request: keys positions[first, first + count) of the operation's key list for `server`
  // (identity positions when that list is empty).
  struct Part {
    Handle op;
    int server;
    int64_t first;
    int64_t count;
  };

  Handle StartKeyed(const Request& header, const uint64_t* keys, int64_t n, float* out,
                    const float* grads);
  Handle Start(std::unique_ptr<Operation> op);
  void SendPart(const Part& part, RequestFrame frame, uint64_t request_id);
  Status Broadcast(Request request, std::map<uint32_t, uint64_t>* stats = nullptr,
                   std::vector<PeerTraffic>* traffic = nullptr);
  void ReceiveLoop();
  // Receives one reply (waiting at most timeout_ms) and completes its part, if one came.
  void ReceiveOne(int timeout_ms, Buffer* message);
  // Where a reply's payload may land in place (a one-server pull part's rows in `out`), or null.
  char* Place(const char* head, size_t head_bytes, size_t payload_bytes);
  // `placed`: the rows are in the caller's buffer already.
  void Complete(const Reply& reply, bool placed = false);
  void Scatter(const Operation& op, const Part& part, const float* values);

  Transport* transport_;
  int num_servers_;
  PsClientOptions options_;
  std::atomic<uint64_t> next_id_{1};
  std::mutex mu_;
  std::condition_variable done_cv_;
  std::unordered_map<Handle, std::unique_ptr<Operation>> ops_;
  std::unordered_map<uint64_t, Part> parts_;  // request id -> part
  std::unique_ptr<Counters[]> traffic_;       // [num_servers]
  std::atomic<bool> stopping_{false};
  std::thread receiver_;
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_PS_CLIENT_H_
