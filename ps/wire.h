// The PS wire format: requests and replies as plain structs, and their frames (proto/ps_wire.proto
// describes the layout). Protobuf stays inside wire.cc.
//
// Decoding never trusts the sender: the magic, header length, header, type, counts, payload size
// and alignment are all checked before anything is read, and a malformed message yields an
// InvalidArgument Status naming the field, never a crash. Decoded keys and values are views into
// the message (no copy): valid while its bytes live. Encoding writes header and payload into one
// Buffer; New*Frame lets the producer write the payload in place (gather keys, pull rows). Checks
// that need the server's tables (table id, dim) are the server's (ValidateAgainstTables in the
// server loop). Thread-safety: pure functions.
#ifndef ATTNPS_PS_WIRE_H_
#define ATTNPS_PS_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ops/status.h"
#include "ps/buffer.h"

namespace attnps::ps {

enum class RequestType { kPull = 1, kPush, kBarrier, kSave, kLoad, kStats, kShutdown };

// Limits that keep a malformed header from asking for absurd allocations.
constexpr uint64_t kMaxKeysPerRequest = uint64_t{1} << 27;
constexpr uint32_t kMaxDim = 1 << 16;
constexpr size_t kMaxPathBytes = 4096;

struct Request {
  RequestType type = RequestType::kBarrier;
  uint64_t request_id = 0;
  uint32_t table_id = 0;
  uint32_t dim = 0;
  uint64_t step = 0;
  int32_t sender = 0;
  std::string path;
  uint64_t num_keys = 0;           // kPull, kPush
  const uint64_t* keys = nullptr;  // [num_keys]
  const float* values = nullptr;   // kPush: [num_keys * dim] gradients
};

// Whole frames (header and payload) exchanged with one peer, counted by one side.
struct PeerTraffic {
  uint64_t sent_bytes = 0;
  uint64_t sent_messages = 0;
  uint64_t received_bytes = 0;
  uint64_t received_messages = 0;
};

struct Reply {
  uint64_t request_id = 0;
  Status status;
  uint64_t num_values = 0;
  const float* values = nullptr;                     // kPull: [num_values] rows
  std::vector<std::pair<uint32_t, uint64_t>> stats;  // kStats: (table id, rows)
  // kStats: the server's traffic with the requester, this request counted and this reply not.
  PeerTraffic traffic;
};

// A frame with the header of `r` and room for its payload, which the caller fills: keys
// [r.num_keys], and for kPush values [r.num_keys * r.dim]. r.keys/r.values are not read.
// head_bytes: where the payload starts (what Transport::SendFrame may send apart from it).
struct RequestFrame {
  Buffer buffer;
  size_t head_bytes = 0;
  uint64_t* keys = nullptr;
  float* values = nullptr;
};
RequestFrame NewRequestFrame(const Request& r);
// The same, with the payload copied from r.keys/r.values.
Buffer EncodeRequest(const Request& r);
Status DecodeRequest(const char* data, size_t size, Request* r);

struct ReplyFrame {
  Buffer buffer;
  size_t head_bytes = 0;
  float* values = nullptr;  // [r.num_values], to fill
};
ReplyFrame NewReplyFrame(const Reply& r);
Buffer EncodeReply(const Reply& r);
Status DecodeReply(const char* data, size_t size, Reply* r);
// The same checks for a frame whose head [data, size) came apart from its payload of
// payload_bytes (received elsewhere): r->values is null.
Status DecodeReplyHead(const char* data, size_t size, size_t payload_bytes, Reply* r);

const char* RequestTypeName(RequestType type);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_WIRE_H_
