// The canonical sample files written by `attnps prepare` and read by trainers.
//
// CTR line (TSV, 6 fields, then optionally extra fields 7..N):
//   label \t user \t target_item \t target_cate \t hist_items \t hist_cates [\t extra_1 ...]
// where hist_* are comma-separated id lists of equal length (empty field = empty history), ids are
// dense 1-based uint64 (0 = padding/unknown) and the label is a float (0 or 1). Each extra field is
// a comma-separated id list too (a single-id feature is a list of one id; empty = no id); what the
// extra fields mean is recorded by whoever wrote the file (dataset.txt `extra_columns` for
// `attnps prepare`), and a reader states how many it expects.
//
// Retrieval line (TSV, 3 fields): user \t items \t cates, the user's time-ordered sequence.
#ifndef ATTNPS_WORKER_DATA_SAMPLE_H_
#define ATTNPS_WORKER_DATA_SAMPLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ops/status.h"
#include "worker/data/line_reader.h"

namespace attnps::data {

struct CtrSample {
  float label = 0;
  uint64_t user = 0;
  uint64_t item = 0;
  uint64_t cate = 0;
  std::vector<uint64_t> hist_items;
  std::vector<uint64_t> hist_cates;
  // Fields 7.. in order, one id list each (empty when the file has no extra fields).
  std::vector<std::vector<uint64_t>> extra;

  bool operator==(const CtrSample& o) const {
    return label == o.label && user == o.user && item == o.item && cate == o.cate &&
           hist_items == o.hist_items && hist_cates == o.hist_cates && extra == o.extra;
  }
};

// The most extra fields a CTR line may have.
inline constexpr int kMaxCtrExtraColumns = 64;

struct RetrievalSample {
  uint64_t user = 0;
  std::vector<uint64_t> items;
  std::vector<uint64_t> cates;

  bool operator==(const RetrievalSample& o) const {
    return user == o.user && items == o.items && cates == o.cates;
  }
};

// Parses one CTR line (without '\n') of exactly 6 fields; sample->extra is cleared. On error
// *sample is unspecified and the message names the field, e.g.
// `field 5 (hist_items): "12,x" is not an unsigned integer`, `expected 6 tab-separated fields,
// got 7`.
Status ParseCtrLine(std::string_view line, CtrSample* sample);
// Parses a CTR line of exactly 6 + extra_columns fields into *sample, fields 7.. into
// sample->extra (resized to extra_columns; the inner vectors' capacity is reused). Errors as above,
// e.g. `expected 9 tab-separated fields, got 6`, `field 7 (extra 1): "x" is not an unsigned
// integer`; InvalidArgument when extra_columns is not in [0, kMaxCtrExtraColumns]. With
// extra_columns = 0 it is the 6-field ParseCtrLine.
Status ParseCtrLine(std::string_view line, int extra_columns, CtrSample* sample);
// Appends the sample as one line, '\n' included: the 6 fields, then one field per sample.extra.
void AppendCtrLine(const CtrSample& sample, std::string* out);

Status ParseRetrievalLine(std::string_view line, RetrievalSample* sample);
void AppendRetrievalLine(const RetrievalSample& sample, std::string* out);

// Parses a comma-separated id list ("" = empty) into *ids; false on a malformed id.
bool ParseIdList(std::string_view field, std::vector<uint64_t>* ids);
void AppendIdList(const std::vector<uint64_t>& ids, std::string* out);

struct CtrReaderOptions {
  // Worker i of n reads the lines with (0-based line index) % n == i.
  int worker_index = 0;
  int num_workers = 1;
  // Keep only the last max_history history items (0 = keep all).
  int max_history = 0;
  // Next fails once malformed/considered lines exceeds this (checked from 1000 lines and at EOF).
  double max_bad_fraction = 0.001;
  // Extra fields (7..) every line has, in [0, kMaxCtrExtraColumns]; a line with another field
  // count is malformed. max_history does not apply to them.
  int extra_columns = 0;
};

// Reads a CTR file sequentially: Next skips (and counts) malformed and blank lines; NextLine
// returns every physical line, parsed or not. Not thread-safe.
class CtrFileReader {
 public:
  // A resumable read position: the byte offset of the next line and the number of lines before it.
  struct Position {
    uint64_t offset = 0;
    uint64_t line = 0;
    bool operator==(const Position& o) const { return offset == o.offset && line == o.line; }
  };

  static constexpr int kReportedBadLines = 10;
  static constexpr uint64_t kMinLinesForBadCheck = 1000;

  CtrFileReader() = default;
  // InvalidArgument on bad options, NotFound when the file cannot be opened.
  Status Open(const std::string& path, const CtrReaderOptions& options);
  // The next sample of this worker, or *eof = true at the end. Fails (and keeps failing) once the
  // malformed-line fraction exceeds options.max_bad_fraction.
  Status Next(CtrSample* sample, bool* eof);
  // The next physical line of the file, whatever its content, for single-reader uses that must
  // keep output line i aligned with input line i (attnps predict). Ignores the worker split
  // (worker_index/num_workers): every line is returned, in file order; max_history applies.
  // On OK, either *eof = true (end of file; nothing consumed), or one line was consumed and
  //   - *parsed = true: *sample holds it, *why is empty;
  //   - *parsed = false: *sample is unspecified and *why = "file:line: reason", with line the
  //     1-based line number, e.g. "t.tsv:3: field 3 (target_item): \"x\" is not an unsigned
  //     integer", or "t.tsv:2: blank line" for an empty line.
  // Malformed lines are counted (bad_lines, lines_considered), logged and checked against
  // options.max_bad_fraction exactly as Next does; blank lines are reported but not counted. Once
  // the fraction is exceeded (checked from 1000 lines, and at end of file) it returns
  // InvalidArgument and keeps failing: a malformed line that crosses the limit gives the error
  // itself, a parsed line that does (at the first check) is returned and the next call fails.
  // *why holds raw input bytes: print it through EscapeForMessage (ops/status.h). position() and
  // Seek work as with Next. Meant to be used instead of Next, not mixed with it.
  Status NextLine(CtrSample* sample, bool* parsed, std::string* why, bool* eof);

  Position position() const { return {lines_.offset(), lines_.line_number()}; }
  // Continues at a position from position(); bad-line counters are kept.
  Status Seek(Position position);

  uint64_t lines_considered() const { return considered_; }  // this worker's lines, blank excluded
  uint64_t bad_lines() const { return bad_; }
  const std::string& path() const { return lines_.path(); }

 private:
  Status CheckBadFraction(bool at_eof);
  // Logs the bad-line summary once and runs the end-of-file check.
  Status AtEof();
  // Parses a non-blank line just read: counts it, applies max_history; a malformed line is counted
  // as bad, logged (the first kReportedBadLines) and described in *why. Returns the bad-fraction
  // failure, if any.
  Status ConsiderLine(std::string_view line, CtrSample* sample, bool* parsed, std::string* why);

  CtrReaderOptions options_;
  LineReader lines_;
  uint64_t considered_ = 0;
  uint64_t bad_ = 0;
  bool summary_logged_ = false;
  std::string first_bad_;  // "file:line: reason" of the first malformed line
  Status failed_;
};

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_SAMPLE_H_
