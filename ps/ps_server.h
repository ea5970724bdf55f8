// The server loop: receives requests from workers, runs them on the ShardServer, replies.
//
// Requests from one worker are handled in arrival order, each completed before its reply, so a
// pull sent after a push's reply sees that push. A malformed request (undecodable, unknown table,
// wrong dim) gets an error reply naming the problem and the loop keeps serving. The server counts
// its traffic with each worker (whole frames) and reports it in the STATS reply.
#ifndef ATTNPS_PS_PS_SERVER_H_
#define ATTNPS_PS_PS_SERVER_H_

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "ops/status.h"
#include "ps/shard_server.h"
#include "ps/transport.h"
#include "ps/wire.h"

namespace attnps::ps {

struct ServeOptions {
  int num_servers = 1;  // ranks [0, num_servers) are servers; this one is transport->rank()
  int num_workers = 1;  // the loop ends when every worker has sent SHUTDOWN
};

// One server's handling of its requests, for a caller that delivers them itself: ServeRequests
// below, or local mode's hub, which hands each request to Handle on the sending thread
// (InProcessHub::ServeInline). Handle replies through the transport and returns a transport
// failure only. Not thread-safe: deliver one request at a time.
class RequestHandler {
 public:
  RequestHandler(Transport* transport, ShardServer* server, const ServeOptions& options);
  Status Handle(int source, const Buffer& message);
  // Every worker has sent SHUTDOWN.
  bool done() const { return shut_down_ >= options_.num_workers; }

 private:
  Status Pull(int source, const Request& r);
  Status Barrier(int source, uint64_t request_id);
  // Sends (and counts) a reply; head_bytes as Transport::SendFrame's (0: no separate payload).
  Status SendReply(int worker, Buffer message, size_t head_bytes = 0);

  Transport* t_;
  ShardServer* server_;
  ServeOptions options_;
  int shut_down_ = 0;
  std::vector<std::pair<int, uint64_t>> waiting_;
  std::map<int, PeerTraffic> traffic_;  // per worker rank
};

// Serves until every worker has shut down; returns the first transport failure, if any.
Status ServeRequests(Transport* transport, ShardServer* server, const ServeOptions& options);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_PS_SERVER_H_
