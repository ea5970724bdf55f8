#include "ps/ps_client.h"

#include <glog/logging.h>

#include <cstring>

#include "ps/sharding.h"

namespace attnps::ps {

struct PsClient::Operation {
  int remaining = 0;
  Status status;
  float* out = nullptr;  // pull destination
  int dim = 0;
  std::map<uint32_t, uint64_t>* stats = nullptr;
};

PsClient::PsClient(Transport* transport, int num_servers)
    : transport_(transport), num_servers_(num_servers) {
  CHECK(num_servers > 0 && num_servers < transport->size())
      << "PsClient: " << num_servers << " servers in a job of " << transport->size() << " ranks";
  receiver_ = std::thread([this] { ReceiveLoop(); });
}

PsClient::~PsClient() {
  stopping_ = true;
  receiver_.join();
}

PsClient::Handle PsClient::Start(int parts, float* out, int dim,
                                 std::map<uint32_t, uint64_t>* stats) {
  auto op = std::make_unique<Operation>();
  op->remaining = parts;
  op->out = out;
  op->dim = dim;
  op->stats = stats;
  const Handle h = next_id_++;
  std::lock_guard<std::mutex> lock(mu_);
  ops_[h] = std::move(op);
  return h;
}

void PsClient::SendPart(int server, Request request, Handle op, std::vector<int64_t> positions) {
  request.request_id = next_id_++;
  request.sender = transport_->rank();
  {
    std::lock_guard<std::mutex> lock(mu_);
    parts_[request.request_id] = Part{op, std::move(positions)};
  }
  const Status st = transport_->Send(server, Tag::kRequest, EncodeRequest(request));
  if (!st.ok()) {
    Reply failed;
    failed.request_id = request.request_id;
    failed.status = st.WithContext("sending to server " + std::to_string(server));
    Complete(failed);
  }
}

PsClient::Handle PsClient::Pull(uint32_t table, const uint64_t* keys, int64_t n, int dim,
                                uint64_t step, float* out) {
  std::vector<std::vector<int64_t>> positions(num_servers_);
  for (int64_t i = 0; i < n; ++i) positions[ServerOf(keys[i], num_servers_)].push_back(i);
  int parts = 0;
  for (const auto& p : positions) parts += p.empty() ? 0 : 1;
  const Handle h = Start(parts, out, dim, nullptr);
  for (int s = 0; s < num_servers_; ++s) {
    if (positions[s].empty()) continue;
    Request r;
    r.type = RequestType::kPull;
    r.table_id = table;
    r.dim = static_cast<uint32_t>(dim);
    r.step = step;
    r.keys.reserve(positions[s].size());
    for (int64_t i : positions[s]) r.keys.push_back(keys[i]);
    SendPart(s, std::move(r), h, std::move(positions[s]));
  }
  return h;
}

PsClient::Handle PsClient::Push(uint32_t table, const uint64_t* keys, int64_t n, int dim,
                                const float* grads, uint64_t step) {
  std::vector<std::vector<int64_t>> positions(num_servers_);
  for (int64_t i = 0; i < n; ++i) positions[ServerOf(keys[i], num_servers_)].push_back(i);
  int parts = 0;
  for (const auto& p : positions) parts += p.empty() ? 0 : 1;
  const Handle h = Start(parts, nullptr, dim, nullptr);
  for (int s = 0; s < num_servers_; ++s) {
    if (positions[s].empty()) continue;
    Request r;
    r.type = RequestType::kPush;
    r.table_id = table;
    r.dim = static_cast<uint32_t>(dim);
    r.step = step;
    r.keys.reserve(positions[s].size());
    r.values.resize(positions[s].size() * dim);
    for (size_t j = 0; j < positions[s].size(); ++j) {
      const int64_t i = positions[s][j];
      r.keys.push_back(keys[i]);
      std::memcpy(&r.values[j * dim], grads + i * dim, sizeof(float) * dim);
    }
    SendPart(s, std::move(r), h, {});
  }
  return h;
}

Status PsClient::Wait(Handle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = ops_.find(handle);
  CHECK(it != ops_.end()) << "Wait on unknown or already waited handle " << handle;
  Operation* op = it->second.get();
  done_cv_.wait(lock, [&] { return op->remaining == 0; });
  const Status st = op->status;
  ops_.erase(it);
  return st;
}

void PsClient::Complete(const Reply& reply) {
  std::lock_guard<std::mutex> lock(mu_);
  auto part = parts_.find(reply.request_id);
  if (part == parts_.end()) {
    LOG(WARNING) << "rank " << transport_->rank() << ": reply to unknown request "
                 << reply.request_id << ": " << reply.status.ToString();
    return;
  }
  Operation* op = ops_.at(part->second.op).get();
  if (!reply.status.ok() && op->status.ok()) op->status = reply.status;
  const std::vector<int64_t>& positions = part->second.positions;
  if (reply.status.ok() && op->out != nullptr) {
    if (reply.values.size() != positions.size() * op->dim) {
      op->status = Status::Corruption("pull reply with " + std::to_string(reply.values.size()) +
                                      " floats for " + std::to_string(positions.size()) + " keys");
    } else {
      for (size_t j = 0; j < positions.size(); ++j) {
        std::memcpy(op->out + positions[j] * op->dim, &reply.values[j * op->dim],
                    sizeof(float) * op->dim);
      }
    }
  }
  if (op->stats != nullptr) {
    for (const auto& [table, rows] : reply.stats) (*op->stats)[table] += rows;
  }
  parts_.erase(part);
  if (--op->remaining == 0) done_cv_.notify_all();
}

void PsClient::ReceiveLoop() {
  while (!stopping_) {
    int source = -1;
    std::string message;
    const Status st = transport_->Recv(Tag::kReply, 50, &source, &message);
    if (st.code() == Status::Code::kUnavailable) continue;
    CHECK(st.ok()) << "rank " << transport_->rank() << ": receiving replies: " << st.ToString();
    Reply reply;
    const Status decoded = DecodeReply(message.data(), message.size(), &reply);
    if (!decoded.ok()) {
      LOG(ERROR) << "rank " << transport_->rank() << ": undecodable reply from rank " << source
                 << ": " << decoded.ToString();
      continue;
    }
    Complete(reply);
  }
}

Status PsClient::Broadcast(Request request, std::map<uint32_t, uint64_t>* stats) {
  const Handle h = Start(num_servers_, nullptr, 0, stats);
  for (int s = 0; s < num_servers_; ++s) SendPart(s, request, h, {});
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

Status PsClient::Stats(std::map<uint32_t, uint64_t>* rows_per_table) {
  rows_per_table->clear();
  Request r;
  r.type = RequestType::kStats;
  return Broadcast(r, rows_per_table);
}

Status PsClient::Shutdown() {
  Request r;
  r.type = RequestType::kShutdown;
  return Broadcast(r);
}

}  // namespace attnps::ps
