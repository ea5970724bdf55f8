// The retrieval task's training file: the examples of sequences.tsv's training users
// (retrieval_examples.h), written once as CTR lines so that the training loop's block-shuffled,
// resumable SampleStream reads them like CTR samples.
//
// Line layout: label 1, user, target item, target cate, history items, history cates; with
// sequence_windows two extra fields (7, 8): every target item and cate of the window, history
// position i predicting target i (fields 3 and 4 are then the window's last target).
// Thread-safety: none needed (free functions on their own files).
#ifndef ATTNPS_WORKER_DATA_RETRIEVAL_FILE_H_
#define ATTNPS_WORKER_DATA_RETRIEVAL_FILE_H_

#include <cstdint>
#include <string>

#include "ops/status.h"
#include "worker/data/line_reader.h"
#include "worker/data/retrieval_examples.h"

namespace attnps::data {

struct RetrievalTrainOptions {
  int window = 50;                // T: history items kept per example (encoder: per window)
  int min_history = 1;            // next-item examples: the first target is item min_history
  bool sequence_windows = false;  // encoder windows instead of next-item examples
  UserSplitOptions split;         // only kTrain users' examples are written
  uint64_t shuffle_seed = 1;      // the order of the lines in the file
  double max_bad_fraction = 0.001;
};

struct RetrievalTrainStats {
  uint64_t lines = 0;      // non-blank lines read
  uint64_t bad_lines = 0;  // malformed lines skipped
  uint64_t train_users = 0;
  uint64_t held_out_users = 0;  // valid and test
  uint64_t examples = 0;        // lines written
};

// InvalidArgument naming the field (window, min_history, max_bad_fraction, the split's).
Status ValidateRetrievalTrainOptions(const RetrievalTrainOptions& options);

// Reads the retrieval lines of sequences_path and writes the train users' examples to out_path
// in a random order fixed by shuffle_seed (through out_path.tmp: the file appears only when
// complete). Malformed lines are skipped, counted and the first ten logged as "file:line:
// reason"; when more than max_bad_fraction of the lines are malformed (checked from 1000 lines
// on and at the end) it returns InvalidArgument naming the file and the first bad line and
// writes nothing. NotFound when sequences_path cannot be opened.
Status WriteRetrievalTrainFile(const std::string& sequences_path,
                               const RetrievalTrainOptions& options, const std::string& out_path,
                               RetrievalTrainStats* stats);

// Reads retrieval lines (user \t items \t cates) under the bad-line policy of data.md: a
// malformed line is counted and the first ten logged as "file:line: reason"; past
// max_bad_fraction of the lines read (checked from 1000 lines on and at the end) Next fails with
// InvalidArgument naming the file and the first bad line. One thread at a time.
class RetrievalLineReader {
 public:
  RetrievalLineReader() = default;
  // NotFound when path cannot be opened.
  Status Open(const std::string& path, double max_bad_fraction);
  // The next well-formed line; *eof at the end (then the end-of-file check has run).
  Status Next(RetrievalSample* sample, bool* eof);
  // The next non-blank line, well-formed (*parsed) or not (counted and logged as Next does).
  Status NextLine(RetrievalSample* sample, bool* parsed, bool* eof);
  uint64_t lines() const { return lines_; }          // non-blank lines read
  uint64_t bad_lines() const { return bad_count_; }  // malformed ones
  uint64_t line_number() const { return reader_.line_number(); }

 private:
  std::string path_;
  double max_bad_fraction_ = 0;
  LineReader reader_;
  uint64_t lines_ = 0, bad_count_ = 0;
  std::string first_bad_;
  Status CheckBad(bool at_end) const;
};

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_RETRIEVAL_FILE_H_
