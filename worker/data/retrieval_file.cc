#include "worker/data/retrieval_file.h"

#include <glog/logging.h>

#include <string_view>
#include <vector>

#include "worker/data/line_reader.h"
#include "worker/data/output.h"
#include "worker/data/sample.h"

namespace attnps::data {
namespace {

// The example as a CTR line: label 1, the (last) target, the history; windows add the targets.
void AppendExampleLine(const RetrievalExample& e, bool windows, CtrSample* scratch,
                       std::string* out) {
  scratch->label = 1.0f;
  scratch->user = e.user;
  scratch->item = e.target_items.back();
  scratch->cate = e.target_cates.back();
  scratch->hist_items = e.hist_items;
  scratch->hist_cates = e.hist_cates;
  scratch->extra.clear();
  if (windows) scratch->extra = {e.target_items, e.target_cates};
  AppendCtrLine(*scratch, out);
}

// Counts malformed lines against max_bad_fraction, as CtrFileReader does.
class BadLines {
 public:
  BadLines(const std::string& path, double max_fraction) : path_(path), max_(max_fraction) {}

  // A malformed line: counted, the first ones logged.
  void Add(uint64_t line, const Status& why) {
    ++bad_;
    const std::string where = path_ + ":" + std::to_string(line) + ": " + why.message();
    if (bad_ == 1) first_ = where;
    if (bad_ <= CtrFileReader::kReportedBadLines) LOG(WARNING) << EscapeForMessage(where);
  }
  // InvalidArgument once more than the allowed fraction of `lines` is malformed.
  Status Check(uint64_t lines, bool at_end) const {
    if (bad_ == 0 || (!at_end && lines < CtrFileReader::kMinLinesForBadCheck)) return Status::Ok();
    if (static_cast<double>(bad_) <= max_ * static_cast<double>(lines)) return Status::Ok();
    return Status::InvalidArgument(
        path_ + ": " + std::to_string(bad_) + " of " + std::to_string(lines) +
        " lines read are malformed, more than max_bad_fraction=" + std::to_string(max_) +
        "; first: " + first_);
  }
  uint64_t count() const { return bad_; }

 private:
  const std::string path_;
  const double max_;
  uint64_t bad_ = 0;
  std::string first_;
};

}  // namespace

Status ValidateRetrievalTrainOptions(const RetrievalTrainOptions& o) {
  if (o.window < 1) {
    return Status::InvalidArgument("window must be >= 1, got " + std::to_string(o.window));
  }
  if (o.min_history < 1) {
    return Status::InvalidArgument("min_history must be >= 1, got " +
                                   std::to_string(o.min_history));
  }
  if (!(o.max_bad_fraction >= 0 && o.max_bad_fraction <= 1)) {
    return Status::InvalidArgument("max_bad_fraction must be in [0, 1], got " +
                                   std::to_string(o.max_bad_fraction));
  }
  return ValidateUserSplit(o.split);
}

Status WriteRetrievalTrainFile(const std::string& sequences_path, const RetrievalTrainOptions& o,
                               const std::string& out_path, RetrievalTrainStats* stats) {
  ATTNPS_RETURN_IF_ERROR(ValidateRetrievalTrainOptions(o));
  *stats = RetrievalTrainStats();
  LineReader reader;
  ATTNPS_RETURN_IF_ERROR(reader.Open(sequences_path));
  ShuffledWriter writer(o.shuffle_seed);
  ATTNPS_RETURN_IF_ERROR(writer.Open(out_path));
  BadLines bad(sequences_path, o.max_bad_fraction);
  RetrievalSample sequence;
  std::vector<RetrievalExample> examples;
  CtrSample scratch;
  std::string line_out;
  for (;;) {
    std::string_view line;
    bool eof = false;
    ATTNPS_RETURN_IF_ERROR(reader.Next(&line, &eof));
    if (eof) break;
    if (line.empty()) continue;
    ++stats->lines;
    const Status parsed = ParseRetrievalLine(line, &sequence);
    if (!parsed.ok()) {
      bad.Add(reader.line_number(), parsed);
      ATTNPS_RETURN_IF_ERROR(bad.Check(stats->lines, /*at_end=*/false));
      continue;
    }
    ATTNPS_RETURN_IF_ERROR(bad.Check(stats->lines, /*at_end=*/false));
    if (GroupOfUser(sequence.user, o.split) != UserGroup::kTrain) {
      ++stats->held_out_users;
      continue;
    }
    ++stats->train_users;
    examples.clear();
    if (o.sequence_windows) {
      CutSequenceWindows(sequence, o.window, &examples);
    } else {
      CutNextItemExamples(sequence, o.window, o.min_history, &examples);
    }
    for (const RetrievalExample& e : examples) {
      line_out.clear();
      AppendExampleLine(e, o.sequence_windows, &scratch, &line_out);
      ATTNPS_RETURN_IF_ERROR(writer.Add(line_out));
    }
    stats->examples += examples.size();
  }
  stats->bad_lines = bad.count();
  if (bad.count() > 0) {
    LOG(WARNING) << EscapeForMessage(sequences_path) << ": skipped " << bad.count()
                 << " malformed of " << stats->lines << " lines";
  }
  ATTNPS_RETURN_IF_ERROR(bad.Check(stats->lines, /*at_end=*/true));
  return writer.Commit();
}

}  // namespace attnps::data
