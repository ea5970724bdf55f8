#include "ps/ps_server.h"

#include <glog/logging.h>

#include <filesystem>
#include <vector>

#include "ps/sharding.h"
#include "ps/wire.h"

namespace attnps::ps {
namespace {

namespace fs = std::filesystem;

Status ValidateAgainstTables(const Request& r, const ShardServer& server) {
  if (r.type != RequestType::kPull && r.type != RequestType::kPush) return Status::Ok();
  if (!server.HasTable(r.table_id)) {
    return Status::InvalidArgument("table " + std::to_string(r.table_id) + " is unknown");
  }
  if (static_cast<int>(r.dim) != server.Dim(r.table_id)) {
    return Status::InvalidArgument("table " + std::to_string(r.table_id) + " has dim " +
                                   std::to_string(server.Dim(r.table_id)) + ", request says " +
                                   std::to_string(r.dim));
  }
  return Status::Ok();
}

// Every shard database of a checkpoint step directory: <path>/server-*/shard-*.
std::vector<std::string> ShardDirs(const std::string& path) {
  std::vector<std::string> dirs;
  std::error_code error;
  for (const auto& server : fs::directory_iterator(path, error)) {
    if (server.path().filename().string().rfind("server-", 0) != 0) continue;
    for (const auto& shard : fs::directory_iterator(server.path(), error)) {
      if (shard.path().filename().string().rfind("shard-", 0) == 0) dirs.push_back(shard.path());
    }
  }
  return dirs;
}

}  // namespace

RequestHandler::RequestHandler(Transport* t, ShardServer* s, const ServeOptions& o)
    : t_(t), server_(s), options_(o) {}

Status RequestHandler::SendReply(int worker, Buffer message, size_t head_bytes) {
  PeerTraffic& t = traffic_[worker];
  t.sent_bytes += message.size();
  ++t.sent_messages;
  if (head_bytes == 0) return t_->Send(worker, Tag::kReply, std::move(message));
  return t_->SendFrame(worker, Tag::kReply, std::move(message), head_bytes);
}

Status RequestHandler::Handle(int source, const Buffer& message) {
  PeerTraffic& traffic = traffic_[source];
  traffic.received_bytes += message.size();
  ++traffic.received_messages;
  Request r;
  Reply reply;
  Status st = DecodeRequest(message.data(), message.size(), &r);
  if (st.ok()) st = ValidateAgainstTables(r, *server_);
  reply.request_id = r.request_id;
  if (!st.ok()) {
    LOG(WARNING) << "server " << t_->rank() << ": refused a request from rank " << source << ": "
                 << st.ToString();
    reply.status = st;
    return SendReply(source, EncodeReply(reply));
  }
  VLOG(2) << "server " << t_->rank() << ": " << RequestTypeName(r.type) << " from " << source;
  switch (r.type) {
    case RequestType::kPull:
      return Pull(source, r);
    case RequestType::kPush:
      server_->Push(r.table_id, r.keys, static_cast<int64_t>(r.num_keys), r.values, r.step);
      break;
    case RequestType::kBarrier:
      return Barrier(source, r.request_id);
    case RequestType::kSave:
      reply.status = server_->Save(r.path + "/server-" + std::to_string(t_->rank()), r.step);
      break;
    case RequestType::kLoad: {
      const int rank = t_->rank(), servers = options_.num_servers;
      reply.status = server_->Load(ShardDirs(r.path), [rank, servers](uint64_t key) {
        return ServerOf(key, servers) == rank;
      });
      break;
    }
    case RequestType::kStats:
      for (uint32_t id : server_->TableIds()) reply.stats.emplace_back(id, server_->NumRows(id));
      reply.traffic = traffic;
      break;
    case RequestType::kShutdown:
      ++shut_down_;
      break;
  }
  return SendReply(source, EncodeReply(reply));
}

// Gathers the rows straight into the reply frame.
Status RequestHandler::Pull(int source, const Request& r) {
  Reply reply;
  reply.request_id = r.request_id;
  reply.num_values = r.num_keys * r.dim;
  ReplyFrame frame = NewReplyFrame(reply);
  server_->Pull(r.table_id, r.keys, static_cast<int64_t>(r.num_keys), r.step, frame.values);
  return SendReply(source, std::move(frame.buffer), frame.head_bytes);
}

// Replies to every worker's barrier once all have arrived.
Status RequestHandler::Barrier(int source, uint64_t request_id) {
  waiting_.emplace_back(source, request_id);
  if (static_cast<int>(waiting_.size()) < options_.num_workers) return Status::Ok();
  for (const auto& [worker, id] : waiting_) {
    Reply reply;
    reply.request_id = id;
    ATTNPS_RETURN_IF_ERROR(SendReply(worker, EncodeReply(reply)));
  }
  waiting_.clear();
  return Status::Ok();
}

Status ServeRequests(Transport* transport, ShardServer* server, const ServeOptions& options) {
  RequestHandler handler(transport, server, options);
  Buffer message;  // reused: no allocation per request
  while (!handler.done()) {
    int source = -1;
    ATTNPS_RETURN_IF_ERROR(transport->Recv(Tag::kRequest, -1, &source, &message));
    ATTNPS_RETURN_IF_ERROR(handler.Handle(source, message));
  }
  return Status::Ok();
}

}  // namespace attnps::ps
