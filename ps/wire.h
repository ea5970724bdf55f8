// The PS wire format: requests and replies as plain structs, and their frames (proto/ps_wire.proto
// describes the layout). Protobuf stays inside wire.cc.
//
// Decoding never trusts the sender: the magic, header length, header, type, counts and payload
// size are all checked before anything is allocated or copied, and a malformed message yields an
// InvalidArgument/Corruption Status naming the field, never a crash. Checks that need the server's
// tables (table id, dim) are the server's (ValidateAgainstTables in the server loop).
// Thread-safety: pure functions.
#ifndef ATTNPS_PS_WIRE_H_
#define ATTNPS_PS_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ops/status.h"

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
  std::vector<uint64_t> keys;  // kPull, kPush
  std::vector<float> values;   // kPush: keys.size() * dim gradients
};

struct Reply {
  uint64_t request_id = 0;
  Status status;
  std::vector<float> values;                         // kPull: rows
  std::vector<std::pair<uint32_t, uint64_t>> stats;  // kStats: (table id, rows)
};

std::string EncodeRequest(const Request& request);
Status DecodeRequest(const char* data, size_t size, Request* request);

std::string EncodeReply(const Reply& reply);
Status DecodeReply(const char* data, size_t size, Reply* reply);

const char* RequestTypeName(RequestType type);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_WIRE_H_
