#include "worker/data/prepare.h"

#include <glog/logging.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <system_error>

#include "ops/random.h"
#include "worker/data/output.h"
#include "worker/data/raw_formats.h"
#include "worker/data/recipe.h"
#include "worker/data/text.h"

namespace attnps::data {
namespace {

constexpr double kProgressSeconds = 5.0;
// With --users: fields 7, 8, 9 = age_bucket, gender, occupation.
constexpr size_t kUserExtraFields = 3;

// rank[i] = position of names[i] in ascending order: numeric when every name is an unsigned
// integer, else lexicographic.
std::vector<uint64_t> AscendingRanks(const std::vector<std::string>& names) {
  std::vector<uint64_t> value(names.size());
  bool numeric = true;
  for (size_t i = 0; i < names.size() && numeric; ++i) numeric = ParseUint64(names[i], &value[i]);
  std::vector<uint32_t> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  if (numeric) {
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return value[a] != value[b] ? value[a] < value[b] : names[a] < names[b];
    });
  } else {
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return names[a] < names[b]; });
  }
  std::vector<uint64_t> rank(names.size());
  for (size_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  return rank;
}

Status WriteDatasetTxt(const PrepareOptions& options, const PrepareReport& r) {
  std::string s;
  auto kv = [&s](const char* key, const std::string& value) {
    s += key;
    s += '=';
    s += value;
    s += '\n';
  };
  kv("format", options.format);
  kv("seed", std::to_string(options.seed));
  kv("max_history", std::to_string(options.max_history));
  kv("min_user_events", std::to_string(options.min_user_events));
  kv("users", std::to_string(r.users));
  kv("users_with_samples", std::to_string(r.users_with_samples));
  kv("items", std::to_string(r.items));
  kv("cates", std::to_string(r.cates));
  kv("events", std::to_string(r.events));
  kv("train_rows", std::to_string(r.train_rows));
  kv("test_rows", std::to_string(r.test_rows));
  kv("lines_read", std::to_string(r.lines_read));
  kv("bad_lines", std::to_string(r.bad_lines));
  if (!r.extra_columns.empty()) {  // only then: without them the file is as it always was
    std::string names;
    for (const std::string& name : r.extra_columns) names += (names.empty() ? "" : ",") + name;
    kv("extra_columns", names);
    for (size_t k = 0; k < r.extra_columns.size(); ++k) {
      kv((r.extra_columns[k] + "_ids").c_str(), std::to_string(r.extra_column_ids[k]));
    }
    if (!options.users.empty())
      kv("users_without_profile", std::to_string(r.users_without_profile));
  }
  AtomicFile out;
  ATTNPS_RETURN_IF_ERROR(out.Open(options.out + "/dataset.txt"));
  ATTNPS_RETURN_IF_ERROR(out.Append(s));
  return out.Commit();
}

RecipeOptions MakeRecipeOptions(const PrepareOptions& options) {
  RecipeOptions r;
  r.max_history = options.max_history;
  r.min_user_events = options.min_user_events;
  r.seed = options.seed;
  r.shuffle_memory_bytes = options.shuffle_memory_bytes;
  r.activity_buckets = options.activity_buckets;
  return r;
}

// With --activity_buckets: the activity field's name and id count in the report, and its ids'
// ranges in *ids_tsv (extra_columns.tsv).
void AddActivityColumn(const PrepareOptions& options, PrepareReport* report, std::string* ids_tsv) {
  if (options.activity_buckets <= 0) return;
  report->extra_columns.push_back("activity");
  report->extra_column_ids.push_back(static_cast<uint64_t>(options.activity_buckets));
  for (int b = 1; b <= options.activity_buckets; ++b) {
    *ids_tsv += "activity\t" + std::to_string(b) + "\t" +
                ActivityBucketRange(b, options.activity_buckets) + " events before\n";
  }
}

Status WriteExtraColumns(const std::string& dir, const std::string& ids_tsv) {
  if (ids_tsv.empty()) return Status::Ok();
  AtomicFile ids;
  ATTNPS_RETURN_IF_ERROR(ids.Open(dir + "/extra_columns.tsv"));
  ATTNPS_RETURN_IF_ERROR(ids.Append(ids_tsv));
  return ids.Commit();
}

void FillWriterCounts(const SampleWriter& writer, PrepareReport* report) {
  report->train_rows = writer.train_rows();
  report->test_rows = writer.test_rows();
  report->users_with_samples = writer.users_with_samples();
  report->skipped_users = writer.skipped_users();
}

// The distinct non-empty values, in AscendingRanks order: value i gets id i + 1.
std::vector<std::string> ValueIds(const std::vector<std::string>& values) {
  std::vector<std::string> distinct;
  for (const std::string& v : values) {
    if (!v.empty()) distinct.push_back(v);
  }
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  const std::vector<uint64_t> rank = AscendingRanks(distinct);
  std::vector<std::string> ordered(distinct.size());
  for (size_t i = 0; i < distinct.size(); ++i) ordered[rank[i]] = distinct[i];
  return ordered;
}

// The extra CTR fields from the user profiles: per dense user (index user - 1) its age bucket,
// gender and occupation ids (kUserExtraFields), 0 where unknown or absent from the users file.
// Fills the report's extra_* fields and *ids_tsv with the content of extra_columns.tsv (column \t
// id \t value).
void UserExtraFields(const PrepareOptions& options, const InteractionLog& log,
                     const UserProfiles& profiles, const std::vector<uint64_t>& user_rank,
                     std::vector<std::array<uint64_t, kUserExtraFields>>* extra,
                     std::string* ids_tsv, PrepareReport* report) {
  static constexpr const char* kAgeBucketNames[UserProfiles::kAgeBuckets] = {
      "<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"};
  const std::vector<std::string> genders = ValueIds(profiles.gender);
  const std::vector<std::string> occupations = ValueIds(profiles.occupation);
  auto index = [](const std::vector<std::string>& ordered) {
    std::map<std::string, uint64_t> id;
    for (size_t i = 0; i < ordered.size(); ++i) id[ordered[i]] = i + 1;
    return id;
  };
  const std::map<std::string, uint64_t> gender_id = index(genders);
  const std::map<std::string, uint64_t> occupation_id = index(occupations);
  auto id_of = [](const std::map<std::string, uint64_t>& ids, const std::string& v) -> uint64_t {
    return v.empty() ? 0 : ids.at(v);
  };
  extra->assign(log.users.size(), {0, 0, 0});
  std::string missing_examples;
  for (size_t i = 0; i < log.users.size(); ++i) {
    if (profiles.line[i] == 0) {
      if (++report->users_without_profile <= 5) {
        missing_examples += (missing_examples.empty() ? "" : ", ") + log.users.names()[i];
      }
      continue;
    }
    (*extra)[user_rank[i]] = {profiles.age_bucket[i], id_of(gender_id, profiles.gender[i]),
                              id_of(occupation_id, profiles.occupation[i])};
  }
  if (report->users_without_profile > 0) {
    LOG(WARNING) << EscapeForMessage(options.users) << ": " << report->users_without_profile
                 << " of " << log.users.size()
                 << " users have no profile line; their age_bucket, gender and occupation are 0 "
                    "(e.g. user "
                 << EscapeForMessage(missing_examples) << ")";
  }
  report->extra_columns = {"age_bucket", "gender", "occupation"};
  report->extra_column_ids = {UserProfiles::kAgeBuckets, genders.size(), occupations.size()};

  auto add = [ids_tsv](const char* column, size_t id, std::string_view value) {
    *ids_tsv += column;
    *ids_tsv += '\t';
    AppendUint(id, ids_tsv);
    *ids_tsv += '\t';
    *ids_tsv += value;
    *ids_tsv += '\n';
  };
  for (size_t b = 0; b < UserProfiles::kAgeBuckets; ++b) {
    add("age_bucket", b + 1, kAgeBucketNames[b]);
  }
  for (size_t g = 0; g < genders.size(); ++g) add("gender", g + 1, genders[g]);
  for (size_t o = 0; o < occupations.size(); ++o) add("occupation", o + 1, occupations[o]);
}

Status PrepareRaw(const PrepareOptions& options, PrepareReport* report) {
  RawFormat format;
  ATTNPS_RETURN_IF_ERROR(ParseRawFormatName(options.format, &format));
  LoadOptions load;
  load.max_bad_fraction = options.max_bad_fraction;
  load.taobao_behaviors = options.taobao_behaviors;
  load.progress = options.progress;
  InteractionLog log;
  ATTNPS_RETURN_IF_ERROR(LoadInteractions(format, options.input, load, &log));
  if (!options.items.empty()) {
    ATTNPS_RETURN_IF_ERROR(LoadItemCategories(format, options.items, load, &log));
  }
  UserProfiles profiles;
  if (!options.users.empty()) {
    ATTNPS_RETURN_IF_ERROR(LoadUserProfiles(format, options.users, load, &log, &profiles));
  }
  log.item_cate_name.resize(log.items.size());
  if (log.user.empty()) return Status::InvalidArgument(options.input + ": no interactions");

  // Dense ids: items and users by ascending raw id, categories by sorted name.
  const std::vector<uint64_t> item_rank = AscendingRanks(log.items.names());
  const std::vector<uint64_t> user_rank = AscendingRanks(log.users.names());
  std::vector<std::string> cate_names;
  for (auto& name : log.item_cate_name) {
    if (name.empty()) name = "none";
    cate_names.push_back(name);
  }
  std::sort(cate_names.begin(), cate_names.end());
  cate_names.erase(std::unique(cate_names.begin(), cate_names.end()), cate_names.end());
  std::vector<uint64_t> item_cate(log.items.size() + 1, 0);
  for (size_t i = 0; i < log.items.size(); ++i) {
    auto it = std::lower_bound(cate_names.begin(), cate_names.end(), log.item_cate_name[i]);
    item_cate[item_rank[i] + 1] = static_cast<uint64_t>(it - cate_names.begin()) + 1;
  }

  // Group events by dense user (file order kept), then sort each user's events by time, stably.
  const size_t num_users = log.users.size();
  std::vector<uint64_t> start(num_users + 1, 0);
  for (uint32_t u : log.user) ++start[user_rank[u] + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<uint64_t> fill(start.begin(), start.end() - 1);
  std::vector<uint32_t> by_user(log.user.size());
  for (size_t e = 0; e < log.user.size(); ++e) by_user[fill[user_rank[log.user[e]]]++] = e;

  // Per dense user - 1: the extra CTR fields (none without a users file).
  std::vector<std::array<uint64_t, kUserExtraFields>> user_extra;
  std::string extra_ids_tsv;
  if (!options.users.empty()) {
    UserExtraFields(options, log, profiles, user_rank, &user_extra, &extra_ids_tsv, report);
  }
  AddActivityColumn(options, report, &extra_ids_tsv);

  SampleWriter writer(MakeRecipeOptions(options), item_cate);
  ATTNPS_RETURN_IF_ERROR(writer.Open(options.out));
  std::vector<uint64_t> seq;
  std::vector<std::vector<uint64_t>> extra(kUserExtraFields);
  for (size_t u = 0; u < num_users; ++u) {
    auto first = by_user.begin() + start[u], last = by_user.begin() + start[u + 1];
    std::stable_sort(first, last, [&](uint32_t a, uint32_t b) { return log.ts[a] < log.ts[b]; });
    seq.clear();
    for (auto it = first; it != last; ++it) seq.push_back(item_rank[log.item[*it]] + 1);
    if (user_extra.empty()) {
      ATTNPS_RETURN_IF_ERROR(writer.AddUser(u + 1, seq));
      continue;
    }
    for (size_t k = 0; k < kUserExtraFields; ++k) extra[k].assign(1, user_extra[u][k]);
    ATTNPS_RETURN_IF_ERROR(writer.AddUser(u + 1, seq, extra));
  }
  ATTNPS_RETURN_IF_ERROR(writer.Commit());
  ATTNPS_RETURN_IF_ERROR(WriteItemCates(options.out, item_cate));
  ATTNPS_RETURN_IF_ERROR(WriteExtraColumns(options.out, extra_ids_tsv));

  report->lines_read = log.lines_read;
  report->bad_lines = log.bad_lines;
  report->events = log.user.size();
  report->users = num_users;
  report->items = log.items.size();
  report->cates = cate_names.size();
  FillWriterCounts(writer, report);
  return Status::Ok();
}

Status PrepareSynthetic(const PrepareOptions& options, PrepareReport* report) {
  const SyntheticOptions& syn = options.synthetic;
  ATTNPS_RETURN_IF_ERROR(ValidateSyntheticOptions(syn));
  SyntheticWorld world(syn, options.seed);
  SampleWriter writer(MakeRecipeOptions(options), world.item_cate());
  std::vector<uint64_t> seq, current;
  if (syn.stale_negatives) {
    writer.set_candidate_sampler([&](std::mt19937_64* rng, size_t position) {
      return world.DrawStaleItem(seq, current, position, rng);
    });
  } else if (syn.popularity_negatives) {
    writer.set_candidate_sampler(
        [&world](std::mt19937_64* rng, size_t) { return world.DrawPopularItem(rng); });
  }
  ATTNPS_RETURN_IF_ERROR(writer.Open(options.out));
  std::mt19937_64 rng(StreamKey(options.seed, 0x53594e5448ull));
  using Clock = std::chrono::steady_clock;
  const auto begin = Clock::now();
  auto last_report = begin;
  for (uint64_t u = 1; u <= syn.users; ++u) {
    world.DrawUser(&rng, &seq, syn.stale_negatives ? &current : nullptr);
    report->events += seq.size();
    ATTNPS_RETURN_IF_ERROR(writer.AddUser(u, seq));
    if (options.progress && (u & 0x3FF) == 0) {
      auto now = Clock::now();
      if (std::chrono::duration<double>(now - last_report).count() >= kProgressSeconds) {
        last_report = now;
        double secs = std::chrono::duration<double>(now - begin).count();
        std::fprintf(stderr, "prepare: synthetic: %llu of %llu users, %.0f train rows/s\n",
                     static_cast<unsigned long long>(u), static_cast<unsigned long long>(syn.users),
                     writer.train_rows() / secs);
      }
    }
  }
  ATTNPS_RETURN_IF_ERROR(writer.Commit());
  ATTNPS_RETURN_IF_ERROR(WriteItemCates(options.out, world.item_cate()));
  std::string extra_ids_tsv;
  AddActivityColumn(options, report, &extra_ids_tsv);
  ATTNPS_RETURN_IF_ERROR(WriteExtraColumns(options.out, extra_ids_tsv));
  report->users = syn.users;
  report->items = syn.items;
  report->cates = syn.clusters;
  FillWriterCounts(writer, report);
  return Status::Ok();
}

// ---- flags ----

struct Flag {
  const char* name;
  const char* help;
  std::function<Status(std::string_view, PrepareOptions*)> set;
};

Status BadValue(std::string_view name, std::string_view value, const std::string& what) {
  return Status::InvalidArgument("--" + std::string(name) + "=" + std::string(value) + ": " + what);
}

template <typename T>
Flag UintFlag(const char* name, const char* help, T PrepareOptions::*field, uint64_t min = 0) {
  return {name, help, [name, field, min](std::string_view v, PrepareOptions* o) {
            uint64_t x;
            if (!ParseUint64(v, &x) || x < min ||
                x > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
              return BadValue(name, v, ("expected an integer >= " + std::to_string(min)).c_str());
            }
            o->*field = static_cast<T>(x);
            return Status::Ok();
          }};
}

template <typename T>
Flag SynUintFlag(const char* name, const char* help, T SyntheticOptions::*field) {
  return {name, help, [name, field](std::string_view v, PrepareOptions* o) {
            uint64_t x;
            if (!ParseUint64(v, &x) || x > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
              return BadValue(name, v, "expected a non-negative integer");
            }
            o->synthetic.*field = static_cast<T>(x);
            return Status::Ok();
          }};
}

Flag SynDoubleFlag(const char* name, const char* help, double SyntheticOptions::*field) {
  return {name, help, [name, field](std::string_view v, PrepareOptions* o) {
            if (!ParseDouble(v, &(o->synthetic.*field))) return BadValue(name, v, "not a number");
            return Status::Ok();
          }};
}

Flag StringFlag(const char* name, const char* help, std::string PrepareOptions::*field) {
  return {name, help, [field](std::string_view v, PrepareOptions* o) {
            o->*field = std::string(v);
            return Status::Ok();
          }};
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag>* flags = new std::vector<Flag>{
      StringFlag("format", "movielens|sasrec|amazon|taobao|synthetic", &PrepareOptions::format),
      StringFlag("input", "interactions file (not for synthetic)", &PrepareOptions::input),
      {"items", "items/meta file with categories (optional); synthetic: item count (20000)",
       [](std::string_view v, PrepareOptions* o) {
         if (o->format != "synthetic") {
           o->items = std::string(v);
           return Status::Ok();
         }
         if (!ParseUint64(v, &o->synthetic.items)) return BadValue("items", v, "not an integer");
         return Status::Ok();
       }},
      StringFlag("out", "output directory", &PrepareOptions::out),
      UintFlag("max_history", "history items kept per sample (default 50)",
               &PrepareOptions::max_history, 1),
      UintFlag("seed", "random seed (default 1)", &PrepareOptions::seed),
      {"max_bad_fraction", "malformed-line fraction that stops the run (default 0.001)",
       [](std::string_view v, PrepareOptions* o) {
         if (!ParseDouble(v, &o->max_bad_fraction) || !(o->max_bad_fraction >= 0)) {
           return BadValue("max_bad_fraction", v, "expected a number >= 0");
         }
         return Status::Ok();
       }},
      UintFlag("min_user_events", "users with fewer events are skipped (default 3)",
               &PrepareOptions::min_user_events, 2),
      {"taobao_behaviors", "comma list of pv,buy,cart,fav to keep (default pv)",
       [](std::string_view v, PrepareOptions* o) {
         o->taobao_behaviors.clear();
         std::string_view parts[8];
         size_t n = SplitInto(v, ",", parts, 8);
         for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) {
           if (!Trim(parts[i]).empty()) o->taobao_behaviors.emplace_back(Trim(parts[i]));
         }
         if (o->taobao_behaviors.empty()) return BadValue("taobao_behaviors", v, "empty list");
         return Status::Ok();
       }},
      {"activity_buckets",
       "N > 0: a last extra CTR field, the user's activity bucket (events before the sample: 1, "
       "2-3, 4-7, ..., the N-th open-ended); 0 = none (default)",
       [](std::string_view v, PrepareOptions* o) {
         uint64_t n = 0;
         if (!ParseUint64(v, &n) || n > 30)
           return BadValue("activity_buckets", v, "expected 0..30");
         o->activity_buckets = static_cast<int>(n);
         return Status::Ok();
       }},
      {"users", "movielens: user profile file (optional); synthetic: user count (10000)",
       [](std::string_view v, PrepareOptions* o) {
         if (o->format != "synthetic") {
           o->users = std::string(v);
           return Status::Ok();
         }
         if (!ParseUint64(v, &o->synthetic.users)) {
           return BadValue("users", v, "expected a non-negative integer");
         }
         return Status::Ok();
       }},
      SynUintFlag("clusters", "synthetic: item clusters = categories (default 200)",
                  &SyntheticOptions::clusters),
      SynUintFlag("interests_per_user", "synthetic: interests per user (default 4)",
                  &SyntheticOptions::interests_per_user),
      SynDoubleFlag("events_per_user", "synthetic: mean events per user (default 40)",
                    &SyntheticOptions::events_per_user),
      {"lengths", "synthetic: events per user, uniform (default) or geometric (a long tail)",
       [](std::string_view v, PrepareOptions* o) {
         if (v != "uniform" && v != "geometric") {
           return BadValue("lengths", v, "expected uniform or geometric");
         }
         o->synthetic.geometric_lengths = v == "geometric";
         return Status::Ok();
       }},
      SynDoubleFlag("zipf", "synthetic: Zipf exponent (default 1.1)", &SyntheticOptions::zipf),
      SynDoubleFlag("drift", "synthetic: per-event interest replacement probability (0.05)",
                    &SyntheticOptions::drift),
      SynDoubleFlag("noise", "synthetic: probability of a random popular item (0.1)",
                    &SyntheticOptions::noise),
      {"negatives",
       "synthetic: popularity|uniform|stale (default popularity; stale: from the clusters of the "
       "user's earlier clicks that are no longer interests)",
       [](std::string_view v, PrepareOptions* o) {
         if (v != "uniform" && v != "popularity" && v != "stale") {
           return BadValue("negatives", v, "expected uniform, popularity or stale");
         }
         o->synthetic.popularity_negatives = v != "uniform";
         o->synthetic.stale_negatives = v == "stale";
         return Status::Ok();
       }},
  };
  return *flags;
}

std::string FlagNames() {
  std::string s;
  for (const Flag& f : Flags()) {
    if (!s.empty()) s += ", ";
    s += "--";
    s += f.name;
  }
  return s + ", --help";
}

Status ValidateOptions(const PrepareOptions& o) {
  if (o.format.empty()) return Status::InvalidArgument("--format is required");
  if (o.out.empty()) return Status::InvalidArgument("--out is required");
  if (o.max_history < 1) return Status::InvalidArgument("--max_history must be >= 1");
  if (o.min_user_events < 2) return Status::InvalidArgument("--min_user_events must be >= 2");
  if (!o.users.empty() && o.format != "movielens") {
    return Status::InvalidArgument(
        "--users=FILE (user profiles) is only supported with --format=movielens" +
        std::string(o.format == "synthetic" ? " (for synthetic, --users is the user count)" : ""));
  }
  if (o.format == "synthetic") return ValidateSyntheticOptions(o.synthetic);
  RawFormat format;
  ATTNPS_RETURN_IF_ERROR(ParseRawFormatName(o.format, &format).WithContext("--format"));
  if (o.input.empty()) return Status::InvalidArgument("--input is required for " + o.format);
  return Status::Ok();
}

}  // namespace

Status Prepare(const PrepareOptions& options, PrepareReport* report) {
  *report = PrepareReport();
  ATTNPS_RETURN_IF_ERROR(ValidateOptions(options));
  std::error_code ec;
  std::filesystem::create_directories(options.out, ec);
  if (ec) return Status::IoError("cannot create " + options.out + ": " + ec.message());
  if (options.format == "synthetic") {
    ATTNPS_RETURN_IF_ERROR(PrepareSynthetic(options, report));
  } else {
    ATTNPS_RETURN_IF_ERROR(PrepareRaw(options, report));
  }
  return WriteDatasetTxt(options, *report);
}

std::string PrepareUsage() {
  std::string s =
      "usage: attnps prepare --format=FORMAT --out=DIR [--input=FILE] [--items=FILE] "
      "[--users=FILE] [flags]\n"
      "Writes train.tsv, test.tsv, sequences.tsv, item_cates.tsv and dataset.txt to DIR\n"
      "(with --users=FILE also extra_columns.tsv).\n"
      "flags:\n";
  for (const Flag& f : Flags()) {
    s += "  --";
    s += f.name;
    s += std::string(std::max<size_t>(2, 22 - std::string_view(f.name).size()), ' ');
    s += f.help;
    s += '\n';
  }
  return s;
}

Status ParsePrepareFlags(const std::vector<std::string>& args, PrepareOptions* options,
                         bool* help) {
  *help = false;
  size_t i = !args.empty() && args[0] == "prepare" ? 1 : 0;
  // --format first: it decides what --items means.
  for (size_t k = i; k < args.size(); ++k) {
    if (args[k].rfind("--format=", 0) == 0) options->format = args[k].substr(9);
  }
  for (; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return Status::Ok();
    }
    if (arg.substr(0, 2) != "--" || arg.find('=') == std::string_view::npos) {
      return Status::InvalidArgument("expected --name=value, got " + Quote(arg) +
                                     "; valid flags: " + FlagNames());
    }
    std::string_view name = arg.substr(2, arg.find('=') - 2);
    std::string_view value = arg.substr(arg.find('=') + 1);
    const Flag* flag = nullptr;
    for (const Flag& f : Flags()) {
      if (name == f.name) flag = &f;
    }
    if (flag == nullptr) {
      return Status::InvalidArgument("unknown flag --" + std::string(name) +
                                     "; valid flags: " + FlagNames());
    }
    ATTNPS_RETURN_IF_ERROR(flag->set(value, options));
  }
  return Status::Ok();
}

int PrepareMain(const std::vector<std::string>& args) {
  PrepareOptions options;
  bool help = false;
  Status s = ParsePrepareFlags(args, &options, &help);
  if (help) {
    std::fputs(PrepareUsage().c_str(), stdout);
    return 0;
  }
  if (s.ok()) s = ValidateOptions(options);
  if (!s.ok()) {
    std::fprintf(stderr, "attnps prepare: %s\n%s", s.ToString().c_str(), PrepareUsage().c_str());
    return 2;
  }
  const auto begin = std::chrono::steady_clock::now();
  PrepareReport r;
  s = Prepare(options, &r);
  if (!s.ok()) {
    std::fprintf(stderr, "attnps prepare: %s\n", s.ToString().c_str());
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::printf(
      "prepared %s in %.1f s: users=%llu items=%llu cates=%llu train_rows=%llu test_rows=%llu "
      "bad_lines=%llu skipped_users=%llu -> %s\n",
      options.format.c_str(), secs, static_cast<unsigned long long>(r.users),
      static_cast<unsigned long long>(r.items), static_cast<unsigned long long>(r.cates),
      static_cast<unsigned long long>(r.train_rows), static_cast<unsigned long long>(r.test_rows),
      static_cast<unsigned long long>(r.bad_lines),
      static_cast<unsigned long long>(r.skipped_users), options.out.c_str());
  if (!r.extra_columns.empty()) {
    std::string names;
    for (size_t k = 0; k < r.extra_columns.size(); ++k) {
      names += (k > 0 ? "," : "") + r.extra_columns[k] + "(" +
               std::to_string(r.extra_column_ids[k]) + " ids)";
    }
    std::printf("extra CTR fields 7..: %s", names.c_str());
    if (!options.users.empty()) {
      std::printf("; users_without_profile=%llu",
                  static_cast<unsigned long long>(r.users_without_profile));
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace attnps::data
