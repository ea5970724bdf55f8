// Status: the result of an operation that can fail for reasons outside the program (I/O, network,
// bad input, bad config). Carries a code and a message with context (file, line, field). Broken
// invariants CHECK instead. Modelled on LevelDB's Status.
#ifndef ATTNPS_OPS_STATUS_H_
#define ATTNPS_OPS_STATUS_H_

#include <string>
#include <utility>

namespace attnps {

class Status {
 public:
  enum class Code { kOk, kInvalidArgument, kNotFound, kCorruption, kIoError, kUnavailable };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }

  // A status of any code (kOk ignores the message), e.g. from the wire.
  static Status FromCode(Code code, std::string msg) {
    return code == Code::kOk ? Status() : Status(code, std::move(msg));
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Corruption: <message>", or "OK".
  std::string ToString() const;
  // The same status with "context: " prepended to the message.
  Status WithContext(const std::string& context) const;

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace attnps

// Returns from the enclosing function when `expr` is not OK.
#define ATTNPS_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::attnps::Status attnps_status_ = (expr);        \
    if (!attnps_status_.ok()) return attnps_status_; \
  } while (0)

#endif  // ATTNPS_OPS_STATUS_H_
