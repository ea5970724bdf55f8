// Status: the result of an operation that can fail for reasons outside the program (I/O, network,
// bad input, bad config). Carries a code and a message with context (file, line, field). Broken
// invariants CHECK instead. Modelled on LevelDB's Status.
//
// Messages often quote untrusted text (a data line, a file name, a config value). message() keeps
// those bytes as they are; ToString(), the form meant for terminals and logs, passes the message
// through EscapeForMessage so that control bytes or invalid UTF-8 in the input cannot garble or
// drive the terminal.
#ifndef ATTNPS_OPS_STATUS_H_
#define ATTNPS_OPS_STATUS_H_

#include <string>
#include <string_view>
#include <utility>

namespace attnps {

// `text` made safe to print: every byte that could drive or garble a terminal becomes the four
// characters \xNN (upper-case hex), everything else is copied unchanged. Escaped:
//   - ASCII control bytes 0x00-0x1F except '\n' and '\t' ('\r' included, so a CR read from a file
//     cannot overwrite the terminal line; ESC included, so no escape sequences), and DEL 0x7F;
//   - bytes that are not part of a well-formed UTF-8 sequence (stray continuation bytes, truncated
//     sequences, overlong forms, surrogates, code points above U+10FFFF), each byte on its own;
//   - the C1 control characters U+0080-U+009F (valid UTF-8, but terminals may act on them):
//     both bytes of their encoding.
// Other valid UTF-8 (e.g. the file name "données.tsv") passes unchanged, as do printable
// ASCII and the backslash itself. Thread-safe (a pure function). Use it wherever raw input text
// is logged outside a Status, e.g. LOG(WARNING) << EscapeForMessage(where).
std::string EscapeForMessage(std::string_view text);

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
  // The message as built, raw bytes included (for tests and programmatic use; print ToString()).
  const std::string& message() const { return message_; }
  // "Corruption: <message>", or "OK", with the message escaped by EscapeForMessage.
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
