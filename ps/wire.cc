#include "ps/wire.h"

#include <cstring>

#include "proto/ps_wire.pb.h"

namespace attnps::ps {
namespace {

constexpr char kMagic[4] = {'A', 'P', 'S', '1'};
constexpr size_t kPrefix = 8;  // magic + header length
constexpr uint32_t kMaxHeaderBytes = 1 << 20;

size_t PaddedHeaderEnd(size_t header_len) { return (kPrefix + header_len + 7) / 8 * 8; }

// magic | L | header | padding | room for payload_bytes; returns the frame and its payload start.
Buffer Frame(const google::protobuf::MessageLite& header, size_t payload_bytes, char** payload) {
  const std::string h = header.SerializeAsString();
  const uint32_t len = static_cast<uint32_t>(h.size());
  const size_t start = PaddedHeaderEnd(len);
  Buffer out(start + payload_bytes);
  std::memcpy(out.data(), kMagic, 4);
  std::memcpy(out.data() + 4, &len, 4);
  std::memcpy(out.data() + kPrefix, h.data(), len);
  std::memset(out.data() + kPrefix + len, 0, start - kPrefix - len);
  *payload = out.data() + start;
  return out;
}

// Splits a frame into its parsed header and payload.
Status Unframe(const char* data, size_t size, google::protobuf::MessageLite* header,
               const char** payload, size_t* payload_size) {
  if (size < kPrefix)
    return Status::InvalidArgument("message of " + std::to_string(size) +
                                   " bytes is shorter than the frame prefix");
  if (std::memcmp(data, kMagic, 4) != 0)
    return Status::InvalidArgument("bad magic: not an attnps message");
  uint32_t len;
  std::memcpy(&len, data + 4, 4);
  if (len > kMaxHeaderBytes || PaddedHeaderEnd(len) > size) {
    return Status::InvalidArgument("header length " + std::to_string(len) +
                                   " exceeds the message (" + std::to_string(size) + " bytes)");
  }
  if (!header->ParseFromArray(data + kPrefix, static_cast<int>(len))) {
    return Status::InvalidArgument("header does not parse");
  }
  *payload = data + PaddedHeaderEnd(len);
  *payload_size = size - PaddedHeaderEnd(len);
  if (*payload_size > 0 && reinterpret_cast<uintptr_t>(*payload) % 8 != 0) {
    return Status::InvalidArgument("payload is not 8-byte aligned in memory");
  }
  return Status::Ok();
}

bool KnownType(int type) { return type >= 1 && type <= 7; }

Status CheckPayload(const Request& r, uint64_t num_keys, size_t payload_size) {
  const bool has_keys = r.type == RequestType::kPull || r.type == RequestType::kPush;
  if (!has_keys && num_keys != 0)
    return Status::InvalidArgument("num_keys must be 0 for " +
                                   std::string(RequestTypeName(r.type)));
  if (num_keys > kMaxKeysPerRequest)
    return Status::InvalidArgument("num_keys " + std::to_string(num_keys) + " exceeds the limit " +
                                   std::to_string(kMaxKeysPerRequest));
  if (has_keys && (r.dim == 0 || r.dim > kMaxDim))
    return Status::InvalidArgument("dim " + std::to_string(r.dim) + " out of range [1, " +
                                   std::to_string(kMaxDim) + "]");
  if (r.path.size() > kMaxPathBytes)
    return Status::InvalidArgument("path longer than " + std::to_string(kMaxPathBytes) + " bytes");
  uint64_t expected = num_keys * sizeof(uint64_t);
  if (r.type == RequestType::kPush) expected += num_keys * r.dim * sizeof(float);
  if (payload_size != expected) {
    return Status::InvalidArgument(std::string(RequestTypeName(r.type)) + " payload is " +
                                   std::to_string(payload_size) + " bytes, header says " +
                                   std::to_string(expected));
  }
  return Status::Ok();
}

}  // namespace

const char* RequestTypeName(RequestType type) {
  switch (type) {
    case RequestType::kPull:
      return "PULL";
    case RequestType::kPush:
      return "PUSH";
    case RequestType::kBarrier:
      return "BARRIER";
    case RequestType::kSave:
      return "SAVE";
    case RequestType::kLoad:
      return "LOAD";
    case RequestType::kStats:
      return "STATS";
    case RequestType::kShutdown:
      return "SHUTDOWN";
  }
  return "UNKNOWN";
}

RequestFrame NewRequestFrame(const Request& r) {
  wire::RequestHeader h;
  h.set_type(static_cast<wire::RequestType>(r.type));
  h.set_request_id(r.request_id);
  h.set_table_id(r.table_id);
  h.set_num_keys(r.num_keys);
  h.set_dim(r.dim);
  h.set_step(r.step);
  h.set_path(r.path);
  h.set_sender(r.sender);
  const size_t key_bytes = r.num_keys * sizeof(uint64_t);
  const size_t value_bytes =
      r.type == RequestType::kPush ? r.num_keys * r.dim * sizeof(float) : size_t{0};
  RequestFrame f;
  char* payload = nullptr;
  f.buffer = Frame(h, key_bytes + value_bytes, &payload);
  f.head_bytes = static_cast<size_t>(payload - f.buffer.data());
  f.keys = reinterpret_cast<uint64_t*>(payload);
  if (r.type == RequestType::kPush) f.values = reinterpret_cast<float*>(payload + key_bytes);
  return f;
}

Buffer EncodeRequest(const Request& r) {
  RequestFrame f = NewRequestFrame(r);
  if (r.num_keys > 0) std::memcpy(f.keys, r.keys, r.num_keys * sizeof(uint64_t));
  if (f.values != nullptr && r.num_keys > 0) {
    std::memcpy(f.values, r.values, r.num_keys * r.dim * sizeof(float));
  }
  return std::move(f.buffer);
}

Status DecodeRequest(const char* data, size_t size, Request* r) {
  wire::RequestHeader h;
  const char* payload = nullptr;
  size_t payload_size = 0;
  ATTNPS_RETURN_IF_ERROR(Unframe(data, size, &h, &payload, &payload_size).WithContext("request"));
  if (!KnownType(h.type()))
    return Status::InvalidArgument("request: unknown type " + std::to_string(h.type()));
  r->type = static_cast<RequestType>(h.type());
  r->request_id = h.request_id();
  r->table_id = h.table_id();
  r->dim = h.dim();
  r->step = h.step();
  r->sender = h.sender();
  r->path = h.path();
  ATTNPS_RETURN_IF_ERROR(CheckPayload(*r, h.num_keys(), payload_size)
                             .WithContext("request " + std::to_string(h.request_id())));
  r->num_keys = h.num_keys();
  r->keys = reinterpret_cast<const uint64_t*>(payload);
  r->values = r->type == RequestType::kPush
                  ? reinterpret_cast<const float*>(payload + r->num_keys * sizeof(uint64_t))
                  : nullptr;
  return Status::Ok();
}

ReplyFrame NewReplyFrame(const Reply& r) {
  wire::ReplyHeader h;
  h.set_request_id(r.request_id);
  h.set_status_code(static_cast<int>(r.status.code()));
  h.set_message(r.status.message());
  h.set_num_values(r.num_values);
  for (const auto& [table, rows] : r.stats) {
    wire::TableStats* s = h.add_stats();
    s->set_table_id(table);
    s->set_rows(rows);
  }
  if (r.traffic.received_messages > 0) {
    wire::PeerTraffic* t = h.mutable_traffic();
    t->set_received_bytes(r.traffic.received_bytes);
    t->set_received_messages(r.traffic.received_messages);
    t->set_sent_bytes(r.traffic.sent_bytes);
    t->set_sent_messages(r.traffic.sent_messages);
  }
  ReplyFrame f;
  char* payload = nullptr;
  f.buffer = Frame(h, r.num_values * sizeof(float), &payload);
  f.head_bytes = static_cast<size_t>(payload - f.buffer.data());
  f.values = reinterpret_cast<float*>(payload);
  return f;
}

Buffer EncodeReply(const Reply& r) {
  ReplyFrame f = NewReplyFrame(r);
  if (r.num_values > 0) std::memcpy(f.values, r.values, r.num_values * sizeof(float));
  return std::move(f.buffer);
}

namespace {

// A reply whose parsed header `h` comes with payload_size bytes of payload at `payload` (or
// elsewhere: null).
Status FinishReply(const wire::ReplyHeader& h, const char* payload, size_t payload_size, Reply* r) {
  if (h.num_values() > kMaxKeysPerRequest * kMaxDim ||
      payload_size != h.num_values() * sizeof(float)) {
    return Status::InvalidArgument("reply " + std::to_string(h.request_id()) + ": payload is " +
                                   std::to_string(payload_size) + " bytes, header says " +
                                   std::to_string(h.num_values()) + " floats");
  }
  if (h.status_code() < 0 || h.status_code() > static_cast<int>(Status::Code::kUnavailable)) {
    return Status::InvalidArgument("reply " + std::to_string(h.request_id()) +
                                   ": unknown status code " + std::to_string(h.status_code()));
  }
  r->request_id = h.request_id();
  r->status = Status::FromCode(static_cast<Status::Code>(h.status_code()), h.message());
  r->num_values = h.num_values();
  r->values = reinterpret_cast<const float*>(payload);
  r->stats.clear();
  for (const wire::TableStats& s : h.stats()) r->stats.emplace_back(s.table_id(), s.rows());
  r->traffic = {h.traffic().sent_bytes(), h.traffic().sent_messages(), h.traffic().received_bytes(),
                h.traffic().received_messages()};
  return Status::Ok();
}

}  // namespace

Status DecodeReply(const char* data, size_t size, Reply* r) {
  wire::ReplyHeader h;
  const char* payload = nullptr;
  size_t payload_size = 0;
  ATTNPS_RETURN_IF_ERROR(Unframe(data, size, &h, &payload, &payload_size).WithContext("reply"));
  return FinishReply(h, payload, payload_size, r);
}

Status DecodeReplyHead(const char* data, size_t size, size_t payload_bytes, Reply* r) {
  wire::ReplyHeader h;
  const char* payload = nullptr;
  size_t rest = 0;
  ATTNPS_RETURN_IF_ERROR(Unframe(data, size, &h, &payload, &rest).WithContext("reply"));
  if (rest != 0) {
    return Status::InvalidArgument("reply head of " + std::to_string(size) + " bytes has " +
                                   std::to_string(rest) + " bytes after the header");
  }
  ATTNPS_RETURN_IF_ERROR(FinishReply(h, nullptr, payload_bytes, r));
  r->values = nullptr;
  return Status::Ok();
}

}  // namespace attnps::ps
