// ApplyOverrides: `field.path=value` edits of a JobConfig through protobuf reflection.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include <glog/logging.h>
#include "worker/config/job_config.h"

namespace attnps::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// One step of a path: `name` or `name[selector]` (selector: an index, or a table's name).
struct Segment {
  std::string name;
  bool has_selector = false;
  std::string selector;
};

Status SplitPath(const std::string& path, std::vector<Segment>* segments) {
  segments->clear();
  Segment current;
  bool in_brackets = false, after_bracket = false;
  for (char c : path) {
    if (in_brackets) {
      if (c == ']') {
        in_brackets = false;
        after_bracket = true;
      } else {
        current.selector += c;
      }
    } else if (c == '.') {
      if (current.name.empty()) return Status::InvalidArgument("empty field name in the path");
      segments->push_back(current);
      current = Segment();
      after_bracket = false;
    } else if (c == '[' && !after_bracket && !current.has_selector) {
      in_brackets = true;
      current.has_selector = true;
    } else if (after_bracket) {
      return Status::InvalidArgument("expected '.' or '=' after ']'");
    } else {
      current.name += c;
    }
  }
  if (in_brackets) return Status::InvalidArgument("unclosed '['");
  if (current.name.empty()) return Status::InvalidArgument("empty field name in the path");
  segments->push_back(current);
  return Status::Ok();
}

std::string FieldNames(const google::protobuf::Descriptor& d) {
  std::string names;
  for (int i = 0; i < d.field_count(); ++i) names += (i ? ", " : "") + d.field(i)->name();
  return names;
}

Status FindField(const Message& msg, const std::string& name, const FieldDescriptor** field) {
  const google::protobuf::Descriptor& d = *msg.GetDescriptor();
  *field = d.FindFieldByName(name);
  if (*field == nullptr) {
    return Status::InvalidArgument("no field \"" + name + "\" in " + d.full_name() +
                                   " (fields: " + FieldNames(d) + ")");
  }
  return Status::Ok();
}

// The element of repeated `field` chosen by `selector`: an index in [0, size), or, for repeated
// messages with a string field "name", the element of that name.
Status ResolveIndex(const Message& msg, const FieldDescriptor* field, const std::string& selector,
                    int* index) {
  const Reflection& r = *msg.GetReflection();
  const int size = r.FieldSize(msg, field);
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(selector.c_str(), &end, 10);
  if (!selector.empty() && *end == '\0' && errno == 0) {
    if (v < 0 || v >= size) {
      return Status::InvalidArgument(field->name() + "[" + selector + "]: index out of range (" +
                                     std::to_string(size) + " elements)");
    }
    *index = static_cast<int>(v);
    return Status::Ok();
  }
  const FieldDescriptor* name_field =
      field->message_type() != nullptr ? field->message_type()->FindFieldByName("name") : nullptr;
  if (name_field != nullptr && name_field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
    for (int i = 0; i < size; ++i) {
      const Message& element = r.GetRepeatedMessage(msg, field, i);
      if (element.GetReflection()->GetString(element, name_field) == selector) {
        *index = i;
        return Status::Ok();
      }
    }
  }
  return Status::InvalidArgument(field->name() + "[" + selector + "]: no such element");
}

// Where a scalar goes: the singular field, element `index` of a repeated one, or appended.
struct Target {
  Message* msg;
  const FieldDescriptor* field;
  int index;  // kSingular, kAppend or an element index
};
constexpr int kSingular = -1;
constexpr int kAppend = -2;

template <typename T>
void Store(const Target& t, T value,
           void (Reflection::*set)(Message*, const FieldDescriptor*, T) const,
           void (Reflection::*set_repeated)(Message*, const FieldDescriptor*, int, T) const,
           void (Reflection::*add)(Message*, const FieldDescriptor*, T) const) {
  const Reflection* r = t.msg->GetReflection();
  if (t.index == kSingular) {
    (r->*set)(t.msg, t.field, value);
  } else if (t.index == kAppend) {
    (r->*add)(t.msg, t.field, value);
  } else {
    (r->*set_repeated)(t.msg, t.field, t.index, value);
  }
}

Status ParseSigned(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 0);
  if (s.empty() || *end != '\0') return Status::InvalidArgument("not an integer: \"" + s + "\"");
  if (errno == ERANGE || v < lo || v > hi) {
    return Status::InvalidArgument("integer out of range: " + s);
  }
  *out = v;
  return Status::Ok();
}

Status ParseUnsigned(const std::string& s, uint64_t hi, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (s.empty() || s[0] == '-' || *end != '\0') {
    return Status::InvalidArgument("not an unsigned integer: \"" + s + "\"");
  }
  if (errno == ERANGE || v > hi) return Status::InvalidArgument("integer out of range: " + s);
  *out = v;
  return Status::Ok();
}

Status ParseDouble(const std::string& s, double* out) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0') return Status::InvalidArgument("not a number: \"" + s + "\"");
  *out = v;
  return Status::Ok();
}

Status ParseBool(const std::string& s, bool* out) {
  if (s == "true" || s == "1") {
    *out = true;
  } else if (s == "false" || s == "0") {
    *out = false;
  } else {
    return Status::InvalidArgument("not a bool (true, false): \"" + s + "\"");
  }
  return Status::Ok();
}

Status ParseEnum(const FieldDescriptor* field, const std::string& s, int* out) {
  const google::protobuf::EnumDescriptor* e = field->enum_type();
  const google::protobuf::EnumValueDescriptor* v = e->FindValueByName(s);
  if (v == nullptr) {
    std::string names;
    for (int i = 0; i < e->value_count(); ++i) names += (i ? ", " : "") + e->value(i)->name();
    return Status::InvalidArgument("no value \"" + s + "\" in enum " + e->name() + " (" + names +
                                   ")");
  }
  *out = v->number();
  return Status::Ok();
}

Status SetScalar(const Target& t, const std::string& value) {
  using R = Reflection;
  switch (t.field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int64_t v = 0;
      ATTNPS_RETURN_IF_ERROR(ParseSigned(value, std::numeric_limits<int32_t>::min(),
                                         std::numeric_limits<int32_t>::max(), &v));
      Store<int32_t>(t, static_cast<int32_t>(v), &R::SetInt32, &R::SetRepeatedInt32, &R::AddInt32);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = 0;
      ATTNPS_RETURN_IF_ERROR(ParseSigned(value, std::numeric_limits<int64_t>::min(),
                                         std::numeric_limits<int64_t>::max(), &v));
      Store<int64_t>(t, v, &R::SetInt64, &R::SetRepeatedInt64, &R::AddInt64);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint64_t v = 0;
      ATTNPS_RETURN_IF_ERROR(ParseUnsigned(value, std::numeric_limits<uint32_t>::max(), &v));
      Store<uint32_t>(t, static_cast<uint32_t>(v), &R::SetUInt32, &R::SetRepeatedUInt32,
                      &R::AddUInt32);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = 0;
      ATTNPS_RETURN_IF_ERROR(ParseUnsigned(value, std::numeric_limits<uint64_t>::max(), &v));
      Store<uint64_t>(t, v, &R::SetUInt64, &R::SetRepeatedUInt64, &R::AddUInt64);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double v = 0;
      ATTNPS_RETURN_IF_ERROR(ParseDouble(value, &v));
      Store<float>(t, static_cast<float>(v), &R::SetFloat, &R::SetRepeatedFloat, &R::AddFloat);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = 0;
      ATTNPS_RETURN_IF_ERROR(ParseDouble(value, &v));
      Store<double>(t, v, &R::SetDouble, &R::SetRepeatedDouble, &R::AddDouble);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v = false;
      ATTNPS_RETURN_IF_ERROR(ParseBool(value, &v));
      Store<bool>(t, v, &R::SetBool, &R::SetRepeatedBool, &R::AddBool);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      int v = 0;
      ATTNPS_RETURN_IF_ERROR(ParseEnum(t.field, value, &v));
      Store<int>(t, v, &R::SetEnumValue, &R::SetRepeatedEnumValue, &R::AddEnumValue);
      return Status::Ok();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      Store<std::string>(t, value, &R::SetString, &R::SetRepeatedString, &R::AddString);
      return Status::Ok();
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  LOG(FATAL) << "SetScalar on message field " << t.field->full_name();
}

// Keeps the first parse error of an override's text-format value.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) first_ = message;
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

// Replaces `msg` with the text-format body `value`.
Status SetMessage(Message* msg, const std::string& value) {
  msg->Clear();
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.MergeFromString(value, msg)) {
    return Status::InvalidArgument("not a valid " + msg->GetDescriptor()->name() +
                                   " text-format body: \"" + value + "\" (" + errors.first() + ")");
  }
  return Status::Ok();
}

// A comma-separated list replaces the repeated scalar field.
Status SetList(Message* msg, const FieldDescriptor* field, const std::string& value) {
  msg->GetReflection()->ClearField(msg, field);
  if (value.empty()) return Status::Ok();
  size_t begin = 0;
  while (true) {
    const size_t comma = value.find(',', begin);
    const std::string item = value.substr(begin, comma - begin);
    ATTNPS_RETURN_IF_ERROR(SetScalar({msg, field, kAppend}, item));
    if (comma == std::string::npos) return Status::Ok();
    begin = comma + 1;
  }
}

Status SetLeaf(Message* msg, const Segment& segment, const std::string& value) {
  const FieldDescriptor* field;
  ATTNPS_RETURN_IF_ERROR(FindField(*msg, segment.name, &field));
  const Reflection* r = msg->GetReflection();
  const bool is_message = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  if (segment.has_selector) {
    if (!field->is_repeated()) {
      return Status::InvalidArgument(field->name() + ": not a repeated field, drop the [...]");
    }
    int index;
    ATTNPS_RETURN_IF_ERROR(ResolveIndex(*msg, field, segment.selector, &index));
    if (is_message) return SetMessage(r->MutableRepeatedMessage(msg, field, index), value);
    return SetScalar({msg, field, index}, value);
  }
  if (field->is_repeated()) {
    if (is_message) {
      return Status::InvalidArgument(field->name() + ": repeated message; choose an element with " +
                                     field->name() + "[i]");
    }
    return SetList(msg, field, value);
  }
  if (is_message) return SetMessage(r->MutableMessage(msg, field), value);
  return SetScalar({msg, field, kSingular}, value);
}

// The message that segment `segment` of a path leads to (created when absent).
Status Descend(Message* msg, const Segment& segment, Message** next) {
  const FieldDescriptor* field;
  ATTNPS_RETURN_IF_ERROR(FindField(*msg, segment.name, &field));
  if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
    return Status::InvalidArgument(field->name() + ": not a message, cannot have sub-fields");
  }
  const Reflection* r = msg->GetReflection();
  if (field->is_repeated()) {
    if (!segment.has_selector) {
      return Status::InvalidArgument(field->name() + ": repeated; choose an element with " +
                                     field->name() + "[i]");
    }
    int index;
    ATTNPS_RETURN_IF_ERROR(ResolveIndex(*msg, field, segment.selector, &index));
    *next = r->MutableRepeatedMessage(msg, field, index);
    return Status::Ok();
  }
  if (segment.has_selector) {
    return Status::InvalidArgument(field->name() + ": not a repeated field, drop the [...]");
  }
  *next = r->MutableMessage(msg, field);
  return Status::Ok();
}

Status ApplyOverride(const std::string& override_text, JobConfig* config) {
  const size_t eq = override_text.find('=');
  if (eq == std::string::npos) {
    return Status::InvalidArgument("expected field.path=value");
  }
  std::vector<Segment> segments;
  ATTNPS_RETURN_IF_ERROR(SplitPath(override_text.substr(0, eq), &segments));
  Message* msg = config;
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    ATTNPS_RETURN_IF_ERROR(Descend(msg, segments[i], &msg));
  }
  return SetLeaf(msg, segments.back(), override_text.substr(eq + 1));
}

}  // namespace

Status ApplyOverrides(const std::vector<std::string>& overrides, JobConfig* config) {
  CHECK(config != nullptr);
  for (const std::string& o : overrides) {
    ATTNPS_RETURN_IF_ERROR(ApplyOverride(o, config).WithContext("override \"" + o + "\""));
  }
  return Status::Ok();
}

}  // namespace attnps::config
