#include "worker/data/raw_formats.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "worker/data/json_fields.h"
#include "worker/data/line_reader.h"
#include "worker/data/text.h"

namespace attnps::data {
namespace {

constexpr int kReportedBadLines = 10;
constexpr uint64_t kMinLinesForBadCheck = 1000;
constexpr double kProgressSeconds = 5.0;
constexpr size_t kMaxFields = 16;

// Called per non-blank line; returns a non-OK status (the reason) for a malformed line.
using LineFn = std::function<Status(std::string_view line, uint64_t line_number)>;

Status TooManyBad(const std::string& path, uint64_t line, uint64_t bad, uint64_t total,
                  double max_fraction, const std::string& first_bad) {
  return Status::InvalidArgument(path + ":" + std::to_string(line) + ": " + std::to_string(bad) +
                                 " of " + std::to_string(total) +
                                 " lines read are malformed, more than max_bad_fraction=" +
                                 std::to_string(max_fraction) + "; first: " + first_bad);
}

// Runs fn over the lines of `path` with the bad-line policy and progress reports.
Status ForEachLine(const std::string& path, const LoadOptions& options, InteractionLog* log,
                   const LineFn& fn) {
  LineReader reader;
  ATTNPS_RETURN_IF_ERROR(reader.Open(path));
  const std::string printable_path = EscapeForMessage(path);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_report = start;
  uint64_t total = 0, bad = 0;
  std::string first_bad;
  std::string_view line;
  bool eof = false;
  while (true) {
    ATTNPS_RETURN_IF_ERROR(reader.Next(&line, &eof));
    if (eof) break;
    if (Trim(line).empty()) continue;
    ++total;
    Status s = fn(line, reader.line_number());
    if (!s.ok()) {
      ++bad;
      std::string where = path + ":" + std::to_string(reader.line_number()) + ": " + s.message();
      if (bad == 1) first_bad = where;
      if (bad <= kReportedBadLines) LOG(WARNING) << EscapeForMessage(where);
    }
    if (bad > 0 && total >= kMinLinesForBadCheck &&
        static_cast<double>(bad) > options.max_bad_fraction * static_cast<double>(total)) {
      return TooManyBad(path, reader.line_number(), bad, total, options.max_bad_fraction,
                        first_bad);
    }
    if (options.progress && (total & 0xFFFF) == 0) {
      auto now = Clock::now();
      if (std::chrono::duration<double>(now - last_report).count() >= kProgressSeconds) {
        last_report = now;
        double secs = std::chrono::duration<double>(now - start).count();
        std::fprintf(stderr, "prepare: %s: %llu lines, %.0f lines/s\n", printable_path.c_str(),
                     static_cast<unsigned long long>(total), total / secs);
      }
    }
  }
  log->lines_read += total;
  log->bad_lines += bad;
  if (bad > 0) {
    LOG(WARNING) << printable_path << ": skipped " << bad << " malformed of " << total << " lines";
  }
  if (static_cast<double>(bad) > options.max_bad_fraction * static_cast<double>(total)) {
    return TooManyBad(path, reader.line_number(), bad, total, options.max_bad_fraction, first_bad);
  }
  return Status::Ok();
}

void AddEvent(InteractionLog* log, std::string_view user, std::string_view item, double ts) {
  log->user.push_back(log->users.Intern(user));
  uint32_t it = log->items.Intern(item);
  log->item.push_back(it);
  log->ts.push_back(ts);
  if (it >= log->item_cate_name.size()) log->item_cate_name.resize(it + 1);
}

Status NotUint(const char* what, std::string_view v) {
  return Status::InvalidArgument(std::string(what) + " " + Quote(v) +
                                 " is not an unsigned integer");
}

// A timestamp must be finite; where the format stores integer seconds it must also be a plain
// decimal number (no exponent).
Status NotTimestamp(const char* what, std::string_view v, bool plain) {
  return Status::InvalidArgument(std::string(what) + " " + Quote(v) + " is not a " +
                                 (plain ? "plain decimal number" : "finite number"));
}

// Parses a timestamp field: ParsePlainDecimal where `plain`, else any finite ParseDouble number.
bool ParseTimestamp(std::string_view v, bool plain, double* ts) {
  return plain ? ParsePlainDecimal(v, ts) : ParseDouble(v, ts);
}

// True for an atomic-file header line such as "user_id:token\titem_id:token".
bool IsAtomicHeader(std::string_view line) {
  return line.find(":token") != std::string_view::npos ||
         line.find(":float") != std::string_view::npos;
}

// The column whose name (before ':') starts with `prefix`, or -1.
int FindColumn(const std::string_view* cols, size_t n, std::string_view prefix) {
  for (size_t i = 0; i < n && i < kMaxFields; ++i) {
    if (cols[i].substr(0, prefix.size()) == prefix) return static_cast<int>(i);
  }
  return -1;
}

// MovieLens interactions: atomic file, ratings.dat or headerless whitespace columns.
LineFn MovieLensInteractions(InteractionLog* log) {
  struct Columns {
    int user = 0, item = 1, ts = 3;
    bool atomic = false;
  };
  auto cols = std::make_shared<Columns>();
  return [log, cols](std::string_view line, uint64_t line_number) -> Status {
    std::string_view f[kMaxFields];
    size_t n;
    if (line_number == 1 && IsAtomicHeader(line)) {
      n = SplitInto(line, "\t", f, kMaxFields);
      cols->atomic = true;
      cols->user = FindColumn(f, n, "user_id");
      cols->item = FindColumn(f, n, "item_id");
      cols->ts = FindColumn(f, n, "timestamp");
      if (cols->user < 0 || cols->item < 0) {
        return Status::InvalidArgument("atomic header without user_id and item_id columns");
      }
      return Status::Ok();
    }
    if (line.find("::") != std::string_view::npos) {
      n = SplitInto(line, "::", f, kMaxFields);
    } else if (cols->atomic) {
      n = SplitInto(line, "\t", f, kMaxFields);
    } else {
      n = SplitWhitespace(line, f, kMaxFields);
    }
    const size_t need = static_cast<size_t>(std::max({cols->user, cols->item, cols->ts}) + 1);
    const bool has_ts = cols->ts >= 0 && n > static_cast<size_t>(cols->ts);
    if (n < 2 || (cols->atomic && n < need)) {
      return Status::InvalidArgument("expected user, item, rating, timestamp columns, got " +
                                     std::to_string(n) + " fields");
    }
    std::string_view user = Trim(f[cols->user]), item = Trim(f[cols->item]);
    uint64_t id;
    if (!ParseUint64(user, &id)) return NotUint("user", user);
    if (!ParseUint64(item, &id)) return NotUint("item", item);
    double ts = 0;
    // ratings.dat and headerless logs hold integer seconds; `.inter` declares timestamp:float.
    const bool plain = !cols->atomic;
    if (has_ts && !ParseTimestamp(Trim(f[cols->ts]), plain, &ts)) {
      return NotTimestamp("timestamp", Trim(f[cols->ts]), plain);
    }
    AddEvent(log, user, item, ts);
    return Status::Ok();
  };
}

LineFn SasRecInteractions(InteractionLog* log) {
  return [log](std::string_view line, uint64_t) -> Status {
    std::string_view f[3];
    size_t n = SplitWhitespace(line, f, 3);
    if (n != 2)
      return Status::InvalidArgument("expected `user item`, got " + std::to_string(n) + " fields");
    uint64_t id;
    if (!ParseUint64(f[0], &id)) return NotUint("user", f[0]);
    if (!ParseUint64(f[1], &id)) return NotUint("item", f[1]);
    AddEvent(log, f[0], f[1], 0);
    return Status::Ok();
  };
}

LineFn AmazonInteractions(InteractionLog* log) {
  return [log](std::string_view line, uint64_t) -> Status {
    static const std::vector<std::string_view> kWanted = {"reviewerID", "asin", "unixReviewTime"};
    JsonFields json;
    ATTNPS_RETURN_IF_ERROR(ParseJsonFields(line, kWanted, &json));
    const JsonValue* user = json.Find("reviewerID");
    const JsonValue* item = json.Find("asin");
    const JsonValue* time = json.Find("unixReviewTime");
    for (auto [v, name] : {std::pair{user, "reviewerID"}, {item, "asin"}}) {
      if (v == nullptr || v->kind != JsonValue::Kind::kString || v->text.empty()) {
        return Status::InvalidArgument(std::string("missing string field ") + name);
      }
    }
    double ts = 0;
    if (time == nullptr) return Status::InvalidArgument("missing field unixReviewTime");
    if (!ParseTimestamp(time->text, /*plain=*/true, &ts)) {
      return NotTimestamp("unixReviewTime", time->text, /*plain=*/true);
    }
    AddEvent(log, user->text, item->text, ts);
    return Status::Ok();
  };
}

LineFn TaobaoInteractions(InteractionLog* log, std::vector<std::string> behaviors) {
  return [log, behaviors](std::string_view line, uint64_t line_number) -> Status {
    std::string_view f[6];
    size_t n = SplitInto(line, ",", f, 6);
    if (line_number == 1 && n > 0 && Trim(f[0]).substr(0, 4) == "user") return Status::Ok();
    if (n != 5) {
      return Status::InvalidArgument("expected 5 comma-separated fields, got " + std::to_string(n));
    }
    for (auto& s : f) s = Trim(s);
    uint64_t id;
    if (!ParseUint64(f[0], &id)) return NotUint("user", f[0]);
    if (!ParseUint64(f[1], &id)) return NotUint("item", f[1]);
    if (f[2].empty()) return Status::InvalidArgument("empty category");
    double ts = 0;
    if (!ParseTimestamp(f[4], /*plain=*/true, &ts)) return NotTimestamp("timestamp", f[4], true);
    if (std::find(behaviors.begin(), behaviors.end(), f[3]) == behaviors.end()) {
      if (f[3].empty()) return Status::InvalidArgument("empty behavior");
      return Status::Ok();  // a behavior type not selected
    }
    AddEvent(log, f[0], f[1], ts);
    std::string& cate = log->item_cate_name[log->item.back()];
    if (cate.empty()) cate.assign(f[2]);  // the first category seen for the item
    return Status::Ok();
  };
}

void SetCategory(InteractionLog* log, std::string_view item, std::string_view cate) {
  int64_t idx = log->items.Find(item);
  if (idx >= 0) log->item_cate_name[idx].assign(cate.empty() ? "none" : cate);
}

// MovieLens `.item` atomic file or movies.dat; also used for sasrec item files.
LineFn MovieLensItems(InteractionLog* log) {
  struct Columns {
    int item = 0, cate = -1;  // -1: the last column
  };
  auto cols = std::make_shared<Columns>();
  return [log, cols](std::string_view line, uint64_t line_number) -> Status {
    std::string_view f[kMaxFields];
    if (line_number == 1 && IsAtomicHeader(line)) {
      size_t n = SplitInto(line, "\t", f, kMaxFields);
      cols->item = FindColumn(f, n, "item_id");
      cols->cate = FindColumn(f, n, "class");
      if (cols->cate < 0) cols->cate = FindColumn(f, n, "genre");
      if (cols->item < 0) return Status::InvalidArgument("atomic header without item_id column");
      return Status::Ok();
    }
    std::string_view genre;
    std::string_view item;
    if (line.find("::") != std::string_view::npos) {
      size_t n = SplitInto(line, "::", f, kMaxFields);
      if (n < 3) return Status::InvalidArgument("expected `item::title::genres`");
      item = Trim(f[0]);
      std::string_view g[2];
      SplitInto(Trim(f[n - 1]), "|", g, 1);
      genre = Trim(g[0]);
    } else {
      size_t n = std::min(SplitInto(line, "\t", f, kMaxFields), kMaxFields);
      int c = cols->cate < 0 ? static_cast<int>(n) - 1 : cols->cate;
      if (n < 2 || static_cast<size_t>(cols->item) >= n || static_cast<size_t>(c) >= n) {
        return Status::InvalidArgument("expected tab-separated item and genre columns, got " +
                                       std::to_string(n) + " fields");
      }
      item = Trim(f[cols->item]);
      std::string_view tokens[1];
      genre = SplitWhitespace(f[c], tokens, 1) > 0 ? tokens[0] : std::string_view();
    }
    uint64_t id;
    if (!ParseUint64(item, &id)) return NotUint("item", item);
    SetCategory(log, item, genre);
    return Status::Ok();
  };
}

// MovieLens user profiles: `.user` atomic file (columns by name), users.dat
// (`user::gender::age::occupation::zip`) or u.user (`user|age|gender|occupation|zip`).
LineFn MovieLensUsers(InteractionLog* log, UserProfiles* profiles) {
  struct Columns {
    int user = 0, age = 1, gender = 2, occupation = 3;
    bool atomic = false;  // after an atomic header every line is tab-separated
    bool bad_header = false;
  };
  auto cols = std::make_shared<Columns>();
  return [log, profiles, cols](std::string_view line, uint64_t line_number) -> Status {
    std::string_view f[kMaxFields];
    if (line_number == 1 && IsAtomicHeader(line)) {
      size_t n = SplitInto(line, "\t", f, kMaxFields);
      cols->atomic = true;
      cols->user = FindColumn(f, n, "user_id");
      cols->age = FindColumn(f, n, "age");
      cols->gender = FindColumn(f, n, "gender");
      cols->occupation = FindColumn(f, n, "occupation");
      if (cols->user < 0 || cols->age < 0 || cols->gender < 0 || cols->occupation < 0) {
        cols->bad_header = true;
        return Status::InvalidArgument(
            "atomic header without user_id, age, gender and occupation columns");
      }
      return Status::Ok();
    }
    if (cols->bad_header) {
      return Status::InvalidArgument("no user_id, age, gender and occupation columns (line 1)");
    }
    Columns c = *cols;
    size_t n;
    if (c.atomic) {
      n = SplitInto(line, "\t", f, kMaxFields);
    } else if (line.find("::") != std::string_view::npos) {
      n = SplitInto(line, "::", f, kMaxFields);
      c.user = 0, c.gender = 1, c.age = 2, c.occupation = 3;
    } else if (line.find('|') != std::string_view::npos) {
      n = SplitInto(line, "|", f, kMaxFields);
      c.user = 0, c.age = 1, c.gender = 2, c.occupation = 3;
    } else {
      n = SplitInto(line, "\t", f, kMaxFields);
    }
    const size_t need = static_cast<size_t>(std::max({c.user, c.age, c.gender, c.occupation}) + 1);
    if (n < need) {
      return Status::InvalidArgument("expected user, age, gender, occupation columns, got " +
                                     std::to_string(n) + " fields");
    }
    std::string_view user = Trim(f[c.user]), age = Trim(f[c.age]);
    uint64_t id, years = 0;
    if (!ParseUint64(user, &id)) return NotUint("user", user);
    if (!age.empty() && !ParseUint64(age, &years)) return NotUint("age", age);
    int64_t index = log->users.Find(user);
    if (index < 0) return Status::Ok();  // a user without interactions
    if (profiles->line[index] != 0) {
      return Status::InvalidArgument("user " + Quote(user) + " is listed again (first at line " +
                                     std::to_string(profiles->line[index]) + ")");
    }
    profiles->line[index] = line_number;
    profiles->age_bucket[index] = age.empty() ? 0 : AgeBucket(years);
    profiles->gender[index].assign(Trim(f[c.gender]));
    profiles->occupation[index].assign(Trim(f[c.occupation]));
    return Status::Ok();
  };
}

// The last string of the last non-empty list in a (list of lists | list) value.
std::string_view LastCategory(const JsonValue& v) {
  if (v.kind == JsonValue::Kind::kString) return v.text;
  if (v.kind != JsonValue::Kind::kArray) return {};
  for (auto it = v.items.rbegin(); it != v.items.rend(); ++it) {
    std::string_view c = LastCategory(*it);
    if (!c.empty()) return c;
  }
  return {};
}

LineFn AmazonItems(InteractionLog* log) {
  return [log](std::string_view line, uint64_t) -> Status {
    static const std::vector<std::string_view> kWanted = {"asin", "categories", "category"};
    JsonFields json;
    ATTNPS_RETURN_IF_ERROR(ParseJsonFields(line, kWanted, &json));
    const JsonValue* asin = json.Find("asin");
    if (asin == nullptr || asin->kind != JsonValue::Kind::kString || asin->text.empty()) {
      return Status::InvalidArgument("missing string field asin");
    }
    std::string_view cate;
    if (const JsonValue* c = json.Find("categories"); c != nullptr) cate = LastCategory(*c);
    if (const JsonValue* c = json.Find("category"); cate.empty() && c != nullptr) {
      cate = LastCategory(*c);
    }
    SetCategory(log, asin->text, cate);
    return Status::Ok();
  };
}

}  // namespace

uint64_t AgeBucket(uint64_t age) {
  // The first age of buckets 2..7.
  static constexpr uint64_t kBucketStarts[UserProfiles::kAgeBuckets - 1] = {18, 25, 35, 45, 50, 56};
  uint64_t bucket = 1;
  for (uint64_t start : kBucketStarts) bucket += age >= start ? 1 : 0;
  return bucket;
}

uint32_t Interner::Intern(std::string_view s) {
  auto it = index_.find(absl::string_view(s.data(), s.size()));
  if (it != index_.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(s);
  index_.emplace(names_.back(), id);
  return id;
}

int64_t Interner::Find(std::string_view s) const {
  auto it = index_.find(absl::string_view(s.data(), s.size()));
  return it == index_.end() ? -1 : static_cast<int64_t>(it->second);
}

Status ParseRawFormatName(std::string_view name, RawFormat* format) {
  if (name == "movielens")
    *format = RawFormat::kMovieLens;
  else if (name == "sasrec")
    *format = RawFormat::kSasRec;
  else if (name == "amazon")
    *format = RawFormat::kAmazon;
  else if (name == "taobao")
    *format = RawFormat::kTaobao;
  else
    return Status::InvalidArgument("unknown format " + Quote(name));
  return Status::Ok();
}

Status LoadInteractions(RawFormat format, const std::string& path, const LoadOptions& options,
                        InteractionLog* log) {
  switch (format) {
    case RawFormat::kMovieLens:
      return ForEachLine(path, options, log, MovieLensInteractions(log));
    case RawFormat::kSasRec:
      return ForEachLine(path, options, log, SasRecInteractions(log));
    case RawFormat::kAmazon:
      return ForEachLine(path, options, log, AmazonInteractions(log));
    case RawFormat::kTaobao:
      return ForEachLine(path, options, log, TaobaoInteractions(log, options.taobao_behaviors));
  }
  return Status::InvalidArgument("unknown format");
}

Status LoadItemCategories(RawFormat format, const std::string& path, const LoadOptions& options,
                          InteractionLog* log) {
  log->item_cate_name.resize(log->items.size());
  switch (format) {
    case RawFormat::kMovieLens:
    case RawFormat::kSasRec:
      return ForEachLine(path, options, log, MovieLensItems(log));
    case RawFormat::kAmazon:
      return ForEachLine(path, options, log, AmazonItems(log));
    case RawFormat::kTaobao:
      return Status::InvalidArgument("taobao gives categories inline; --items is not used");
  }
  return Status::InvalidArgument("unknown format");
}

Status LoadUserProfiles(RawFormat format, const std::string& path, const LoadOptions& options,
                        InteractionLog* log, UserProfiles* profiles) {
  if (format != RawFormat::kMovieLens) {
    return Status::InvalidArgument("a users file (user profiles) is only read for movielens");
  }
  const size_t n = log->users.size();
  profiles->line.assign(n, 0);
  profiles->age_bucket.assign(n, 0);
  profiles->gender.assign(n, "");
  profiles->occupation.assign(n, "");
  return ForEachLine(path, options, log, MovieLensUsers(log, profiles));
}

}  // namespace attnps::data
