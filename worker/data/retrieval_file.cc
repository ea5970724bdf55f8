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

Status RetrievalLineReader::Open(const std::string& path, double max_bad_fraction) {
  path_ = path;
  max_bad_fraction_ = max_bad_fraction;
  lines_ = bad_count_ = 0;
  first_bad_.clear();
  return reader_.Open(path);
}

Status RetrievalLineReader::CheckBad(bool at_end) const {
  if (bad_count_ == 0 || (!at_end && lines_ < CtrFileReader::kMinLinesForBadCheck)) {
    return Status::Ok();
  }
  if (static_cast<double>(bad_count_) <= max_bad_fraction_ * static_cast<double>(lines_)) {
    return Status::Ok();
  }
  return Status::InvalidArgument(
      path_ + ": " + std::to_string(bad_count_) + " of " + std::to_string(lines_) +
      " lines read are malformed, more than max_bad_fraction=" + std::to_string(max_bad_fraction_) +
      "; first: " + first_bad_);
}

Status RetrievalLineReader::NextLine(RetrievalSample* sample, bool* parsed, bool* eof) {
  *parsed = false;
  for (;;) {
    std::string_view line;
    ATTNPS_RETURN_IF_ERROR(reader_.Next(&line, eof));
    if (*eof) {
      if (bad_count_ > 0) {
        LOG(WARNING) << EscapeForMessage(path_) << ": skipped " << bad_count_ << " malformed of "
                     << lines_ << " lines";
      }
      return CheckBad(/*at_end=*/true);
    }
    if (line.empty()) continue;
    ++lines_;
    const Status st = ParseRetrievalLine(line, sample);
    *parsed = st.ok();
    if (!st.ok()) {
      ++bad_count_;
      const std::string where =
          path_ + ":" + std::to_string(reader_.line_number()) + ": " + st.message();
      if (bad_count_ == 1) first_bad_ = where;
      if (bad_count_ <= CtrFileReader::kReportedBadLines) LOG(WARNING) << EscapeForMessage(where);
    }
    return CheckBad(/*at_end=*/false);
  }
}

Status RetrievalLineReader::Next(RetrievalSample* sample, bool* eof) {
  for (bool parsed = false; !parsed;) {
    ATTNPS_RETURN_IF_ERROR(NextLine(sample, &parsed, eof));
    if (*eof) return Status::Ok();
  }
  return Status::Ok();
}

Status WriteRetrievalTrainFile(const std::string& sequences_path, const RetrievalTrainOptions& o,
                               const std::string& out_path, RetrievalTrainStats* stats) {
  ATTNPS_RETURN_IF_ERROR(ValidateRetrievalTrainOptions(o));
  *stats = RetrievalTrainStats();
  RetrievalLineReader reader;
  ATTNPS_RETURN_IF_ERROR(reader.Open(sequences_path, o.max_bad_fraction));
  ShuffledWriter writer(o.shuffle_seed);
  ATTNPS_RETURN_IF_ERROR(writer.Open(out_path));
  RetrievalSample sequence;
  std::vector<RetrievalExample> examples;
  CtrSample scratch;
  std::string line_out;
  for (;;) {
    bool eof = false;
    ATTNPS_RETURN_IF_ERROR(reader.Next(&sequence, &eof));
    if (eof) break;
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
  stats->lines = reader.lines();
  stats->bad_lines = reader.bad_lines();
  return writer.Commit();
}

}  // namespace attnps::data
