// `attnps prepare`: turns a raw public data set (or the synthetic generator) into the canonical
// sample files in --out: train.tsv and test.tsv (CTR lines, train in a seeded shuffled order),
// sequences.tsv (retrieval lines), item_cates.tsv (item \t cate) and dataset.txt (key=value); with
// a users file also extra_columns.tsv (column \t id \t value). See docs/data.md.
#ifndef ATTNPS_WORKER_DATA_PREPARE_H_
#define ATTNPS_WORKER_DATA_PREPARE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ops/status.h"
#include "worker/data/synthetic.h"

namespace attnps::data {

struct PrepareOptions {
  std::string format;  // movielens | sasrec | amazon | taobao | synthetic
  std::string input;   // interactions file (not for synthetic)
  std::string items;   // optional items/meta file with categories
  // Optional MovieLens user profile file (--users; for synthetic --users is the user count): every
  // CTR line then gets extra fields 7, 8, 9 = age bucket, gender, occupation ids.
  std::string users;
  // > 0: every CTR line gets one more extra field (the last), `activity`: the bucket of the
  // user's event count before the sample, ActivityBucket(n, activity_buckets).
  int activity_buckets = 0;
  std::string out;  // output directory (created if missing)
  int max_history = 50;
  uint64_t seed = 1;
  double max_bad_fraction = 0.001;
  int min_user_events = 3;
  std::vector<std::string> taobao_behaviors = {"pv"};
  SyntheticOptions synthetic;
  bool progress = true;                         // progress lines on stderr every few seconds
  uint64_t shuffle_memory_bytes = 64ull << 20;  // train shuffle buffer before spilling to buckets
};

struct PrepareReport {
  uint64_t lines_read = 0;  // non-blank input lines (interactions + items)
  uint64_t bad_lines = 0;
  uint64_t events = 0;  // interactions kept
  uint64_t users = 0;   // distinct users (user ids are 1..users)
  uint64_t users_with_samples = 0;
  uint64_t skipped_users = 0;  // fewer than min_user_events events
  uint64_t items = 0;          // item ids are 1..items
  uint64_t cates = 0;          // category ids are 1..cates
  uint64_t train_rows = 0;
  uint64_t test_rows = 0;
  // With a users file: the names of the extra CTR fields 7.. and each one's id count (ids are
  // 1..count; 0 = unknown); empty without one.
  std::vector<std::string> extra_columns;
  std::vector<uint64_t> extra_column_ids;
  uint64_t users_without_profile = 0;  // users (of 1..users) with no line in the users file
};

Status Prepare(const PrepareOptions& options, PrepareReport* report);

// Entry point of `attnps prepare --name=value ...` (a leading "prepare" is ignored). Prints a
// summary to stdout and errors to stderr; returns 0 on success, 2 on bad flags, 1 on failure.
int PrepareMain(const std::vector<std::string>& args);

// Parses the flags into *options; *help is set for --help. Exposed for tests.
Status ParsePrepareFlags(const std::vector<std::string>& args, PrepareOptions* options, bool* help);
std::string PrepareUsage();

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_PREPARE_H_
