#include "worker/data/json_fields.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace attnps::data {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Status Object(const std::vector<std::string_view>& wanted, JsonFields* out) {
    SkipSpace();
    if (!Eat('{')) return Error("expected '{'");
    SkipSpace();
    if (Eat('}')) return End();
    while (true) {
      SkipSpace();
      std::string key;
      ATTNPS_RETURN_IF_ERROR(String(&key));
      SkipSpace();
      if (!Eat(':')) return Error("expected ':'");
      JsonValue value;
      ATTNPS_RETURN_IF_ERROR(Value(&value, 1));
      if (std::find(wanted.begin(), wanted.end(), key) != wanted.end()) {
        out->fields.emplace_back(std::move(key), std::move(value));
      }
      SkipSpace();
      if (Eat(',')) continue;
      if (Eat('}')) return End();
      return Error("expected ',' or '}'");
    }
  }

 private:
  Status End() {
    SkipSpace();
    return pos_ == s_.size() ? Status::Ok() : Error("trailing characters after the object");
  }

  Status Error(const std::string& what) const {
    return Status::InvalidArgument("JSON: " + what + " at byte " + std::to_string(pos_));
  }

  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r' || s_[pos_] == '\n')) {
      ++pos_;
    }
  }

  bool Eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool EatWord(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // A string in double or single quotes.
  Status String(std::string* out) {
    if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
      return Error("expected a string");
    }
    char quote = s_[pos_++];
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == quote) return Status::Ok();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case 'n':
          out->push_back('\n');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return Error("short \\u escape");
          uint32_t cp = 0;
          for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9')
              cp |= h - '0';
            else if (h >= 'a' && h <= 'f')
              cp |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F')
              cp |= h - 'A' + 10;
            else
              return Error("bad \\u escape");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          out->push_back(e);
          break;  // \" \' \\ \/ and Python's other escapes
      }
    }
    return Error("unterminated string");
  }

  Status Value(JsonValue* v, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= s_.size()) return Error("expected a value");
    char c = s_[pos_];
    if (c == '"' || c == '\'') {
      v->kind = JsonValue::Kind::kString;
      return String(&v->text);
    }
    if (c == '[' || c == '(') return Array(v, depth, c == '[' ? ']' : ')');
    if (c == '{') return SkipObject(depth);
    if (EatWord("true") || EatWord("True") || EatWord("false") || EatWord("False")) {
      v->kind = JsonValue::Kind::kBool;
      return Status::Ok();
    }
    if (EatWord("null") || EatWord("None")) return Status::Ok();
    size_t start = pos_;
    while (pos_ < s_.size() &&
           (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-' ||
            s_[pos_] == '+' || s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
    }
    if (pos_ == start) return Error("unexpected character");
    v->kind = JsonValue::Kind::kNumber;
    v->text.assign(s_.substr(start, pos_ - start));
    return Status::Ok();
  }

  Status Array(JsonValue* v, int depth, char close) {
    v->kind = JsonValue::Kind::kArray;
    ++pos_;
    SkipSpace();
    if (Eat(close)) return Status::Ok();
    while (true) {
      v->items.emplace_back();
      ATTNPS_RETURN_IF_ERROR(Value(&v->items.back(), depth + 1));
      SkipSpace();
      if (Eat(',')) {
        SkipSpace();
        if (Eat(close)) return Status::Ok();  // Python allows a trailing comma
        continue;
      }
      if (Eat(close)) return Status::Ok();
      return Error("expected ',' or the end of an array");
    }
  }

  Status SkipObject(int depth) {
    ++pos_;
    SkipSpace();
    if (Eat('}')) return Status::Ok();
    while (true) {
      SkipSpace();
      JsonValue key, value;
      ATTNPS_RETURN_IF_ERROR(Value(&key, depth + 1));
      SkipSpace();
      if (!Eat(':')) return Error("expected ':'");
      ATTNPS_RETURN_IF_ERROR(Value(&value, depth + 1));
      SkipSpace();
      if (Eat(',')) continue;
      if (Eat('}')) return Status::Ok();
      return Error("expected ',' or '}'");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

const JsonValue* JsonFields::Find(std::string_view name) const {
  for (const auto& [key, value] : fields) {
    if (key == name) return &value;
  }
  return nullptr;
}

Status ParseJsonFields(std::string_view line, const std::vector<std::string_view>& wanted,
                       JsonFields* out) {
  out->fields.clear();
  return Parser(line).Object(wanted, out);
}

}  // namespace attnps::data
