// The server loop: receives requests from workers, runs them on the ShardServer, replies.
//
// Requests from one worker are handled in arrival order, each completed before its reply, so a
// pull sent after a push's reply sees that push. A malformed request (undecodable, unknown table,
// wrong dim) gets an error reply naming the problem and the loop keeps serving.
#ifndef ATTNPS_PS_PS_SERVER_H_
#define ATTNPS_PS_PS_SERVER_H_

#include "ops/status.h"
#include "ps/shard_server.h"
#include "ps/transport.h"

namespace attnps::ps {

struct ServeOptions {
  int num_servers = 1;  // ranks [0, num_servers) are servers; this one is transport->rank()
  int num_workers = 1;  // the loop ends when every worker has sent SHUTDOWN
};

// Serves until every worker has shut down; returns the first transport failure, if any.
Status ServeRequests(Transport* transport, ShardServer* server, const ServeOptions& options);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_PS_SERVER_H_
