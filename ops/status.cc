#include "ops/status.h"

namespace attnps {
namespace {

void AppendHexByte(unsigned char c, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out->append("\\x");
  out->push_back(kHex[c >> 4]);
  out->push_back(kHex[c & 0xF]);
}

bool InRange(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }

// The length (2..4) of the well-formed UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0 when
// the bytes there are not one (RFC 3629, table 3-7 of the Unicode standard).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = byte(0);
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (InRange(c, 0xC2, 0xDF)) {
    len = 2;
  } else if (InRange(c, 0xE0, 0xEF)) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (InRange(c, 0xF0, 0xF4)) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // a continuation byte, C0/C1 (overlong) or F5..FF
  }
  if (s.size() - i < len) return 0;  // truncated
  if (!InRange(byte(1), lo, hi)) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (!InRange(byte(k), 0x80, 0xBF)) return 0;
  }
  return len;
}

}  // namespace

std::string EscapeForMessage(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
        AppendHexByte(c, &out);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    const size_t len = Utf8SequenceLength(text, i);
    if (len == 0) {
      AppendHexByte(c, &out);  // resynchronize at the next byte
      ++i;
    } else if (c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      AppendHexByte(c, &out);  // a C1 control character U+0080-U+009F
      AppendHexByte(static_cast<unsigned char>(text[i + 1]), &out);
      i += 2;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string Status::ToString() const {
  const char* prefix = "";
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      prefix = "Invalid argument: ";
      break;
    case Code::kNotFound:
      prefix = "Not found: ";
      break;
    case Code::kCorruption:
      prefix = "Corruption: ";
      break;
    case Code::kIoError:
      prefix = "IO error: ";
      break;
    case Code::kUnavailable:
      prefix = "Unavailable: ";
      break;
  }
  return prefix + EscapeForMessage(message_);
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace attnps
