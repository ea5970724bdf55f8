#include "ops/status.h"

namespace attnps {

std::string Status::ToString() const {
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "Invalid argument: " + message_;
    case Code::kNotFound:
      return "Not found: " + message_;
    case Code::kCorruption:
      return "Corruption: " + message_;
    case Code::kIoError:
      return "IO error: " + message_;
    case Code::kUnavailable:
      return "Unavailable: " + message_;
  }
  return message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace attnps
