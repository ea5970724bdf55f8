#include "worker/data/sample.h"

#include <glog/logging.h>

#include <cstdio>

#include "worker/data/text.h"

namespace attnps::data {
namespace {

constexpr size_t kCtrFields = 6;
constexpr const char* kCtrFieldNames[kCtrFields] = {"label",       "user",       "target_item",
                                                    "target_cate", "hist_items", "hist_cates"};
constexpr size_t kRetrievalFields = 3;
constexpr const char* kRetrievalFieldNames[kRetrievalFields] = {"user", "items", "cates"};

Status FieldError(size_t index, std::string_view name, std::string_view value, const char* what) {
  return Status::InvalidArgument("field " + std::to_string(index + 1) + " (" + std::string(name) +
                                 "): " + Quote(value) + " " + what);
}

Status FieldCountError(size_t got, size_t want) {
  return Status::InvalidArgument("expected " + std::to_string(want) +
                                 " tab-separated fields, got " + std::to_string(got));
}

Status ParseUintField(const std::string_view* fields, size_t index, const char* const* names,
                      uint64_t* out) {
  if (!ParseUint64(fields[index], out)) {
    return FieldError(index, names[index], fields[index], "is not an unsigned integer");
  }
  return Status::Ok();
}

Status ParseListField(const std::string_view* fields, size_t index, const char* const* names,
                      std::vector<uint64_t>* out) {
  if (!ParseIdList(fields[index], out)) {
    return FieldError(index, names[index], fields[index], "is not an unsigned integer");
  }
  return Status::Ok();
}

Status CheckSameLength(const char* a_name, size_t a, const char* b_name, size_t b) {
  if (a == b) return Status::Ok();
  return Status::InvalidArgument(std::string(a_name) + " has " + std::to_string(a) + " ids but " +
                                 b_name + " has " + std::to_string(b));
}

}  // namespace

bool ParseIdList(std::string_view field, std::vector<uint64_t>* ids) {
  ids->clear();
  if (field.empty()) return true;
  const char* p = field.data();
  const char* end = p + field.size();
  while (true) {
    uint64_t v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || next == p) return false;
    ids->push_back(v);
    if (next == end) return true;
    if (*next != ',' || next + 1 == end) return false;
    p = next + 1;
  }
}

void AppendIdList(const std::vector<uint64_t>& ids, std::string* out) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendUint(ids[i], out);
  }
}

namespace {

// Parses a line of exactly kCtrFields + extra_columns fields, extra_columns <= kMaxExtra. One body
// for both cases so that the 6-field parse (kMaxExtra = 0) is the code it always was: a 6-entry
// field array and no extra-field work.
template <size_t kMaxExtra>
[[gnu::always_inline]] inline Status ParseCtrFields(std::string_view line, size_t extra_columns,
                                                    CtrSample* sample) {
  std::string_view f[kCtrFields + kMaxExtra];
  const size_t want = kCtrFields + extra_columns;
  size_t n = SplitInto(line, "\t", f, want);
  if (n != want) return FieldCountError(n, want);
  double label = 0;
  if (!ParseDouble(f[0], &label) || !(label >= 0 && label <= 1)) {
    return FieldError(0, kCtrFieldNames[0], f[0], "is not a number in [0, 1]");
  }
  sample->label = static_cast<float>(label);
  ATTNPS_RETURN_IF_ERROR(ParseUintField(f, 1, kCtrFieldNames, &sample->user));
  ATTNPS_RETURN_IF_ERROR(ParseUintField(f, 2, kCtrFieldNames, &sample->item));
  ATTNPS_RETURN_IF_ERROR(ParseUintField(f, 3, kCtrFieldNames, &sample->cate));
  ATTNPS_RETURN_IF_ERROR(ParseListField(f, 4, kCtrFieldNames, &sample->hist_items));
  ATTNPS_RETURN_IF_ERROR(ParseListField(f, 5, kCtrFieldNames, &sample->hist_cates));
  if constexpr (kMaxExtra == 0) {
    sample->extra.clear();
  } else {
    sample->extra.resize(extra_columns);  // keeps the inner vectors' capacity
    for (size_t k = 0; k < extra_columns; ++k) {
      const size_t index = kCtrFields + k;
      if (!ParseIdList(f[index], &sample->extra[k])) {
        return FieldError(index, "extra " + std::to_string(k + 1), f[index],
                          "is not an unsigned integer");
      }
    }
  }
  return CheckSameLength("hist_items", sample->hist_items.size(), "hist_cates",
                         sample->hist_cates.size());
}

// Out of line, so that its larger field array stays out of the 6-field path.
[[gnu::noinline]] Status ParseCtrLineWithExtra(std::string_view line, int extra_columns,
                                               CtrSample* sample) {
  if (extra_columns < 0 || extra_columns > kMaxCtrExtraColumns) {
    return Status::InvalidArgument("extra_columns " + std::to_string(extra_columns) +
                                   " is not in [0, " + std::to_string(kMaxCtrExtraColumns) + "]");
  }
  return ParseCtrFields<kMaxCtrExtraColumns>(line, static_cast<size_t>(extra_columns), sample);
}

}  // namespace

Status ParseCtrLine(std::string_view line, CtrSample* sample) {
  return ParseCtrFields<0>(line, 0, sample);
}

Status ParseCtrLine(std::string_view line, int extra_columns, CtrSample* sample) {
  if (extra_columns == 0) return ParseCtrFields<0>(line, 0, sample);
  return ParseCtrLineWithExtra(line, extra_columns, sample);
}

void AppendCtrLine(const CtrSample& sample, std::string* out) {
  if (sample.label == 0.0f || sample.label == 1.0f) {
    out->push_back(sample.label == 0.0f ? '0' : '1');
  } else {
    char buf[32];
    int len = std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(sample.label));
    out->append(buf, len);
  }
  out->push_back('\t');
  AppendUint(sample.user, out);
  out->push_back('\t');
  AppendUint(sample.item, out);
  out->push_back('\t');
  AppendUint(sample.cate, out);
  out->push_back('\t');
  AppendIdList(sample.hist_items, out);
  out->push_back('\t');
  AppendIdList(sample.hist_cates, out);
  for (const std::vector<uint64_t>& ids : sample.extra) {
    out->push_back('\t');
    AppendIdList(ids, out);
  }
  out->push_back('\n');
}

Status ParseRetrievalLine(std::string_view line, RetrievalSample* sample) {
  std::string_view f[kRetrievalFields];
  size_t n = SplitInto(line, "\t", f, kRetrievalFields);
  if (n != kRetrievalFields) return FieldCountError(n, kRetrievalFields);
  ATTNPS_RETURN_IF_ERROR(ParseUintField(f, 0, kRetrievalFieldNames, &sample->user));
  ATTNPS_RETURN_IF_ERROR(ParseListField(f, 1, kRetrievalFieldNames, &sample->items));
  ATTNPS_RETURN_IF_ERROR(ParseListField(f, 2, kRetrievalFieldNames, &sample->cates));
  return CheckSameLength("items", sample->items.size(), "cates", sample->cates.size());
}

void AppendRetrievalLine(const RetrievalSample& sample, std::string* out) {
  AppendUint(sample.user, out);
  out->push_back('\t');
  AppendIdList(sample.items, out);
  out->push_back('\t');
  AppendIdList(sample.cates, out);
  out->push_back('\n');
}

Status CtrFileReader::Open(const std::string& path, const CtrReaderOptions& options) {
  if (options.num_workers < 1 || options.worker_index < 0 ||
      options.worker_index >= options.num_workers) {
    return Status::InvalidArgument(
        "worker_index " + std::to_string(options.worker_index) +
        " is not in [0, num_workers=" + std::to_string(options.num_workers) + ")");
  }
  if (options.max_history < 0) return Status::InvalidArgument("max_history must be >= 0");
  if (options.extra_columns < 0 || options.extra_columns > kMaxCtrExtraColumns) {
    return Status::InvalidArgument("extra_columns " + std::to_string(options.extra_columns) +
                                   " is not in [0, " + std::to_string(kMaxCtrExtraColumns) + "]");
  }
  if (!(options.max_bad_fraction >= 0)) {
    return Status::InvalidArgument("max_bad_fraction must be >= 0");
  }
  options_ = options;
  considered_ = bad_ = 0;
  summary_logged_ = false;
  failed_ = Status::Ok();
  return lines_.Open(path);
}

Status CtrFileReader::CheckBadFraction(bool at_eof) {
  if (bad_ == 0 || (!at_eof && considered_ < kMinLinesForBadCheck)) return Status::Ok();
  if (static_cast<double>(bad_) <= options_.max_bad_fraction * static_cast<double>(considered_)) {
    return Status::Ok();
  }
  failed_ = Status::InvalidArgument(path() + ":" + std::to_string(lines_.line_number()) + ": " +
                                    std::to_string(bad_) + " of " + std::to_string(considered_) +
                                    " lines read are malformed, more than max_bad_fraction=" +
                                    std::to_string(options_.max_bad_fraction) +
                                    (at_eof ? " (at end of file)" : "") + "; first: " + first_bad_);
  return failed_;
}

Status CtrFileReader::AtEof() {
  if (bad_ > 0 && !summary_logged_) {
    summary_logged_ = true;
    LOG(WARNING) << EscapeForMessage(path()) << ": skipped " << bad_ << " malformed of "
                 << considered_ << " lines";
  }
  return CheckBadFraction(/*at_eof=*/true);
}

Status CtrFileReader::ConsiderLine(std::string_view line, CtrSample* sample, bool* parsed,
                                   std::string* why) {
  ++considered_;
  Status s = ParseCtrLine(line, options_.extra_columns, sample);
  *parsed = s.ok();
  if (s.ok()) {
    if (options_.max_history > 0) {
      size_t keep = static_cast<size_t>(options_.max_history);
      if (sample->hist_items.size() > keep) {
        size_t drop = sample->hist_items.size() - keep;
        sample->hist_items.erase(sample->hist_items.begin(), sample->hist_items.begin() + drop);
        sample->hist_cates.erase(sample->hist_cates.begin(), sample->hist_cates.begin() + drop);
      }
    }
    (void)CheckBadFraction(/*at_eof=*/false);  // sets failed_, returned by the next call
    return Status::Ok();
  }
  ++bad_;
  *why = path() + ":" + std::to_string(lines_.line_number()) + ": " + s.message();
  if (bad_ == 1) first_bad_ = *why;
  if (bad_ <= kReportedBadLines) LOG(WARNING) << EscapeForMessage(*why);
  return CheckBadFraction(/*at_eof=*/false);
}

Status CtrFileReader::Next(CtrSample* sample, bool* eof) {
  if (!failed_.ok()) return failed_;
  const uint64_t n = static_cast<uint64_t>(options_.num_workers);
  const uint64_t me = static_cast<uint64_t>(options_.worker_index);
  std::string_view line;
  std::string why;
  while (true) {
    uint64_t index = lines_.line_number();  // 0-based index of the line about to be read
    ATTNPS_RETURN_IF_ERROR(lines_.Next(&line, eof));
    if (*eof) return AtEof();
    if (index % n != me || line.empty()) continue;
    bool parsed = false;
    ATTNPS_RETURN_IF_ERROR(ConsiderLine(line, sample, &parsed, &why));
    if (parsed) return Status::Ok();
  }
}

Status CtrFileReader::NextLine(CtrSample* sample, bool* parsed, std::string* why, bool* eof) {
  *parsed = false;
  why->clear();
  if (!failed_.ok()) return failed_;
  std::string_view line;
  ATTNPS_RETURN_IF_ERROR(lines_.Next(&line, eof));
  if (*eof) return AtEof();
  if (line.empty()) {
    *why = path() + ":" + std::to_string(lines_.line_number()) + ": blank line";
    return Status::Ok();
  }
  return ConsiderLine(line, sample, parsed, why);
}

Status CtrFileReader::Seek(Position position) {
  failed_ = Status::Ok();
  return lines_.Seek(position.offset, position.line);
}

}  // namespace attnps::data
