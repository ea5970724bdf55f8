// Transport: tagged point-to-point messages between the ranks of a job. Implementations: the
// in-process hub below (local mode and unit tests) and MPI (mpirun jobs).
//
// Thread-safety: Send and Recv may be called from several threads; messages between one pair of
// ranks with one tag arrive in the order sent.
#ifndef ATTNPS_PS_TRANSPORT_H_
#define ATTNPS_PS_TRANSPORT_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ops/status.h"
#include "ps/buffer.h"

namespace attnps::ps {

enum class Tag { kRequest = 0, kReply = 1 };
constexpr int kNumTags = 2;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual Status Send(int dst, Tag tag, Buffer message) = 0;
  // The next message with `tag` addressed to this rank, from any source. Waits at most
  // timeout_ms (Unavailable when nothing came); timeout_ms < 0 waits forever.
  // `message` keeps its storage when it is large enough (a receive loop reuses one buffer).
  virtual Status Recv(Tag tag, int timeout_ms, int* source, Buffer* message) = 0;

  // A message whose bytes from head_bytes on are its payload: a transport may carry the head
  // and the payload apart, so that the receiver can place the payload (RecvPlaced). The same
  // message as Send's for Recv. Default: Send.
  virtual Status SendFrame(int dst, Tag tag, Buffer message, size_t head_bytes) {
    (void)head_bytes;
    return Send(dst, tag, std::move(message));
  }
  // Chooses where the payload of a message sent by SendFrame goes, given its source, head and
  // payload size: `payload_bytes` of room, or null to leave it in the message.
  using Placer =
      std::function<char*(int source, const char* head, size_t head_bytes, size_t payload_bytes)>;
  // Recv, except that when the transport carried the payload apart and `place` gave it room,
  // the payload lands there, `message` holds only the head and *placed is true. Otherwise
  // `message` is the whole message (*placed false). Default: Recv.
  virtual Status RecvPlaced(Tag tag, int timeout_ms, int* source, Buffer* message,
                            const Placer& place, bool* placed) {
    (void)place;
    *placed = false;
    return Recv(tag, timeout_ms, source, message);
  }
};

// Mailboxes of `size` ranks in one process; Endpoint(r) is rank r's Transport.
class InProcessHub {
 public:
  explicit InProcessHub(int size);
  std::unique_ptr<Transport> Endpoint(int rank);
  int size() const { return static_cast<int>(boxes_.size()); }

  // Requests (Tag::kRequest) sent to `rank` from now on go to `handler`, called on the sending
  // thread before Send returns, one at a time, instead of to its mailbox: a server served inline.
  // A failed handler call is kept: later Sends to `rank` return it. Call before the first Send
  // to `rank` (set-up: not synchronized with Post).
  using Handler = std::function<Status(int source, const Buffer& message)>;
  void ServeInline(int rank, Handler handler);

  // Returns the inline handler's status, else Ok.
  Status Post(int dst, Tag tag, int source, Buffer message);
  Status Take(int rank, Tag tag, int timeout_ms, int* source, Buffer* message);

 private:
  struct Mailbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<int, Buffer>> queue;
  };
  struct Inline {
    std::mutex mu;  // one request at a time
    Handler handler;
    Status failed;
  };
  std::vector<std::unique_ptr<Mailbox[]>> boxes_;  // [rank][tag]
  std::vector<std::unique_ptr<Inline>> inline_;    // [rank], null when not served inline
};

}  // namespace attnps::ps

#endif  // ATTNPS_PS_TRANSPORT_H_
