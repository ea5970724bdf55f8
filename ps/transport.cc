#include "ps/transport.h"

#include <glog/logging.h>

#include <chrono>

namespace attnps::ps {
namespace {

class InProcessTransport : public Transport {
 public:
  InProcessTransport(InProcessHub* hub, int rank) : hub_(hub), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return hub_->size(); }
  Status Send(int dst, Tag tag, Buffer message) override {
    if (dst < 0 || dst >= hub_->size()) {
      return Status::InvalidArgument("send to rank " + std::to_string(dst) + " of " +
                                     std::to_string(hub_->size()));
    }
    return hub_->Post(dst, tag, rank_, std::move(message));
  }
  Status Recv(Tag tag, int timeout_ms, int* source, Buffer* message) override {
    return hub_->Take(rank_, tag, timeout_ms, source, message);
  }

 private:
  InProcessHub* hub_;
  int rank_;
};

}  // namespace

InProcessHub::InProcessHub(int size) {
  CHECK_GT(size, 0);
  for (int r = 0; r < size; ++r) boxes_.emplace_back(new Mailbox[kNumTags]);
  inline_.resize(size);
}

void InProcessHub::ServeInline(int rank, Handler handler) {
  CHECK(rank >= 0 && rank < size()) << "rank " << rank << " of " << size();
  inline_[rank] = std::make_unique<Inline>();
  inline_[rank]->handler = std::move(handler);
}

std::unique_ptr<Transport> InProcessHub::Endpoint(int rank) {
  CHECK(rank >= 0 && rank < size()) << "rank " << rank << " of " << size();
  return std::make_unique<InProcessTransport>(this, rank);
}

Status InProcessHub::Post(int dst, Tag tag, int source, Buffer message) {
  if (tag == Tag::kRequest && inline_[dst] != nullptr) {
    Inline& server = *inline_[dst];
    std::lock_guard<std::mutex> lock(server.mu);
    if (server.failed.ok()) server.failed = server.handler(source, message);
    return server.failed;
  }
  Mailbox& box = boxes_[dst][static_cast<int>(tag)];
  {
    std::lock_guard<std::mutex> lock(box.mu);
    box.queue.emplace_back(source, std::move(message));
  }
  box.cv.notify_one();
  return Status::Ok();
}

Status InProcessHub::Take(int rank, Tag tag, int timeout_ms, int* source, Buffer* message) {
  Mailbox& box = boxes_[rank][static_cast<int>(tag)];
  std::unique_lock<std::mutex> lock(box.mu);
  auto ready = [&] { return !box.queue.empty(); };
  if (timeout_ms < 0) {
    box.cv.wait(lock, ready);
  } else if (!box.cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready)) {
    return Status::Unavailable("no message within " + std::to_string(timeout_ms) + " ms");
  }
  *source = box.queue.front().first;
  *message = std::move(box.queue.front().second);
  box.queue.pop_front();
  return Status::Ok();
}

}  // namespace attnps::ps
