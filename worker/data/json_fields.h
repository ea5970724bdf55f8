// A small tolerant reader for one JSON object per line, enough for the Amazon review and meta
// dumps: top-level string, number and (nested) array-of-strings fields. Also accepts the old
// Python-literal style of those dumps (single-quoted strings, True/False/None).
#ifndef ATTNPS_WORKER_DATA_JSON_FIELDS_H_
#define ATTNPS_WORKER_DATA_JSON_FIELDS_H_

#include <string>
#include <string_view>
#include <vector>

#include "ops/status.h"

namespace attnps::data {

struct JsonValue {
  enum class Kind { kNull, kString, kNumber, kBool, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string text;              // kString: the unescaped string; kNumber: the literal
  std::vector<JsonValue> items;  // kArray elements (objects are parsed but not kept)
};

// The top-level fields of an object line whose names are in `wanted` (others are skipped).
struct JsonFields {
  std::vector<std::pair<std::string, JsonValue>> fields;
  // The field named `name`, or nullptr.
  const JsonValue* Find(std::string_view name) const;
};

// Parses `line` as one object. InvalidArgument with the byte position on malformed input.
Status ParseJsonFields(std::string_view line, const std::vector<std::string_view>& wanted,
                       JsonFields* out);

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_JSON_FIELDS_H_
