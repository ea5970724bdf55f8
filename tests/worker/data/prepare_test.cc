#include "worker/data/prepare.h"
#include "worker/data/recipe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/worker/data/test_util.h"
#include "worker/data/output.h"
#include "worker/data/raw_formats.h"
#include "worker/data/sample.h"

namespace attnps::data {
namespace {

using testing_util::FreshDir;
using testing_util::ReadFile;
using testing_util::ReadLines;
using testing_util::WriteFile;

std::vector<CtrSample> ReadCtr(const std::string& path) {
  std::vector<CtrSample> out;
  for (const std::string& line : ReadLines(path)) {
    CtrSample s;
    Status st = ParseCtrLine(line, &s);
    EXPECT_TRUE(st.ok()) << path << ": " << st.ToString();
    out.push_back(s);
  }
  return out;
}

std::vector<RetrievalSample> ReadSequences(const std::string& path) {
  std::vector<RetrievalSample> out;
  for (const std::string& line : ReadLines(path)) {
    RetrievalSample s;
    EXPECT_TRUE(ParseRetrievalLine(line, &s).ok()) << line;
    out.push_back(s);
  }
  return out;
}

std::map<std::string, std::string> ReadDatasetTxt(const std::string& dir) {
  std::map<std::string, std::string> kv;
  for (const std::string& line : ReadLines(dir + "/dataset.txt")) {
    size_t eq = line.find('=');
    kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

CtrSample Row(float label, uint64_t user, uint64_t item, uint64_t cate,
              std::vector<uint64_t> hist_items, std::vector<uint64_t> hist_cates) {
  CtrSample s;
  s.label = label;
  s.user = user;
  s.item = item;
  s.cate = cate;
  s.hist_items = std::move(hist_items);
  s.hist_cates = std::move(hist_cates);
  return s;
}

bool InSet(const RetrievalSample& seq, uint64_t item) {
  return std::find(seq.items.begin(), seq.items.end(), item) != seq.items.end();
}

// A tiny MovieLens atomic log. Raw items 20, 100, 200, 300, 1000 -> dense 1..5 (numeric order,
// not lexicographic); users 10, 20, 30 -> 1, 2, 3. User 10's events sorted by (time, file order):
// 100@1, 200@2, 1000@2, 300@3 -> 2, 3, 5, 4. User 20 has 2 events (skipped). User 30: 1, 1, 2.
// Categories: Action=1, Drama=2, none=3; item 20 -> Drama, 100 -> Action, 200 -> none (empty),
// 300 -> Drama, 1000 -> none (absent from the items file).
constexpr char kTinyInter[] =
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "10\t300\t5\t3\n"
    "10\t100\t4\t1\n"
    "20\t100\t1\t5\n"
    "10\t200\t3\t2\n"
    "30\t20\t1\t1\n"
    "10\t1000\t3\t2\n"
    "20\t20\t1\t6\n"
    "30\t100\t1\t3\n"
    "30\t20\t1\t2\n";
constexpr char kTinyItems[] =
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "20\tTwenty\t1990\tDrama Comedy\n"
    "100\tHundred\t1991\tAction\n"
    "200\tTwo Hundred\t1992\t\n"
    "300\tThree Hundred\t1993\tDrama\n"
    "999\tUnused\t1994\tZzz\n";

PrepareOptions TinyOptions(const std::string& dir, int max_history = 50) {
  WriteFile(dir + "/tiny.inter", kTinyInter);
  WriteFile(dir + "/tiny.item", kTinyItems);
  PrepareOptions o;
  o.format = "movielens";
  o.input = dir + "/tiny.inter";
  o.items = dir + "/tiny.item";
  o.out = dir + "/out";
  o.max_history = max_history;
  return o;
}

TEST(PrepareRecipeTest, TinyLogGivesTheExactDinRows) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  EXPECT_EQ(r.users, 3u);
  EXPECT_EQ(r.items, 5u);
  EXPECT_EQ(r.cates, 3u);
  EXPECT_EQ(r.events, 9u);
  EXPECT_EQ(r.train_rows, 6u);
  EXPECT_EQ(r.test_rows, 4u);
  EXPECT_EQ(r.skipped_users, 1u);
  EXPECT_EQ(r.bad_lines, 0u);

  EXPECT_EQ(ReadLines(o.out + "/item_cates.tsv"),
            (std::vector<std::string>{"1\t2", "2\t1", "3\t3", "4\t2", "5\t3"}));
  std::vector<RetrievalSample> seqs = ReadSequences(o.out + "/sequences.tsv");
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0], (RetrievalSample{1, {2, 3, 5, 4}, {1, 3, 3, 2}}));
  EXPECT_EQ(seqs[1], (RetrievalSample{3, {1, 1, 2}, {2, 2, 1}}));

  // User 1's set is {2,3,4,5}: its only possible negative is item 1 (cate 2).
  std::vector<CtrSample> train = ReadCtr(o.out + "/train.tsv");
  std::vector<CtrSample> expected_user1 = {Row(1, 1, 3, 3, {2}, {1}), Row(0, 1, 1, 2, {2}, {1}),
                                           Row(1, 1, 5, 3, {2, 3}, {1, 3}),
                                           Row(0, 1, 1, 2, {2, 3}, {1, 3})};
  std::vector<CtrSample> got_user1, got_user3;
  for (const CtrSample& s : train) (s.user == 1 ? got_user1 : got_user3).push_back(s);
  auto key = [](const CtrSample& s) { return std::make_pair(s.hist_items.size(), s.label); };
  auto by_key = [&](const CtrSample& a, const CtrSample& b) { return key(a) < key(b); };
  std::sort(got_user1.begin(), got_user1.end(), by_key);
  std::sort(expected_user1.begin(), expected_user1.end(), by_key);
  EXPECT_EQ(got_user1, expected_user1);
  ASSERT_EQ(got_user3.size(), 2u);
  std::sort(got_user3.begin(), got_user3.end(), by_key);
  EXPECT_EQ(got_user3[1], Row(1, 3, 1, 2, {1}, {2}));
  EXPECT_EQ(got_user3[0].label, 0.0f);
  EXPECT_FALSE(InSet(seqs[1], got_user3[0].item));
  EXPECT_GE(got_user3[0].item, 1u);
  EXPECT_LE(got_user3[0].item, 5u);

  std::vector<CtrSample> test = ReadCtr(o.out + "/test.tsv");
  ASSERT_EQ(test.size(), 4u);
  EXPECT_EQ(test[0], Row(1, 1, 4, 2, {2, 3, 5}, {1, 3, 3}));
  EXPECT_EQ(test[1], Row(0, 1, 1, 2, {2, 3, 5}, {1, 3, 3}));
  EXPECT_EQ(test[2], Row(1, 3, 2, 1, {1, 1}, {2, 2}));
  EXPECT_FALSE(InSet(seqs[1], test[3].item));

  auto kv = ReadDatasetTxt(o.out);
  EXPECT_EQ(kv["users"], "3");
  EXPECT_EQ(kv["items"], "5");
  EXPECT_EQ(kv["cates"], "3");
  EXPECT_EQ(kv["train_rows"], "6");
  EXPECT_EQ(kv["test_rows"], "4");
  EXPECT_EQ(kv["bad_lines"], "0");
  EXPECT_EQ(kv["format"], "movielens");
  EXPECT_EQ(kv["seed"], "1");
  // No temp files are left behind.
  for (const auto& e : std::filesystem::directory_iterator(o.out)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(PrepareRecipeTest, TruncatesHistoryToMaxHistory) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir, /*max_history=*/2);
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  std::vector<CtrSample> test = ReadCtr(o.out + "/test.tsv");
  ASSERT_EQ(test.size(), 4u);
  EXPECT_EQ(test[0], Row(1, 1, 4, 2, {3, 5}, {3, 3}));
  for (const CtrSample& s : ReadCtr(o.out + "/train.tsv")) EXPECT_LE(s.hist_items.size(), 2u);
}

TEST(PrepareRecipeTest, SameSeedGivesIdenticalFilesAndOtherSeedsShuffleDifferently) {
  std::string dir = FreshDir("d");
  // Enough users that the shuffled order and the negatives depend on the seed.
  std::string inter;
  for (int u = 1; u <= 60; ++u) {
    for (int e = 0; e < 8; ++e) {
      inter += std::to_string(u) + " " + std::to_string((u * 7 + e * 13) % 97 + 1) + " 1 " +
               std::to_string(e) + "\n";
    }
  }
  WriteFile(dir + "/log.txt", inter);
  auto run = [&](uint64_t seed, const std::string& out) {
    PrepareOptions o;
    o.format = "movielens";
    o.input = dir + "/log.txt";
    o.out = out;
    o.seed = seed;
    PrepareReport r;
    EXPECT_TRUE(Prepare(o, &r).ok());
    EXPECT_EQ(r.train_rows, 60u * 2 * 6);
  };
  run(7, dir + "/a");
  run(7, dir + "/b");
  run(8, dir + "/c");
  for (const char* f :
       {"train.tsv", "test.tsv", "sequences.tsv", "item_cates.tsv", "dataset.txt"}) {
    EXPECT_EQ(ReadFile(dir + "/a/" + f), ReadFile(dir + "/b/" + f)) << f;
  }
  EXPECT_NE(ReadFile(dir + "/a/train.tsv"), ReadFile(dir + "/c/train.tsv"));
}

TEST(PrepareBadLinesTest, CountsMalformedLinesAndStopsPastTheFraction) {
  std::string dir = FreshDir("d");
  WriteFile(dir + "/log.inter",
            std::string(kTinyInter) + "10\tabc\t1\t1\n30\t20\n30\t20\t1\tnot_a_time\n");
  PrepareOptions o = TinyOptions(dir);
  o.input = dir + "/log.inter";
  o.max_bad_fraction = 0.5;
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  EXPECT_EQ(r.bad_lines, 3u);
  EXPECT_EQ(r.train_rows, 6u);
  EXPECT_EQ(ReadDatasetTxt(o.out)["bad_lines"], "3");

  o.max_bad_fraction = 0.001;
  o.out = dir + "/out2";
  Status st = Prepare(o, &r);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find(o.input + ":13: 3 of 13 lines"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(o.input + ":11: item \"abc\" is not an unsigned integer"),
            std::string::npos)
      << st.message();
  EXPECT_FALSE(std::filesystem::exists(o.out + "/train.tsv"));
}

// Prepares `good` followed by one line built from `bad_line_of(ts)` for every non-finite or
// out-of-range timestamp: the line is malformed (bad_lines = 1 under a loose limit, its events
// dropped) and, under a zero limit, reported as `file:<bad_line_number>: <reason>`.
void ExpectBadTimestampsAreMalformed(const std::string& format, const std::string& file_name,
                                     const std::string& good, int bad_line_number,
                                     const std::function<std::string(const std::string&)>& line_of,
                                     const std::vector<std::string>& timestamps,
                                     const std::function<std::string(const std::string&)>& reason) {
  std::string dir = FreshDir("d");
  int run = 0;
  for (const std::string& ts : timestamps) {
    SCOPED_TRACE(format + " " + file_name + " timestamp " + ts);
    PrepareOptions o;
    o.format = format;
    o.input = dir + "/" + std::to_string(run) + file_name;
    o.progress = false;
    WriteFile(o.input, good + line_of(ts) + "\n");
    o.out = dir + "/out" + std::to_string(run++);
    o.max_bad_fraction = 0.5;
    PrepareReport r;
    Status st = Prepare(o, &r);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(r.bad_lines, 1u);
    EXPECT_EQ(r.events, 3u);
    EXPECT_EQ(ReadDatasetTxt(o.out)["bad_lines"], "1");

    o.max_bad_fraction = 0;
    o.out += "_strict";
    st = Prepare(o, &r);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
    const std::string where = o.input + ":" + std::to_string(bad_line_number) + ": ";
    EXPECT_NE(st.message().find("first: " + where + reason(ts)), std::string::npos) << st.message();
  }
}

const std::vector<std::string> kNonFiniteTimestamps = {"nan",   "inf", "-inf",
                                                       "1e400", "NaN", "infinity"};

TEST(PrepareBadLinesTest, NonFiniteTimestampsInRatingsDatAreMalformed) {
  std::vector<std::string> bad = kNonFiniteTimestamps;
  bad.push_back("1e9");  // integer seconds: a plain decimal number only
  bad.push_back("0x10");
  ExpectBadTimestampsAreMalformed(
      "movielens", "ratings.dat", "1::10::5::100\n1::20::3::50\n", 3,
      [](const std::string& ts) { return "1::30::4::" + ts + "\n1::40::2::7"; }, bad,
      [](const std::string& ts) {
        return "timestamp \"" + ts + "\" is not a plain decimal number";
      });
}

TEST(PrepareBadLinesTest, NonFiniteTimestampsInAUserItemRatingTimestampLogAreMalformed) {
  // Headerless `user item rating ts` (MovieLens u.data).
  ExpectBadTimestampsAreMalformed(
      "movielens", "u.data", "1\t10\t5\t100\n1\t20\t3\t50\n", 3,
      [](const std::string& ts) { return "1\t30\t4\t" + ts + "\n1\t40\t2\t7"; },
      kNonFiniteTimestamps,
      [](const std::string& ts) {
        return "timestamp \"" + ts + "\" is not a plain decimal number";
      });
}

TEST(PrepareBadLinesTest, NonFiniteTimestampsInAnAtomicInterFileAreMalformed) {
  ExpectBadTimestampsAreMalformed(
      "movielens", "log.inter",
      "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t5\t100\n1\t20\t3\t50\n",
      4, [](const std::string& ts) { return "1\t30\t4\t" + ts + "\n1\t40\t2\t7"; },
      kNonFiniteTimestamps,
      [](const std::string& ts) { return "timestamp \"" + ts + "\" is not a finite number"; });
}

TEST(PrepareBadLinesTest, NonFiniteTimestampsInTaobaoAreMalformed) {
  ExpectBadTimestampsAreMalformed(
      "taobao", "UserBehavior.csv", "1,100,7,pv,30\n1,300,9,pv,20\n", 3,
      [](const std::string& ts) { return "1,500,9,pv," + ts + "\n1,600,9,pv,50"; },
      kNonFiniteTimestamps,
      [](const std::string& ts) {
        return "timestamp \"" + ts + "\" is not a plain decimal number";
      });
}

TEST(PrepareBadLinesTest, NonFiniteTimestampsInAmazonReviewsAreMalformed) {
  auto review = [](const std::string& asin, const std::string& time) {
    return "{\"reviewerID\": \"AX\", \"asin\": \"" + asin + "\", \"unixReviewTime\": " + time + "}";
  };
  const std::string good = review("B01", "100") + "\n" + review("B02", "200") + "\n";
  auto line_of = [&](const std::string& time) {
    return review("B03", time) + "\n" + review("B04", "300");
  };
  // As JSON strings and, for 1e400, as a JSON number.
  ExpectBadTimestampsAreMalformed(
      "amazon", "reviews.json", good, 3, line_of,
      {"\"nan\"", "\"inf\"", "\"-inf\"", "\"1e400\"", "1e400", "1e9"}, [](std::string ts) {
        if (ts[0] == '"') ts = ts.substr(1, ts.size() - 2);
        return "unixReviewTime \"" + ts + "\" is not a plain decimal number";
      });
  // Bare NaN / Infinity (Python's json.dumps) are not JSON: still one malformed line.
  ExpectBadTimestampsAreMalformed("amazon", "reviews.json", good, 3, line_of,
                                  {"NaN", "Infinity", "-Infinity"},
                                  [](const std::string&) { return ""; });
}

TEST(PrepareBadLinesTest, FiniteTimestampsStillParse) {
  std::string dir = FreshDir("d");
  PrepareOptions o;
  o.format = "movielens";
  o.progress = false;
  o.input = dir + "/log.inter";
  // `.inter` declares timestamp:float: fractions and exponents are fine there. (User 2 is too
  // short to keep; item 40 gives user 1 a negative.)
  WriteFile(o.input,
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            "1\t10\t5\t9.7e8\n1\t20\t3\t978300760.5\n1\t30\t4\t-1\n2\t40\t1\t5\n");
  o.out = dir + "/a";
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.bad_lines, 0u);
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"), (std::vector<std::string>{"1\t3,1,2\t1,1,1"}));
  o.input = dir + "/ratings.dat";
  WriteFile(o.input, "1::10::5::978300760\n1::20::3::0\n1::30::4::978300760.25\n2::40::1::5\n");
  o.out = dir + "/b";
  st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.bad_lines, 0u);
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"), (std::vector<std::string>{"1\t2,1,3\t1,1,1"}));
}

TEST(PrepareBadLinesTest, ErrorsEscapeControlBytesAndInvalidUtf8OfTheLine) {
  std::string dir = FreshDir("d");
  PrepareOptions o;
  o.format = "movielens";
  o.progress = false;
  o.input = dir + "/ratings.dat";
  o.out = dir + "/out";
  o.max_bad_fraction = 0;
  WriteFile(o.input, "1::10::5::1\n1::2\r0\x1B[2J\xFF::5::2\n1::30::5::3\n");
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("item \"2\r0\x1B[2J\xFF\""), std::string::npos);  // raw
  const std::string printed = st.ToString();
  EXPECT_NE(printed.find(":2: item \"2\\x0D0\\x1B[2J\\xFF\" is not an unsigned integer"),
            std::string::npos)
      << printed;
  EXPECT_EQ(printed.find('\r'), std::string::npos);
  EXPECT_EQ(printed.find('\x1B'), std::string::npos);
}

TEST(PrepareFormatsTest, MovieLensRatingsDatAndMoviesDat) {
  std::string dir = FreshDir("d");
  WriteFile(dir + "/ratings.dat",
            "1::10::5::100\n1::20::3::50\n1::30::4::200\n2::10::1::1\n2::40::1::1\n");
  WriteFile(dir + "/movies.dat",
            "10::Ten (1990)::Comedy|Drama\n20::Twenty (1991)::Action\n30::Thirty::Comedy\n");
  PrepareOptions o;
  o.format = "movielens";
  o.input = dir + "/ratings.dat";
  o.items = dir + "/movies.dat";
  o.out = dir + "/out";
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  EXPECT_EQ(r.users, 2u);
  EXPECT_EQ(r.cates, 3u);  // Action, Comedy, none (item 40)
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"), (std::vector<std::string>{"1\t2,1,3\t1,2,2"}));
}

TEST(PrepareFormatsTest, SasRecKeepsFileOrder) {
  std::string dir = FreshDir("d");
  WriteFile(dir + "/log.txt", "5 9\n5 3\n6 3\n5 7\n5 3\n6 11\n");
  PrepareOptions o;
  o.format = "sasrec";
  o.input = dir + "/log.txt";
  o.out = dir + "/out";
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  EXPECT_EQ(r.items, 4u);
  EXPECT_EQ(r.cates, 1u);  // none
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"), (std::vector<std::string>{"1\t3,1,2,1\t1,1,1,1"}));
  EXPECT_EQ(r.train_rows, 4u);
  EXPECT_EQ(r.test_rows, 2u);
}

TEST(PrepareFormatsTest, AmazonReviewsWithPythonLiteralMeta) {
  std::string dir = FreshDir("d");
  WriteFile(
      dir + "/reviews.json",
      "{\"reviewerID\": \"AX\", \"asin\": \"B02\", \"reviewText\": \"a \\\"b\\\" c\", "
      "\"helpful\": [0, 1], \"unixReviewTime\": 300}\n"
      "{\"reviewerID\": \"AX\", \"asin\": \"B01\", \"unixReviewTime\": 100, \"overall\": 5.0}\n"
      "{\"reviewerID\": \"AX\", \"asin\": \"B03\", \"unixReviewTime\": 200}\n"
      "{\"reviewerID\": \"AY\", \"asin\": \"B01\", \"unixReviewTime\": 1}\n"
      "{\"reviewerID\": \"AY\", \"asin\": \"B04\", \"unixReviewTime\": 2}\n");
  WriteFile(dir + "/meta.json",
            "{'asin': 'B01', 'title': \"Kid's book\", 'categories': [['Books', 'Fiction'], "
            "['Books', 'Kids']], 'salesRank': {'Books': 5}}\n"
            "{'asin': 'B02', 'categories': [['Books', 'Fiction']], 'related': {'x': ['B01']}}\n"
            "{\"asin\": \"B03\", \"category\": [\"Books\", \"Art\"], \"price\": 3.5}\n");
  PrepareOptions o;
  o.format = "amazon";
  o.input = dir + "/reviews.json";
  o.items = dir + "/meta.json";
  o.out = dir + "/out";
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.bad_lines, 0u);
  EXPECT_EQ(r.users, 2u);
  // Items B01..B04 -> 1..4; categories Art=1, Fiction=2, Kids=3, none=4 (B04 has no meta).
  EXPECT_EQ(ReadLines(o.out + "/item_cates.tsv"),
            (std::vector<std::string>{"1\t3", "2\t2", "3\t1", "4\t4"}));
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"), (std::vector<std::string>{"1\t1,3,2\t3,1,2"}));
}

TEST(PrepareFormatsTest, TaobaoKeepsTheChosenBehaviorsWithInlineCategories) {
  std::string dir = FreshDir("d");
  WriteFile(dir + "/UserBehavior.csv",
            "1,100,7,pv,30\n1,200,8,buy,10\n1,300,9,pv,20\n1,100,7,pv,40\n2,100,7,cart,5\n"
            "1,400,7,fav,50\n3,500,9,pv,1\n");
  PrepareOptions o;
  o.format = "taobao";
  o.input = dir + "/UserBehavior.csv";
  o.out = dir + "/out";
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  EXPECT_EQ(r.events, 4u);
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"), (std::vector<std::string>{"1\t2,1,1\t2,1,1"}));

  o.taobao_behaviors = {"pv", "buy", "fav"};
  o.out = dir + "/out2";
  ASSERT_TRUE(Prepare(o, &r).ok());
  EXPECT_EQ(r.events, 6u);
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"),
            (std::vector<std::string>{"1\t2,3,1,1,4\t2,3,1,1,1"}));
}

TEST(PrepareFlagsTest, ParsesFlagsAndRejectsUnknownOnesListingTheValidFlags) {
  PrepareOptions o;
  bool help = false;
  ASSERT_TRUE(
      ParsePrepareFlags({"prepare", "--format=synthetic", "--out=/x", "--items=500", "--users=7",
                         "--negatives=popularity", "--max_history=20", "--zipf=0.9", "--seed=3"},
                        &o, &help)
          .ok());
  EXPECT_EQ(o.synthetic.items, 500u);
  EXPECT_EQ(o.synthetic.users, 7u);
  EXPECT_TRUE(o.synthetic.popularity_negatives);
  EXPECT_EQ(o.max_history, 20);
  EXPECT_DOUBLE_EQ(o.synthetic.zipf, 0.9);
  EXPECT_EQ(o.seed, 3u);

  PrepareOptions o2;
  ASSERT_TRUE(ParsePrepareFlags(
                  {"--items=meta.json", "--format=amazon", "--taobao_behaviors=pv,buy"}, &o2, &help)
                  .ok());
  EXPECT_EQ(o2.items, "meta.json");
  EXPECT_EQ(o2.taobao_behaviors, (std::vector<std::string>{"pv", "buy"}));

  Status st = ParsePrepareFlags({"--fromat=x"}, &o, &help);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("unknown flag --fromat"), std::string::npos);
  EXPECT_NE(st.message().find("--max_bad_fraction"), std::string::npos);
  EXPECT_FALSE(ParsePrepareFlags({"--max_history=abc"}, &o, &help).ok());
  EXPECT_FALSE(ParsePrepareFlags({"--negatives=zipf"}, &o, &help).ok());
  ASSERT_TRUE(ParsePrepareFlags({"--help"}, &o, &help).ok());
  EXPECT_TRUE(help);
  EXPECT_NE(PrepareUsage().find("--events_per_user"), std::string::npos);
}

TEST(PrepareFlagsTest, MainReturnsNonZeroOnBadFlagsAndMissingInput) {
  EXPECT_EQ(PrepareMain({"--bogus=1"}), 2);
  EXPECT_EQ(PrepareMain({"--format=movielens", "--out=/tmp/x"}), 2);  // no --input
  std::string dir = FreshDir("d");
  EXPECT_EQ(PrepareMain({"--format=sasrec", "--input=" + dir + "/missing", "--out=" + dir}), 1);
  EXPECT_EQ(PrepareMain({"--help"}), 0);
}

TEST(ShuffledWriterTest, OutputIsAPermutationIndependentOfTheMemoryLimit) {
  std::string dir = FreshDir("d");
  auto write = [&](const std::string& path, uint64_t memory) {
    ShuffledWriter w(/*seed=*/5, memory);
    EXPECT_TRUE(w.Open(path).ok());
    for (int i = 0; i < 5000; ++i) EXPECT_TRUE(w.Add(std::to_string(i) + "\n").ok());
    EXPECT_TRUE(w.Commit().ok());
  };
  write(dir + "/mem.txt", 1 << 30);
  write(dir + "/spill.txt", 1000);  // spills to bucket files many times
  std::string a = ReadFile(dir + "/mem.txt");
  EXPECT_EQ(a, ReadFile(dir + "/spill.txt"));
  std::vector<std::string> lines = ReadLines(dir + "/mem.txt");
  ASSERT_EQ(lines.size(), 5000u);
  std::vector<std::string> sorted = lines;
  std::sort(sorted.begin(), sorted.end(),
            [](const std::string& x, const std::string& y) { return std::stoi(x) < std::stoi(y); });
  for (int i = 0; i < 5000; ++i) EXPECT_EQ(sorted[i], std::to_string(i));
  EXPECT_NE(lines, sorted);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 2);  // no bucket files
}

// ---- --users: user profiles as extra CTR fields ----

// The exact output of the tiny log (TinyOptions) before extra fields existed (written by the
// binary of that time): a run without --users must keep giving these bytes.
constexpr char kTinyTrainTsv[] =
    "1\t3\t1\t2\t1\t2\n"
    "0\t1\t1\t2\t2\t1\n"
    "0\t3\t4\t2\t1\t2\n"
    "1\t1\t5\t3\t2,3\t1,3\n"
    "0\t1\t1\t2\t2,3\t1,3\n"
    "1\t1\t3\t3\t2\t1\n";
constexpr char kTinyTestTsv[] =
    "1\t1\t4\t2\t2,3,5\t1,3,3\n"
    "0\t1\t1\t2\t2,3,5\t1,3,3\n"
    "1\t3\t2\t1\t1,1\t2,2\n"
    "0\t3\t5\t3\t1,1\t2,2\n";
constexpr char kTinyDatasetTxt[] =
    "format=movielens\nseed=1\nmax_history=50\nmin_user_events=3\nusers=3\n"
    "users_with_samples=2\nitems=5\ncates=3\nevents=9\ntrain_rows=6\ntest_rows=4\n"
    "lines_read=16\nbad_lines=0\n";

// Profiles for the tiny log's users 10, 20, 30 (dense 1, 2, 3): 10 and 20 are listed, 30 is
// missing; line 4 is malformed; user 99 has no interactions (ignored, its occupation gets no id).
constexpr char kTinyUsers[] =
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "10\t24\tM\ttechnician\t85711\n"
    "20\t17\tF\tstudent\t00000\n"
    "x7\t30\tF\tartist\t1\n"
    "99\t40\tF\tzzz\t1\n";

std::vector<CtrSample> ReadCtrWithExtra(const std::string& path, int extra_columns) {
  std::vector<CtrSample> out;
  for (const std::string& line : ReadLines(path)) {
    CtrSample s;
    Status st = ParseCtrLine(line, extra_columns, &s);
    EXPECT_TRUE(st.ok()) << path << ": " << st.ToString();
    out.push_back(s);
  }
  return out;
}

// `content` with every line cut after its 6th field.
std::string FirstSixFields(const std::string& content) {
  std::string out;
  for (size_t start = 0; start < content.size();) {
    size_t nl = content.find('\n', start);
    std::string line = content.substr(start, nl - start);
    size_t cut = 0;
    for (int k = 0; k < 6 && cut != std::string::npos; ++k) cut = line.find('\t', cut + (k > 0));
    out += line.substr(0, cut) + "\n";
    start = nl + 1;
  }
  return out;
}

TEST(PrepareUsersTest, WithoutUsersTheOutputIsByteForByteTheOldOne) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  EXPECT_EQ(ReadFile(o.out + "/train.tsv"), kTinyTrainTsv);
  EXPECT_EQ(ReadFile(o.out + "/test.tsv"), kTinyTestTsv);
  EXPECT_EQ(ReadFile(o.out + "/dataset.txt"), kTinyDatasetTxt);
  EXPECT_FALSE(std::filesystem::exists(o.out + "/extra_columns.tsv"));
  EXPECT_TRUE(r.extra_columns.empty());
  // The same through the command line.
  ASSERT_EQ(PrepareMain({"prepare", "--format=movielens", "--input=" + o.input,
                         "--items=" + o.items, "--out=" + dir + "/cli"}),
            0);
  EXPECT_EQ(ReadFile(dir + "/cli/train.tsv"), kTinyTrainTsv);
  EXPECT_EQ(ReadFile(dir + "/cli/test.tsv"), kTinyTestTsv);
}

TEST(PrepareUsersTest, AddsAgeBucketGenderAndOccupationToEveryCtrLine) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  o.users = dir + "/tiny.user";
  o.max_bad_fraction = 0.5;  // line 4 is malformed
  WriteFile(o.users, kTinyUsers);
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.users_without_profile, 1u);  // user 30
  EXPECT_EQ(r.bad_lines, 1u);
  EXPECT_EQ(r.lines_read, 16u + 5);
  EXPECT_EQ(r.extra_columns, (std::vector<std::string>{"age_bucket", "gender", "occupation"}));
  EXPECT_EQ(r.extra_column_ids, (std::vector<uint64_t>{7, 2, 2}));

  // User 1 (raw 10): 24 -> bucket 2 (18-24), M -> 2 (F=1, M=2), technician -> 2 (student=1).
  // User 3 (raw 30) has no profile: 0, 0, 0. Every line has the three fields.
  const std::vector<std::vector<uint64_t>> user1 = {{2}, {2}, {2}}, user3 = {{0}, {0}, {0}};
  std::vector<CtrSample> train = ReadCtrWithExtra(o.out + "/train.tsv", 3);
  std::vector<CtrSample> test = ReadCtrWithExtra(o.out + "/test.tsv", 3);
  ASSERT_EQ(train.size(), 6u);
  ASSERT_EQ(test.size(), 4u);
  for (const std::vector<CtrSample>* rows : {&train, &test}) {
    for (const CtrSample& s : *rows) {
      ASSERT_TRUE(s.user == 1 || s.user == 3) << s.user;
      EXPECT_EQ(s.extra, s.user == 1 ? user1 : user3) << "user " << s.user;
    }
  }
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[0], "1\t1\t4\t2\t2,3,5\t1,3,3\t2\t2\t2");
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[2], "1\t3\t2\t1\t1,1\t2,2\t0\t0\t0");

  auto kv = ReadDatasetTxt(o.out);
  EXPECT_EQ(kv["extra_columns"], "age_bucket,gender,occupation");
  EXPECT_EQ(kv["age_bucket_ids"], "7");
  EXPECT_EQ(kv["gender_ids"], "2");
  EXPECT_EQ(kv["occupation_ids"], "2");
  EXPECT_EQ(kv["users_without_profile"], "1");
  EXPECT_EQ(kv["bad_lines"], "1");
  EXPECT_EQ(kv["users"], "3");
  EXPECT_EQ(ReadLines(o.out + "/extra_columns.tsv"),
            (std::vector<std::string>{"age_bucket\t1\t<18", "age_bucket\t2\t18-24",
                                      "age_bucket\t3\t25-34", "age_bucket\t4\t35-44",
                                      "age_bucket\t5\t45-49", "age_bucket\t6\t50-55",
                                      "age_bucket\t7\t56+", "gender\t1\tF", "gender\t2\tM",
                                      "occupation\t1\tstudent", "occupation\t2\ttechnician"}));
  EXPECT_EQ(ReadLines(o.out + "/sequences.tsv"),
            (std::vector<std::string>{"1\t2,3,5,4\t1,3,3,2", "3\t1,1,2\t2,2,1"}));
}

TEST(PrepareUsersTest, TheExtraFieldsChangeNothingElse) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  o.max_bad_fraction = 0.5;
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  PrepareOptions with = o;
  with.users = dir + "/tiny.user";
  with.out = dir + "/with";
  WriteFile(with.users, kTinyUsers);
  ASSERT_TRUE(Prepare(with, &r).ok());
  // Same order, same negatives: only the appended fields differ.
  for (const char* f : {"train.tsv", "test.tsv"}) {
    const std::string plain = ReadFile(o.out + "/" + f), extra = ReadFile(with.out + "/" + f);
    EXPECT_NE(plain, extra) << f;
    EXPECT_EQ(FirstSixFields(extra), plain) << f;
  }
  EXPECT_EQ(ReadFile(o.out + "/sequences.tsv"), ReadFile(with.out + "/sequences.tsv"));
  EXPECT_EQ(ReadFile(o.out + "/item_cates.tsv"), ReadFile(with.out + "/item_cates.tsv"));
}

// --activity_buckets: the user's events before each sample, bucketed, as the last extra field
// (after the profile fields when there are some); nothing else changes.
TEST(PrepareActivityTest, AppendsTheActivityBucketOfEveryCtrLine) {
  EXPECT_EQ(ActivityBucket(1, 8), 1u);
  EXPECT_EQ(ActivityBucket(3, 8), 2u);
  EXPECT_EQ(ActivityBucket(4, 8), 3u);
  EXPECT_EQ(ActivityBucket(1000, 8), 8u);
  EXPECT_EQ(ActivityBucketRange(2, 3), "2-3");
  EXPECT_EQ(ActivityBucketRange(3, 3), "4+");
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  o.max_bad_fraction = 0.5;
  PrepareReport r;
  ASSERT_TRUE(Prepare(o, &r).ok());
  PrepareOptions with = o;
  with.users = dir + "/tiny.user";
  with.activity_buckets = 2;
  with.out = dir + "/with";
  WriteFile(with.users, kTinyUsers);
  ASSERT_TRUE(Prepare(with, &r).ok());
  EXPECT_EQ(r.extra_columns,
            (std::vector<std::string>{"age_bucket", "gender", "occupation", "activity"}));
  EXPECT_EQ(r.extra_column_ids.back(), 2u);
  for (const char* f : {"train.tsv", "test.tsv"}) {
    EXPECT_EQ(FirstSixFields(ReadFile(with.out + "/" + f)), ReadFile(o.out + "/" + f)) << f;
  }
  // User 1 has 4 events: its test line has 3 before it (bucket 2 of 2), its first train line 1.
  EXPECT_EQ(ReadLines(with.out + "/test.tsv")[0], "1\t1\t4\t2\t2,3,5\t1,3,3\t2\t2\t2\t2");
  for (const CtrSample& s : ReadCtrWithExtra(with.out + "/train.tsv", 4)) {
    EXPECT_EQ(s.extra[3], (std::vector<uint64_t>{s.hist_items.size() == 1 ? 1u : 2u}));
  }
  auto kv = ReadDatasetTxt(with.out);
  EXPECT_EQ(kv["extra_columns"], "age_bucket,gender,occupation,activity");
  EXPECT_EQ(kv["activity_ids"], "2");
  const std::vector<std::string> ids = ReadLines(with.out + "/extra_columns.tsv");
  EXPECT_EQ(ids.back(), "activity\t2\t2+ events before");
  // Without --users only the activity field is added, and dataset.txt has no profile count.
  with.users.clear();
  with.out = dir + "/alone";
  ASSERT_TRUE(Prepare(with, &r).ok());
  EXPECT_EQ(ReadLines(with.out + "/test.tsv")[0], "1\t1\t4\t2\t2,3,5\t1,3,3\t2");
  EXPECT_EQ(ReadDatasetTxt(with.out).count("users_without_profile"), 0u);
}

TEST(PrepareUsersTest, ABadUsersLineIsReportedWithFileAndLine) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  o.users = dir + "/tiny.user";
  o.progress = false;
  WriteFile(o.users, kTinyUsers);
  PrepareReport r;
  Status st = Prepare(o, &r);  // default max_bad_fraction 0.001: 1 bad line of 5 is too many
  ASSERT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find(o.users + ":5: 1 of 5 lines read are malformed"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("first: " + o.users + ":4: user \"x7\" is not an unsigned integer"),
            std::string::npos)
      << st.message();
  EXPECT_FALSE(std::filesystem::exists(o.out + "/train.tsv"));

  // Other malformed lines: a non-numeric age, too few columns, a user listed twice.
  const std::string header =
      "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"10\tabc\tM\tx\t1\n", ":2: age \"abc\" is not an unsigned integer"},
      {"10\t24\tM\n", ":2: expected user, age, gender, occupation columns, got 3 fields"},
      {"10\t24\tM\tx\t1\n30\t1\tF\ty\t2\n10\t25\tM\tx\t1\n",
       ":4: user \"10\" is listed again (first at line 2)"},
  };
  for (const auto& [lines, reason] : cases) {
    SCOPED_TRACE(lines);
    WriteFile(o.users, header + lines);
    o.max_bad_fraction = 0;
    st = Prepare(o, &r);
    ASSERT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
    EXPECT_NE(st.message().find("first: " + o.users + reason), std::string::npos) << st.message();
  }
}

TEST(PrepareUsersTest, AHeaderWithoutTheProfileColumnsMakesEveryLineBad) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  o.users = dir + "/tiny.user";
  o.progress = false;
  WriteFile(o.users, "user_id:token\tage:token\tgender:token\n10\t24\tM\n30\t40\tF\n");
  o.max_bad_fraction = 0.5;
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
  EXPECT_NE(
      st.message().find("first: " + o.users +
                        ":1: atomic header without user_id, age, gender and occupation columns"),
      std::string::npos)
      << st.message();
}

TEST(PrepareUsersTest, EmptyValuesAreUnknownAndClassicLayoutsAreRead) {
  std::string dir = FreshDir("d");
  PrepareOptions o = TinyOptions(dir);
  o.progress = false;
  // Atomic file with empty values: 0 for that field only.
  o.users = dir + "/empty.user";
  WriteFile(o.users,
            "user_id:token\tage:token\tgender:token\toccupation:token\n"
            "10\t\tM\t\n30\t56\t\twriter|poet\n");  // '|' is no separator here
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.bad_lines, 0u);
  EXPECT_EQ(r.users_without_profile, 1u);  // user 20
  EXPECT_EQ(r.extra_column_ids, (std::vector<uint64_t>{7, 1, 1}));
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[0], "1\t1\t4\t2\t2,3,5\t1,3,3\t0\t1\t0");
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[2], "1\t3\t2\t1\t1,1\t2,2\t7\t0\t1");
  EXPECT_EQ(ReadLines(o.out + "/extra_columns.tsv").back(), "occupation\t1\twriter|poet");

  // MovieLens-1M users.dat: user::gender::age::occupation::zip (age codes 1, 18, 25, ...;
  // numeric occupation codes get ids in numeric order: 2 -> 1, 10 -> 2).
  o.users = dir + "/users.dat";
  o.out = dir + "/dat";
  WriteFile(o.users, "10::F::1::10::48067\n30::M::25::2::55455\n");
  st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[0], "1\t1\t4\t2\t2,3,5\t1,3,3\t1\t1\t2");
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[2], "1\t3\t2\t1\t1,1\t2,2\t3\t2\t1");

  // MovieLens-100K u.user: user|age|gender|occupation|zip.
  o.users = dir + "/u.user";
  o.out = dir + "/uuser";
  WriteFile(o.users, "10|45|M|technician|85711\n30|50|F|other|94043\n");
  st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[0], "1\t1\t4\t2\t2,3,5\t1,3,3\t5\t2\t2");
  EXPECT_EQ(ReadLines(o.out + "/test.tsv")[2], "1\t3\t2\t1\t1,1\t2,2\t6\t1\t1");
}

TEST(PrepareUsersTest, ProfilesFollowTheDenseUserIdsOfTheUserField) {
  // Raw user 200 comes first in the log but is dense user 2 (numeric order: 3 < 200); the users
  // file lists them in yet another order.
  std::string dir = FreshDir("d");
  PrepareOptions o;
  o.format = "movielens";
  o.progress = false;
  o.input = dir + "/log.txt";
  o.users = dir + "/u.user";
  o.out = dir + "/out";
  WriteFile(o.input, "200 1 1 1\n200 2 1 2\n200 3 1 3\n3 4 1 1\n3 5 1 2\n3 6 1 3\n");
  WriteFile(o.users, "200|60|M|writer|1\n3|30|F|artist|2\n");
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.users_without_profile, 0u);
  const std::vector<std::vector<uint64_t>> raw3 = {{3}, {1}, {1}}, raw200 = {{7}, {2}, {2}};
  std::vector<CtrSample> rows = ReadCtrWithExtra(o.out + "/train.tsv", 3);
  for (const CtrSample& s : ReadCtrWithExtra(o.out + "/test.tsv", 3)) rows.push_back(s);
  ASSERT_EQ(rows.size(), 8u);
  for (const CtrSample& s : rows) {
    ASSERT_TRUE(s.user == 1 || s.user == 2) << s.user;
    EXPECT_EQ(s.extra, s.user == 1 ? raw3 : raw200) << "user " << s.user;
    // Positives are the user's own items: raw user 3 (dense 1) has items 4..6.
    if (s.label == 1) {
      EXPECT_EQ(s.user == 1, s.item >= 4) << s.item;
    }
  }
}

TEST(PrepareUsersTest, AgeBucketsAreMovieLens1MGroups) {
  const std::vector<std::pair<uint64_t, uint64_t>> cases = {
      {0, 1},  {1, 1},  {17, 1}, {18, 2}, {24, 2}, {25, 3}, {34, 3},  {35, 4},
      {44, 4}, {45, 5}, {49, 5}, {50, 6}, {55, 6}, {56, 7}, {120, 7},
  };
  for (auto [age, bucket] : cases) EXPECT_EQ(AgeBucket(age), bucket) << "age " << age;
}

TEST(PrepareUsersTest, UsersFileIsMovieLensOnly) {
  std::string dir = FreshDir("d");
  WriteFile(dir + "/log.txt", "5 9\n5 3\n6 3\n5 7\n");
  WriteFile(dir + "/u.user", "5|20|M|x|1\n");
  PrepareOptions o;
  o.format = "sasrec";
  o.input = dir + "/log.txt";
  o.users = dir + "/u.user";
  o.out = dir + "/out";
  PrepareReport r;
  Status st = Prepare(o, &r);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("--users=FILE (user profiles) is only supported with "
                              "--format=movielens"),
            std::string::npos)
      << st.message();
  EXPECT_EQ(PrepareMain(
                {"--format=sasrec", "--input=" + o.input, "--users=" + o.users, "--out=" + o.out}),
            2);

  // --users is a path for movielens (whatever the flag order) and a count for synthetic.
  PrepareOptions parsed;
  bool help = false;
  ASSERT_TRUE(ParsePrepareFlags({"--users=ml.user", "--format=movielens"}, &parsed, &help).ok());
  EXPECT_EQ(parsed.users, "ml.user");
  EXPECT_EQ(parsed.synthetic.users, SyntheticOptions().users);
  PrepareOptions syn;
  ASSERT_TRUE(ParsePrepareFlags({"--format=synthetic", "--users=12"}, &syn, &help).ok());
  EXPECT_TRUE(syn.users.empty());
  EXPECT_EQ(syn.synthetic.users, 12u);
  EXPECT_FALSE(ParsePrepareFlags({"--format=synthetic", "--users=ml.user"}, &syn, &help).ok());
}

TEST(PrepareMovieLensTest, Ml100kGivesTheReferenceRowCounts) {
  // $ATTNPS_ML100K_DIR overrides the shared location.
  const char* env = std::getenv("ATTNPS_ML100K_DIR");
  const std::string data = env != nullptr ? env : "/work/shared/data/ml-100k";
  if (!std::filesystem::exists(data + "/ml-100k.inter")) {
    GTEST_SKIP() << data << " is absent; the ml-100k count check needs MovieLens-100K there";
  }
  std::string dir = FreshDir("d");
  PrepareOptions o;
  o.format = "movielens";
  o.input = data + "/ml-100k.inter";
  o.items = data + "/ml-100k.item";
  o.out = dir;
  o.progress = false;
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.train_rows, 196228u);
  EXPECT_EQ(r.test_rows, 1886u);
  EXPECT_EQ(r.users, 943u);
  EXPECT_EQ(r.items, 1682u);
  EXPECT_EQ(r.bad_lines, 0u);
  EXPECT_EQ(r.events, 100000u);
  EXPECT_EQ(ReadLines(dir + "/item_cates.tsv").size(), 1682u);
}

TEST(PrepareMovieLensTest, Ml100kUserProfilesCoverEveryUser) {
  const char* env = std::getenv("ATTNPS_ML100K_DIR");
  const std::string data = env != nullptr ? env : "/work/shared/data/ml-100k";
  if (!std::filesystem::exists(data + "/ml-100k.user")) {
    GTEST_SKIP() << data << " is absent; the ml-100k profile check needs MovieLens-100K there";
  }
  std::string dir = FreshDir("d");
  PrepareOptions o;
  o.format = "movielens";
  o.input = data + "/ml-100k.inter";
  o.items = data + "/ml-100k.item";
  o.users = data + "/ml-100k.user";
  o.out = dir;
  o.progress = false;
  PrepareReport r;
  Status st = Prepare(o, &r);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(r.train_rows, 196228u);
  EXPECT_EQ(r.bad_lines, 0u);
  EXPECT_EQ(r.users_without_profile, 0u);
  EXPECT_EQ(r.extra_column_ids, (std::vector<uint64_t>{7, 2, 21}));
  // User 1 is 24, M, technician (occupation 20 of 21 in name order).
  std::vector<std::string> ids = ReadLines(dir + "/extra_columns.tsv");
  EXPECT_NE(std::find(ids.begin(), ids.end(), "occupation\t20\ttechnician"), ids.end());
  size_t user1 = 0;
  for (const CtrSample& s : ReadCtrWithExtra(dir + "/test.tsv", 3)) {
    for (const auto& e : s.extra) ASSERT_EQ(e.size(), 1u);
    if (s.user == 1) {
      ++user1;
      EXPECT_EQ(s.extra, (std::vector<std::vector<uint64_t>>{{2}, {2}, {20}}));
    }
  }
  EXPECT_EQ(user1, 2u);
}

}  // namespace
}  // namespace attnps::data
