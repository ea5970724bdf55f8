// Readers for the public raw interaction formats that `attnps prepare` accepts. They collect the
// interactions with interned raw ids; prepare.cc remaps and orders them.
//   movielens: `.inter` atomic file (tab-separated, header `user_id:token\titem_id:token\t...`,
//              columns located by name), classic ratings.dat (`user::item::rating::ts`), or a
//              headerless `user item [rating] [ts]` file; items: `.item` atomic file (first token
//              of the `class` column, else the last column) or movies.dat (first '|' genre).
//   sasrec:    `user item` per line, whitespace-separated, file order = time order.
//   amazon:    review JSON lines (reviewerID, asin, unixReviewTime); meta JSON lines (asin and
//              categories = list of lists -> last of the last list, or category = list -> last).
//   taobao:    UserBehavior.csv `user,item,category,behavior,timestamp`, kept behaviors only.
// MovieLens user profiles (--users): `.user` atomic file (tab-separated, header with user_id, age,
// gender and occupation columns, located by name), users.dat (`user::gender::age::occupation::zip`)
// or u.user (`user|age|gender|occupation|zip`).
// Malformed lines are counted, reported (first 10) as `file:line: reason` and skipped; loading
// fails with InvalidArgument past max_bad_fraction (checked from 1000 lines and at the end).
#ifndef ATTNPS_WORKER_DATA_RAW_FORMATS_H_
#define ATTNPS_WORKER_DATA_RAW_FORMATS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "ops/status.h"

namespace attnps::data {

enum class RawFormat { kMovieLens, kSasRec, kAmazon, kTaobao };

// Maps distinct strings to 0, 1, 2, ... in order of first appearance.
class Interner {
 public:
  uint32_t Intern(std::string_view s);
  // The index of `s`, or -1.
  int64_t Find(std::string_view s) const;
  const std::vector<std::string>& names() const { return names_; }
  size_t size() const { return names_.size(); }

 private:
  absl::flat_hash_map<std::string, uint32_t> index_;
  std::vector<std::string> names_;
};

struct LoadOptions {
  double max_bad_fraction = 0.001;
  std::vector<std::string> taobao_behaviors = {"pv"};
  bool progress = true;  // print lines read and lines/s to stderr every few seconds
};

// Interactions in file order, with raw ids interned.
struct InteractionLog {
  Interner users;
  Interner items;
  std::vector<uint32_t> user;  // per event
  std::vector<uint32_t> item;  // per event
  std::vector<double> ts;      // per event (0 where the format has no time: file order counts)
  std::vector<std::string> item_cate_name;  // per interned item; "" = none
  uint64_t lines_read = 0;                  // non-blank lines of all files read
  uint64_t bad_lines = 0;
};

// MovieLens user profiles, per interned user of an InteractionLog (LoadUserProfiles).
struct UserProfiles {
  static constexpr uint64_t kAgeBuckets = 7;  // <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+

  std::vector<uint64_t> line;           // line of the user's profile in the file; 0 = none
  std::vector<uint64_t> age_bucket;     // 1..kAgeBuckets; 0 = unknown (empty age)
  std::vector<std::string> gender;      // raw value; "" = unknown
  std::vector<std::string> occupation;  // raw value; "" = unknown
};

// The age bucket of an age in years, as MovieLens-1M groups them: <18 -> 1, 18-24 -> 2,
// 25-34 -> 3, 35-44 -> 4, 45-49 -> 5, 50-55 -> 6, 56+ -> 7 (ML-1M's codes 1, 18, 25, ... map to
// their own bucket).
uint64_t AgeBucket(uint64_t age);

Status ParseRawFormatName(std::string_view name, RawFormat* format);

// Appends the interactions of `path` to *log.
Status LoadInteractions(RawFormat format, const std::string& path, const LoadOptions& options,
                        InteractionLog* log);
// Sets log->item_cate_name from an items/meta file (items absent from the log are ignored).
// For taobao the category comes inline and this is not needed.
Status LoadItemCategories(RawFormat format, const std::string& path, const LoadOptions& options,
                          InteractionLog* log);
// Reads a MovieLens users file into *profiles (sized to log->users; users absent from the log are
// ignored) and adds its line counts to log->lines_read/bad_lines. A line is malformed when its
// user or age is not an unsigned integer, it has too few columns, or its user was already listed;
// an empty age, gender or occupation is unknown, not malformed. Only for RawFormat::kMovieLens
// (InvalidArgument otherwise).
Status LoadUserProfiles(RawFormat format, const std::string& path, const LoadOptions& options,
                        InteractionLog* log, UserProfiles* profiles);

}  // namespace attnps::data

#endif  // ATTNPS_WORKER_DATA_RAW_FORMATS_H_
