#include "ps/ps_client.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>

#include "ps/sharding.h"

namespace attnps::ps {

struct PsClient::Operation {
  int remaining = 0;
  Status status;
  float* out = nullptr;  // pull destination
  int dim = 0;
  std::map<uint32_t, uint64_t>* stats = nullptr;
  std::vector<PeerTraffic>* traffic = nullptr;  // [num_servers]
  // Keyed operations over several servers: positions of each server's keys in the caller's list.
  std::vector<std::vector<int64_t>> positions;
};

struct PsClient::Counters {
  std::atomic<uint64_t> sent_bytes{0}, sent_messages{0}, received_bytes{0}, received_messages{0};
};

PsClient::PsClient(Transport* transport, int num_servers, PsClientOptions options)
    : transport_(transport),
      num_servers_(num_servers),
      options_(options),
      traffic_(new Counters[num_servers > 0 ? num_servers : 1]) {
  CHECK(num_servers > 0 && num_servers < transport->size())
      << "PsClient: " << num_servers << " servers in a job of " << transport->size() << " ranks";
  CHECK_GT(options_.max_keys_per_request, 0);
  if (options_.receive_thread) receiver_ = std::thread([this] { ReceiveLoop(); });
}

PsClient::~PsClient() {
  stopping_ = true;
  if (receiver_.joinable()) receiver_.join();
}

PsClient::Handle PsClient::Start(std::unique_ptr<Operation> op) {
  const Handle h = next_id_++;
  std::lock_guard<std::mutex> lock(mu_);
  ops_[h] = std::move(op);
  return h;
}

std::vector<PeerTraffic> PsClient::Traffic() const {
  std::vector<PeerTraffic> out(num_servers_);
  for (int s = 0; s < num_servers_; ++s) {
    const Counters& c = traffic_[s];
    out[s] = {c.sent_bytes, c.sent_messages, c.received_bytes, c.received_messages};
  }
  return out;
}

void PsClient::SendPart(const Part& part, RequestFrame frame, uint64_t request_id) {
  const size_t bytes = frame.buffer.size();
  const Status st =
      transport_->SendFrame(part.server, Tag::kRequest, std::move(frame.buffer), frame.head_bytes);
  if (st.ok()) {
    traffic_[part.server].sent_bytes += bytes;
    ++traffic_[part.server].sent_messages;
  } else {
    Reply failed;
    failed.request_id = request_id;
    failed.status = st.WithContext("sending to server " + std::to_string(part.server));
    Complete(failed);
  }
}

PsClient::Handle PsClient::StartKeyed(const Request& header, const uint64_t* keys, int64_t n,
                                      float* out, const float* grads) {
  auto owned = std::make_unique<Operation>();
  Operation& op = *owned;  // stays put inside ops_
  op.out = out;
  op.dim = static_cast<int>(header.dim);
  if (num_servers_ > 1) {
    op.positions.resize(num_servers_);
    for (int64_t i = 0; i < n; ++i) op.positions[ServerOf(keys[i], num_servers_)].push_back(i);
  }
  auto share = [&](int s) -> int64_t {
    return num_servers_ == 1 ? n : static_cast<int64_t>(op.positions[s].size());
  };
  const int64_t chunk = options_.max_keys_per_request;
  for (int s = 0; s < num_servers_; ++s) {
    op.remaining += static_cast<int>((share(s) + chunk - 1) / chunk);
  }
  const Handle h = Start(std::move(owned));
  const size_t dim = header.dim;
  for (int s = 0; s < num_servers_; ++s) {
    const int64_t* pos = num_servers_ == 1 ? nullptr : op.positions[s].data();
    for (int64_t first = 0; first < share(s); first += chunk) {
      Part part{h, s, first, std::min(chunk, share(s) - first)};
      Request r = header;
      r.request_id = next_id_++;
      r.sender = transport_->rank();
      r.num_keys = static_cast<uint64_t>(part.count);
      RequestFrame frame = NewRequestFrame(r);
      if (pos == nullptr) {  // one server: the part is a contiguous range
        std::memcpy(frame.keys, keys + first, sizeof(uint64_t) * part.count);
        if (grads != nullptr) {
          std::memcpy(frame.values, grads + first * dim, sizeof(float) * dim * part.count);
        }
      } else {
        for (int64_t j = 0; j < part.count; ++j) frame.keys[j] = keys[pos[first + j]];
        if (grads != nullptr) {
          for (int64_t j = 0; j < part.count; ++j) {
            std::memcpy(frame.values + j * dim, grads + pos[first + j] * dim, 4 * dim);
          }
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        parts_[r.request_id] = part;
      }
      SendPart(part, std::move(frame), r.request_id);
    }
  }
  return h;
}

PsClient::Handle PsClient::Pull(uint32_t table, const uint64_t* keys, int64_t n, int dim,
                                uint64_t step, float* out) {
  Request r;
  r.type = RequestType::kPull;
  r.table_id = table;
  r.dim = static_cast<uint32_t>(dim);
  r.step = step;
  return StartKeyed(r, keys, n, out, nullptr);
}

PsClient::Handle PsClient::Push(uint32_t table, const uint64_t* keys, int64_t n, int dim,
                                const float* grads, uint64_t step) {
  Request r;
  r.type = RequestType::kPush;
  r.table_id = table;
  r.dim = static_cast<uint32_t>(dim);
  r.step = step;
  return StartKeyed(r, keys, n, nullptr, grads);
}

Status PsClient::Wait(Handle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = ops_.find(handle);
  CHECK(it != ops_.end()) << "Wait on unknown or already waited handle " << handle;
  Operation* op = it->second.get();
  if (options_.receive_thread) {
    done_cv_.wait(lock, [&] { return op->remaining == 0; });
  } else {
    Buffer message;
    while (op->remaining > 0) {
      lock.unlock();
      ReceiveOne(50, &message);
      lock.lock();
    }
  }
  const Status st = op->status;
  ops_.erase(it);
  return st;
}

Status PsClient::WaitAll(const std::vector<Handle>& handles) {
  Status first;
  for (Handle h : handles) {
    const Status st = Wait(h);
    if (first.ok() && !st.ok()) first = st;
  }
  return first;
}

void PsClient::Scatter(const Operation& op, const Part& part, const float* values) {
  const size_t row = sizeof(float) * op.dim;
  if (op.positions.empty()) {  // one server: the part is a contiguous range
    std::memcpy(op.out + part.first * op.dim, values, row * part.count);
    return;
  }
  const int64_t* pos = op.positions[part.server].data() + part.first;
  for (int64_t j = 0; j < part.count; ++j) {
    std::memcpy(op.out + pos[j] * op.dim, values + j * op.dim, row);
  }
}

char* PsClient::Place(const char* head, size_t head_bytes, size_t payload_bytes) {
  Reply reply;
  if (!DecodeReplyHead(head, head_bytes, payload_bytes, &reply).ok() || !reply.status.ok()) {
    return nullptr;  // Complete reports it
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = parts_.find(reply.request_id);
  if (it == parts_.end()) return nullptr;
  const Part& part = it->second;
  const Operation& op = *ops_.at(part.op);
  // A one-server pull's part is a contiguous range of the caller's rows: the payload lands there.
  if (op.out == nullptr || !op.positions.empty() ||
      reply.num_values != static_cast<uint64_t>(part.count) * op.dim) {
    return nullptr;
  }
  return reinterpret_cast<char*>(op.out + part.first * op.dim);
}

void PsClient::Complete(const Reply& reply, bool placed) {
  Operation* op = nullptr;
  Part part;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = parts_.find(reply.request_id);
    if (it == parts_.end()) {
      LOG(WARNING) << "rank " << transport_->rank() << ": reply to unknown request "
                   << reply.request_id << ": " << reply.status.ToString();
      return;
    }
    part = it->second;
    parts_.erase(it);
    op = ops_.at(part.op).get();
  }
  Status st = reply.status;
  if (st.ok() && op->out != nullptr) {
    if (reply.num_values != static_cast<uint64_t>(part.count) * op->dim) {
      st = Status::Corruption("pull reply with " + std::to_string(reply.num_values) +
                              " floats for " + std::to_string(part.count) + " keys");
    } else if (!placed) {
      Scatter(*op, part, reply.values);  // unlocked: parts write disjoint rows
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!st.ok() && op->status.ok()) op->status = st;
  if (op->stats != nullptr) {
    for (const auto& [table, rows] : reply.stats) (*op->stats)[table] += rows;
  }
  if (op->traffic != nullptr) (*op->traffic)[part.server] = reply.traffic;
  if (--op->remaining == 0) done_cv_.notify_all();
}

void PsClient::ReceiveLoop() {
  Buffer message;  // reused: no allocation per reply
  while (!stopping_) ReceiveOne(50, &message);
}

void PsClient::ReceiveOne(int timeout_ms, Buffer* message) {
  size_t placed_bytes = 0;
  const Transport::Placer place = [this, &placed_bytes](int, const char* head, size_t head_bytes,
                                                        size_t payload_bytes) {
    placed_bytes = payload_bytes;
    return Place(head, head_bytes, payload_bytes);
  };
  int source = -1;
  bool placed = false;
  const Status st =
      transport_->RecvPlaced(Tag::kReply, timeout_ms, &source, message, place, &placed);
  if (st.code() == Status::Code::kUnavailable) return;
  CHECK(st.ok()) << "rank " << transport_->rank() << ": receiving replies: " << st.ToString();
  if (source >= 0 && source < num_servers_) {
    traffic_[source].received_bytes += message->size() + (placed ? placed_bytes : 0);
    ++traffic_[source].received_messages;
  }
  Reply reply;
  const Status decoded =
      placed ? DecodeReplyHead(message->data(), message->size(), placed_bytes, &reply)
             : DecodeReply(message->data(), message->size(), &reply);
  if (!decoded.ok()) {
    LOG(ERROR) << "rank " << transport_->rank() << ": undecodable reply from rank " << source
               << ": " << decoded.ToString();
    return;
  }
  Complete(reply, placed);
}

Status PsClient::Broadcast(Request request, std::map<uint32_t, uint64_t>* stats,
                           std::vector<PeerTraffic>* traffic) {
  auto op = std::make_unique<Operation>();
  op->remaining = num_servers_;
  op->stats = stats;
  op->traffic = traffic;
  const Handle h = Start(std::move(op));
  for (int s = 0; s < num_servers_; ++s) {
    request.request_id = next_id_++;
    request.sender = transport_->rank();
    const Part part{h, s, 0, 0};
    {
      std::lock_guard<std::mutex> lock(mu_);
      parts_[request.request_id] = part;
    }
    RequestFrame frame;
    frame.buffer = EncodeRequest(request);
    frame.head_bytes = frame.buffer.size();
    SendPart(part, std::move(frame), request.request_id);
  }
  return Wait(h);
}

Status PsClient::Barrier() {
  Request r;
  r.type = RequestType::kBarrier;
  return Broadcast(r);
}

Status PsClient::Save(const std::string& step_dir, uint64_t step) {
  Request r;
  r.type = RequestType::kSave;
  r.path = step_dir;
  r.step = step;
  return Broadcast(r);
}

Status PsClient::Load(const std::string& step_dir) {
  Request r;
  r.type = RequestType::kLoad;
  r.path = step_dir;
  return Broadcast(r);
}

Status PsClient::Stats(std::map<uint32_t, uint64_t>* rows_per_table,
                       std::vector<PeerTraffic>* server_traffic) {
  rows_per_table->clear();
  if (server_traffic != nullptr) server_traffic->assign(num_servers_, PeerTraffic{});
  Request r;
  r.type = RequestType::kStats;
  return Broadcast(r, rows_per_table, server_traffic);
}

Status PsClient::Shutdown() {
  Request r;
  r.type = RequestType::kShutdown;
  return Broadcast(r);
}

}  // namespace attnps::ps
