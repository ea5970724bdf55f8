// Parsing, printing and translation of the job config. Validation: validate.cc; overrides:
// overrides.cc.
#include "worker/config/job_config.h"

#include <sys/stat.h>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <tuple>
#include <utility>

#include <glog/logging.h>

namespace attnps::config {
namespace {

constexpr int kTabWidth = 8;  // protobuf's tokenizer advances a tab to the next multiple of 8

// Zero-based (line, column) of byte `offset` of `text`, counting columns as protobuf does.
std::pair<int, int> PositionOf(const std::string& text, size_t offset) {
  int line = 0, column = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 0;
    } else if (text[i] == '\t') {
      column += kTabWidth - column % kTabWidth;
    } else {
      ++column;
    }
  }
  return {line, column};
}

// Byte offset of zero-based (line, column), or text.size() when past the end.
size_t OffsetOf(const std::string& text, int line, int column) {
  size_t i = 0;
  for (int l = 0; l < line && i < text.size(); ++i) {
    if (text[i] == '\n') ++l;
  }
  for (int c = 0; c < column && i < text.size() && text[i] != '\n'; ++i) {
    c += text[i] == '\t' ? kTabWidth - c % kTabWidth : 1;
  }
  return i;
}

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The name an error is about, for errors whose name the parser has already consumed (an unknown
// field or enum value, a repeated or conflicting field), or "" for other errors.
std::string ConsumedName(const std::string& message) {
  // {phrase, whether the name is the quoted string after it (else the first in the message)}
  static const std::pair<const char*, bool> kPhrases[] = {{"has no field named", true},
                                                          {"Unknown enumeration value of", true},
                                                          {"is specified multiple times", false},
                                                          {"is specified along with field", false}};
  for (const auto& [phrase, after] : kPhrases) {
    const size_t at = message.find(phrase);
    if (at == std::string::npos) continue;
    const size_t open = message.find('"', after ? at : 0);
    const size_t close = open == std::string::npos ? open : message.find('"', open + 1);
    if (close == std::string::npos) return "";
    return message.substr(open + 1, close - open - 1);
  }
  return "";
}

// Protobuf reports errors about a consumed name at the token after it. Returns the start of the
// last whole-word occurrence of the name before `offset`, or npos.
size_t OffendingTokenBefore(const std::string& text, size_t offset, const std::string& message) {
  const std::string name = ConsumedName(message);
  if (name.empty()) return std::string::npos;
  size_t end = std::min(offset, text.size());  // search [0, end)
  while (end >= name.size()) {
    const size_t at = text.rfind(name, end - name.size());
    if (at == std::string::npos) return at;
    const size_t after = at + name.size();
    const bool starts_word = at == 0 || !IsWordChar(text[at - 1]);
    if (starts_word && (after >= text.size() || !IsWordChar(text[after]))) return at;
    if (at == 0) break;
    end = after - 1;
  }
  return std::string::npos;
}

// Collects the parser's errors as "<name>:<line>:<column>: <message>", 1-based, pointing at the
// offending token.
class PrefixingErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  PrefixingErrorCollector(std::string name, const std::string& text)
      : name_(std::move(name)), text_(text) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (line >= 0) {
      const size_t at = OffendingTokenBefore(text_, OffsetOf(text_, line, column), message);
      if (at != std::string::npos) std::tie(line, column) = PositionOf(text_, at);
    }
    errors_.push_back(Format(line, column, message));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    LOG(WARNING) << Format(line, column, message);
  }

  // All errors, one per line; the first starts the message so it carries the position.
  std::string Joined() const {
    std::string out;
    for (const std::string& e : errors_) out += (out.empty() ? "" : "\n") + e;
    return out;
  }
  bool empty() const { return errors_.empty(); }

 private:
  std::string Format(int line, int column, const std::string& message) const {
    // The parser reports line -1 for errors without a position.
    if (line < 0) return name_ + ": " + message;
    return name_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
           message;
  }

  std::string name_;
  const std::string& text_;
  std::vector<std::string> errors_;
};

// OK when `path` names a regular file (or a link to one).
Status CheckRegularFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("job config " + path + ": no such file");
    return Status::IoError("job config " + path + ": cannot open: " + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("job config " + path + ": is a directory, not a config file");
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("job config " + path + ": not a regular file");
  }
  return Status::Ok();
}

Status ReadFile(const std::string& path, std::string* contents) {
  ATTNPS_RETURN_IF_ERROR(CheckRegularFile(path));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound("job config " + path + ": no such file");
    return Status::IoError("job config " + path + ": cannot open: " + std::strerror(err));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    const int err = errno;
    return Status::IoError("job config " + path + ": read failed" +
                           (err != 0 ? std::string(": ") + std::strerror(err) : ""));
  }
  *contents = buffer.str();
  return Status::Ok();
}

ps::InitializerKind ToPs(InitializerConfig::Kind kind) {
  switch (kind) {
    case InitializerConfig::ZEROS:
      return ps::InitializerKind::kZeros;
    case InitializerConfig::UNIFORM:
      return ps::InitializerKind::kUniform;
    case InitializerConfig::TRUNCATED_NORMAL:
      return ps::InitializerKind::kTruncatedNormal;
  }
  LOG(FATAL) << "unknown initializer kind " << kind;
}

ps::SparseOptimizerKind ToPs(SparseOptimizerConfig::Kind kind) {
  switch (kind) {
    case SparseOptimizerConfig::SGD:
      return ps::SparseOptimizerKind::kSgd;
    case SparseOptimizerConfig::ADAGRAD:
      return ps::SparseOptimizerKind::kAdagrad;
    case SparseOptimizerConfig::ADAM:
      return ps::SparseOptimizerKind::kAdam;
    case SparseOptimizerConfig::FTRL:
      return ps::SparseOptimizerKind::kFtrl;
  }
  LOG(FATAL) << "unknown sparse optimizer kind " << kind;
}

ps::AdamBiasCorrection ToPs(SparseOptimizerConfig::AdamBiasCorrection value) {
  switch (value) {
    case SparseOptimizerConfig::GLOBAL_STEP:
      return ps::AdamBiasCorrection::kGlobalStep;
    case SparseOptimizerConfig::ROW_STEP:
      return ps::AdamBiasCorrection::kRowStep;
  }
  LOG(FATAL) << "unknown Adam bias correction " << value;
}

ps::UnadmittedValue ToPs(AdmissionConfig::UnadmittedValue value) {
  switch (value) {
    case AdmissionConfig::INITIALIZER:
      return ps::UnadmittedValue::kInitializer;
    case AdmissionConfig::ZEROS:
      return ps::UnadmittedValue::kZeros;
  }
  LOG(FATAL) << "unknown unadmitted value " << value;
}

ps::TableConfig ToPsTable(const TableConfig& table, uint32_t id) {
  ps::TableConfig out;
  out.name = table.name();
  out.id = id;
  out.dim = table.dim();
  out.seed = table.seed();

  const InitializerConfig& init = table.initializer();
  out.initializer.kind = ToPs(init.kind());
  out.initializer.low = init.low();
  out.initializer.high = init.high();
  out.initializer.stddev = init.stddev();

  const SparseOptimizerConfig& opt = table.optimizer();
  out.optimizer.kind = ToPs(opt.kind());
  out.optimizer.learning_rate = opt.learning_rate();
  out.optimizer.initial_accumulator = opt.initial_accumulator();
  out.optimizer.epsilon = opt.epsilon();
  out.optimizer.beta1 = opt.beta1();
  out.optimizer.beta2 = opt.beta2();
  out.optimizer.adam_bias_correction = ToPs(opt.adam_bias_correction());
  out.optimizer.ftrl_alpha = opt.ftrl_alpha();
  out.optimizer.ftrl_beta = opt.ftrl_beta();
  out.optimizer.ftrl_l1 = opt.ftrl_l1();
  out.optimizer.ftrl_l2 = opt.ftrl_l2();

  out.admission.min_count = table.admission().min_count();
  out.admission.unadmitted_value = ToPs(table.admission().unadmitted_value());
  out.eviction.ttl_steps = table.eviction().ttl_steps();
  out.eviction.max_rows = table.eviction().max_rows();
  return out;
}

}  // namespace

Status ParseJobConfigText(const std::string& text, const std::string& name_for_errors,
                          JobConfig* out) {
  CHECK(out != nullptr);
  out->Clear();
  PrefixingErrorCollector errors(name_for_errors, text);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, out) || !errors.empty()) {
    return Status::InvalidArgument(errors.empty() ? name_for_errors + ": parse error"
                                                  : errors.Joined());
  }
  return Status::Ok();
}

Status ParseJobConfig(const std::string& text, const std::string& name_for_errors, JobConfig* out) {
  ATTNPS_RETURN_IF_ERROR(ParseJobConfigText(text, name_for_errors, out));
  return ValidateJobConfig(*out).WithContext(name_for_errors);
}

Status LoadJobConfig(const std::string& path, JobConfig* out) {
  return LoadJobConfig(path, {}, out);
}

Status LoadJobConfig(const std::string& path, const std::vector<std::string>& overrides,
                     JobConfig* out) {
  std::string text;
  ATTNPS_RETURN_IF_ERROR(ReadFile(path, &text));
  ATTNPS_RETURN_IF_ERROR(ParseJobConfigText(text, path, out));
  ATTNPS_RETURN_IF_ERROR(ApplyOverrides(overrides, out));
  return ValidateJobConfig(*out).WithContext(path);
}

DenseOptimizerOptions ToDenseOptimizerOptions(const DenseOptimizerConfig& c) {
  DenseOptimizerOptions o;
  o.learning_rate = c.learning_rate();
  switch (c.kind()) {
    case DenseOptimizerConfig::SGD:
      o.kind = DenseOptimizerKind::kSgd;
      o.sgd.momentum = c.momentum();
      o.sgd.momentum_kind = c.nesterov() ? MomentumKind::kNesterov : MomentumKind::kClassic;
      o.sgd.weight_decay = c.weight_decay();
      break;
    case DenseOptimizerConfig::ADAGRAD:
      o.kind = DenseOptimizerKind::kAdagrad;
      o.adagrad.initial_accumulator_value = c.initial_accumulator();
      o.adagrad.eps = c.epsilon();
      break;
    default:
      o.kind = DenseOptimizerKind::kAdam;
      o.adam.beta1 = c.beta1();
      o.adam.beta2 = c.beta2();
      o.adam.eps = c.epsilon();
      o.adam.weight_decay = c.weight_decay();
      o.adam.weight_decay_kind = c.weight_decay_kind() == DenseOptimizerConfig::DECOUPLED
                                     ? WeightDecayKind::kDecoupled
                                     : WeightDecayKind::kL2;
  }
  return o;
}

std::vector<ps::TableConfig> ToPsTables(const JobConfig& config) {
  std::vector<ps::TableConfig> tables;
  tables.reserve(config.tables_size());
  for (int i = 0; i < config.tables_size(); ++i) {
    tables.push_back(ToPsTable(config.tables(i), static_cast<uint32_t>(i + 1)));
  }
  return tables;
}

std::string ToText(const JobConfig& config) {
  google::protobuf::TextFormat::Printer printer;
  printer.SetUseShortRepeatedPrimitives(true);
  std::string text;
  CHECK(printer.PrintToString(config, &text)) << "printing a JobConfig cannot fail";
  return text;
}

const TableConfig* FindTable(const JobConfig& config, const std::string& name) {
  for (const TableConfig& table : config.tables()) {
    if (table.name() == name) return &table;
  }
  return nullptr;
}

TrainLoopOptions ToTrainLoopOptions(const JobConfig& config) {
  TrainLoopOptions o;
  const DataConfig& data = config.data();
  o.train_path = data.train_path();
  o.test_path = data.test_path();
  o.item_cates_path = data.item_cates_path();
  o.prefetch_batches = data.prefetch_batches();
  const TrainConfig& train = config.train();
  o.batch_size = train.batch_size();
  o.epochs = train.epochs();
  o.max_steps = train.max_steps();
  o.staleness = train.staleness();
  o.progress_seconds = train.progress_seconds();
  o.eval_every_steps = train.eval_every_steps();
  o.device = train.device();
  o.clip_global_norm = config.dense_optimizer().clip_global_norm();
  const CheckpointConfig& ckpt = config.checkpoint();
  o.checkpoint_dir = ckpt.dir();
  o.checkpoint_every_steps = ckpt.every_steps();
  o.checkpoint_every_minutes = ckpt.every_minutes();
  o.keep_last = ckpt.keep_last();
  o.save_at_end = ckpt.save_at_end();
  o.metrics_out = config.metrics().out_path();
  return o;
}

std::vector<FeatureSlot> CtrSlots(const JobConfig& config) {
  const FeaturesConfig& f = config.features();
  if (f.slots_size() > 0) return {f.slots().begin(), f.slots().end()};
  auto slot = [](const char* name, const std::string& table, int column) {
    FeatureSlot s;
    s.set_name(name);
    s.set_table(table);
    s.set_column(column);
    if (column == kHistItemsColumn || column == kHistCatesColumn) s.set_kind(FeatureSlot::SEQUENCE);
    return s;
  };
  std::vector<FeatureSlot> slots = {slot("target_item", f.item_table(), kTargetItemColumn),
                                    slot("target_cate", f.cate_table(), kTargetCateColumn),
                                    slot("hist_items", f.item_table(), kHistItemsColumn),
                                    slot("hist_cates", f.cate_table(), kHistCatesColumn)};
  if (!f.user_table().empty()) slots.push_back(slot("user", f.user_table(), kUserColumn));
  return slots;
}

std::vector<SlotOptions> ToSlotOptions(const JobConfig& config) {
  std::vector<SlotOptions> out;
  for (const FeatureSlot& s : CtrSlots(config)) {
    SlotOptions o;
    o.name = s.name();
    for (int t = 0; t < config.tables_size(); ++t) {
      if (config.tables(t).name() == s.table()) o.table = t;
    }
    o.dim = config.tables(o.table).dim();
    o.sequence = s.kind() == FeatureSlot::SEQUENCE;
    o.column = s.column();
    out.push_back(o);
  }
  return out;
}

int ExtraColumns(const JobConfig& config) {
  if (config.data().extra_columns() >= 0) return config.data().extra_columns();
  int extra = 0;
  for (const FeatureSlot& s : CtrSlots(config)) {
    extra = std::max(extra, s.column() - kFirstExtraColumn + 1);
  }
  return extra;
}

int ItemDim(const JobConfig& config) {
  int dim = 0;
  for (const SlotOptions& s : ToSlotOptions(config)) {
    if (s.column == kTargetItemColumn || s.column == kTargetCateColumn) dim += s.dim;
  }
  CHECK_GT(dim, 0) << "ItemDim on an unvalidated config";
  return dim;
}

}  // namespace attnps::config
