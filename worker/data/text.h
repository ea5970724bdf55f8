// Small allocation-free text helpers shared by the sample parsers and the raw-format preparers.
#ifndef ATTNPS_WORKER_DATA_TEXT_H_
#define ATTNPS_WORKER_DATA_TEXT_H_

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace attnps::data {

// True when all of `s` is a base-10 uint64 (no sign, no spaces, not empty, no overflow).
inline bool ParseUint64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// True when all of `s` is a floating-point number (decimal or exponent form, no leading '+' or
// spaces) whose value is finite: "nan", "inf", "-inf" and out-of-range values such as "1e400" are
// rejected. *out is unspecified on false.
inline bool ParseDouble(std::string_view s, double* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(*out);
}

// True when all of `s` is a plain decimal number: an optional '-', one or more digits, optionally
// '.' and one or more digits; no exponent, no "nan"/"inf", and a finite value. For fields that hold
// integer seconds (e.g. Unix timestamps), where anything else is a malformed line.
inline bool ParsePlainDecimal(std::string_view s, double* out) {
  size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  const auto digits = [&s, &i] {
    size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > from;
  };
  if (!digits()) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  return i == s.size() && ParseDouble(s, out);
}

inline std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Splits `s` at every occurrence of `sep` into out[0..max); returns the number of fields, which
// may exceed `max` (the extra fields are not stored).
inline size_t SplitInto(std::string_view s, std::string_view sep, std::string_view* out,
                        size_t max) {
  size_t n = 0;
  while (true) {
    size_t pos = s.find(sep);
    if (n < max) out[n] = s.substr(0, pos);
    ++n;
    if (pos == std::string_view::npos) return n;
    s.remove_prefix(pos + sep.size());
  }
}

// Splits at runs of spaces/tabs (no empty fields), like Python's str.split().
inline size_t SplitWhitespace(std::string_view s, std::string_view* out, size_t max) {
  size_t n = 0;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
    if (i == s.size()) break;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\r') ++j;
    if (n < max) out[n] = s.substr(i, j - i);
    ++n;
    i = j;
  }
  return n;
}

inline void AppendUint(uint64_t v, std::string* out) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, ptr);
}

// `s` quoted for error messages, shortened to at most 60 bytes (cut before a UTF-8 continuation
// byte, so a multibyte character is not split). The bytes are kept raw: Status::ToString() escapes
// them; text logged outside a Status goes through EscapeForMessage (ops/status.h).
inline std::string Quote(std::string_view s) {
  constexpr size_t kMax = 60;
  if (s.size() <= kMax) return "\"" + std::string(s) + "\"";
  size_t cut = kMax;
  for (int k = 0; k < 3 && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80; ++k) {
    --cut;
  }
  return "\"" + std::string(s.substr(0, cut)) + "...\"";
}

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_TEXT_H_
