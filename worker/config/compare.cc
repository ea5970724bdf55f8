// CompareStateConfig: walks both configs by reflection, field by field with defaults applied, and
// sorts every difference into a state mismatch or a changed setting by its field path.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "worker/config/job_config.h"

namespace attnps::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

// Top-level messages whose every field may change on resume.
constexpr const char* kSettingRoots[] = {"data", "train", "ps", "checkpoint", "metrics"};
// Fields inside the state parts that may change on resume (paths without indices).
constexpr const char* kSettingFields[] = {"tables.optimizer.learning_rate",
                                          "tables.optimizer.ftrl_alpha"};

// Whether the field at `key` (its path without indices) defines the saved state.
bool IsState(const std::string& key) {
  const std::string root = key.substr(0, key.find('.'));
  for (const char* r : kSettingRoots) {
    if (root == r) return false;
  }
  if (root == "dense_optimizer") return key == "dense_optimizer.kind";
  // The retrieval task's settings but the tables' roles (the split, negatives, evaluation,
  // serving: like data.*).
  if (root == "retrieval") {
    return key == "retrieval.output_table" || key == "retrieval.output_bias";
  }
  for (const char* f : kSettingFields) {
    if (key == f) return false;
  }
  return true;
}

// The shortest "%g" text that reads back as `v` (T = float or double).
template <typename T>
std::string ShortestText(T v) {
  char buf[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, static_cast<double>(v));
    if (static_cast<T>(std::strtod(buf, nullptr)) == v) break;
  }
  return buf;
}

// Element `i` of a repeated scalar, or the singular scalar when i < 0, as text.
std::string ScalarText(const Message& m, const FieldDescriptor* f, int i) {
  const Reflection* r = m.GetReflection();
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return ShortestText(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return ShortestText(rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f)) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return (rep ? r->GetRepeatedEnum(m, f, i) : r->GetEnum(m, f))->name();
    case FieldDescriptor::CPPTYPE_STRING:
      return "\"" + (rep ? r->GetRepeatedString(m, f, i) : r->GetString(m, f)) + "\"";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return "?";
}

std::string ListText(const std::vector<int>& values) {
  std::string out;
  for (int v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return "[" + out + "]";
}

// A repeated scalar as "[a, b]", with the default layer lists applied where one is empty.
std::string RepeatedText(const Message& m, const FieldDescriptor* f) {
  if (f == MlpConfig::descriptor()->FindFieldByName("hidden")) {
    return ListText(MlpHidden(static_cast<const MlpConfig&>(m)));
  }
  if (f == DinModel::descriptor()->FindFieldByName("attention_hidden")) {
    return ListText(AttentionHidden(static_cast<const DinModel&>(m)));
  }
  std::string out;
  const int n = m.GetReflection()->FieldSize(m, f);
  for (int i = 0; i < n; ++i) out += (i ? ", " : "") + ScalarText(m, f, i);
  return "[" + out + "]";
}

// The name of the set member of oneof `o`, or "not set".
std::string OneofText(const Message& m, const OneofDescriptor* o) {
  const FieldDescriptor* f = m.GetReflection()->GetOneofFieldDescriptor(m, o);
  return f != nullptr ? f->name() : "not set";
}

// Compares two messages of one type; `path` names fields for people (`tables[0].dim`), `key`
// for IsState (`tables.dim`).
class Comparer {
 public:
  explicit Comparer(std::vector<std::string>* changed) : changed_(changed) {}

  void Messages(const Message& a, const Message& b, const std::string& path,
                const std::string& key) {
    const google::protobuf::Descriptor* d = a.GetDescriptor();
    for (int i = 0; i < d->oneof_decl_count(); ++i) Oneof(a, b, d->oneof_decl(i), path, key);
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (f->containing_oneof() == nullptr) Field(a, b, f, path + f->name(), key + f->name());
    }
  }

  Status ToStatus() const {
    if (mismatches_.empty()) return Status::Ok();
    std::string msg;
    for (const std::string& m : mismatches_) msg += (msg.empty() ? "" : "; ") + m;
    return Status::InvalidArgument(msg);
  }

 private:
  // The member set must be the same; then that member is compared.
  void Oneof(const Message& a, const Message& b, const OneofDescriptor* o, const std::string& path,
             const std::string& key) {
    const FieldDescriptor* fa = a.GetReflection()->GetOneofFieldDescriptor(a, o);
    const FieldDescriptor* fb = b.GetReflection()->GetOneofFieldDescriptor(b, o);
    if (fa != fb) {
      Differ(path + o->name(), key + o->name(), OneofText(a, o), OneofText(b, o));
    } else if (fa != nullptr) {
      Field(a, b, fa, path + fa->name(), key + fa->name());
    }
  }

  void Field(const Message& a, const Message& b, const FieldDescriptor* f, const std::string& path,
             const std::string& key) {
    const Reflection* ra = a.GetReflection();
    const Reflection* rb = b.GetReflection();
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      const std::string ta = f->is_repeated() ? RepeatedText(a, f) : ScalarText(a, f, -1);
      const std::string tb = f->is_repeated() ? RepeatedText(b, f) : ScalarText(b, f, -1);
      if (ta != tb) Differ(path, key, ta, tb);
    } else if (!f->is_repeated()) {  // an unset message reads as its defaults
      Messages(ra->GetMessage(a, f), rb->GetMessage(b, f), path + ".", key + ".");
    } else {
      const int na = ra->FieldSize(a, f), nb = rb->FieldSize(b, f);
      if (na != nb) Differ(path, key, std::to_string(na), std::to_string(nb));
      for (int i = 0; i < na && i < nb; ++i) {
        Messages(ra->GetRepeatedMessage(a, f, i), rb->GetRepeatedMessage(b, f, i),
                 path + "[" + std::to_string(i) + "].", key + ".");
      }
    }
  }

  void Differ(const std::string& path, const std::string& key, const std::string& saved,
              const std::string& now) {
    if (IsState(key)) {
      mismatches_.push_back(path + ": " + saved + " in the checkpoint, " + now + " now");
    } else if (changed_ != nullptr) {
      changed_->push_back(path + ": " + saved + " -> " + now);
    }
  }

  std::vector<std::string>* changed_;
  std::vector<std::string> mismatches_;
};

}  // namespace

Status CompareStateConfig(const JobConfig& saved, const JobConfig& now,
                          std::vector<std::string>* changed_settings) {
  Comparer comparer(changed_settings);
  comparer.Messages(saved, now, "", "");
  return comparer.ToStatus();
}

}  // namespace attnps::config
