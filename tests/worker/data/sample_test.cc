#include "worker/data/sample.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "tests/worker/data/test_util.h"

namespace attnps::data {
namespace {

using testing_util::FreshDir;
using testing_util::WriteFile;

CtrSample MakeSample(float label, uint64_t user, uint64_t item, std::vector<uint64_t> hist) {
  CtrSample s;
  s.label = label;
  s.user = user;
  s.item = item;
  s.cate = item % 7 + 1;
  s.hist_items = hist;
  for (uint64_t h : hist) s.hist_cates.push_back(h % 7 + 1);
  return s;
}

std::string ErrorOf(std::string_view line) {
  CtrSample s;
  Status st = ParseCtrLine(line, &s);
  EXPECT_FALSE(st.ok()) << line;
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  return st.message();
}

TEST(CtrLineTest, FormatsTheDocumentedLayout) {
  std::string line;
  AppendCtrLine(MakeSample(1, 5, 12, {3, 4}), &line);
  EXPECT_EQ(line, "1\t5\t12\t6\t3,4\t4,5\n");
  line.clear();
  AppendCtrLine(MakeSample(0, 5, 12, {}), &line);
  EXPECT_EQ(line, "0\t5\t12\t6\t\t\n");
}

TEST(CtrLineTest, RoundTripsThroughParse) {
  for (const CtrSample& s :
       {MakeSample(1, 1, 2, {}), MakeSample(0, 18446744073709551615ull, 9, {1, 2, 3, 4, 5}),
        MakeSample(0.25f, 7, 0, {0, 100000000000ull})}) {
    std::string line;
    AppendCtrLine(s, &line);
    ASSERT_EQ(line.back(), '\n');
    line.pop_back();
    CtrSample parsed;
    ASSERT_TRUE(ParseCtrLine(line, &parsed).ok()) << line;
    EXPECT_EQ(parsed, s) << line;
  }
}

TEST(CtrLineTest, RejectsNonNumericHistoryNamingTheField) {
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t12,x\t4,5"),
            "field 5 (hist_items): \"12,x\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t12,3\t4,-5"),
            "field 6 (hist_cates): \"4,-5\" is not an unsigned integer");
}

TEST(CtrLineTest, RejectsEveryMalformedFieldNamingIt) {
  EXPECT_EQ(ErrorOf("x\t5\t12\t6\t\t"), "field 1 (label): \"x\" is not a number in [0, 1]");
  EXPECT_EQ(ErrorOf("2\t5\t12\t6\t\t"), "field 1 (label): \"2\" is not a number in [0, 1]");
  EXPECT_EQ(ErrorOf("1\tu5\t12\t6\t\t"), "field 2 (user): \"u5\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t\t6\t\t"), "field 3 (target_item): \"\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6.5\t\t"),
            "field 4 (target_cate): \"6.5\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t99999999999999999999\t\t"),
            "field 4 (target_cate): \"99999999999999999999\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t1,\t1,"),
            "field 5 (hist_items): \"1,\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t1,,2\t1,1,2"),
            "field 5 (hist_items): \"1,,2\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t1, 2\t1,2"),
            "field 5 (hist_items): \"1, 2\" is not an unsigned integer");
}

TEST(CtrLineTest, RejectsWrongFieldCountAndUnequalHistories) {
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t1"), "expected 6 tab-separated fields, got 5");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t1\t1\t9"), "expected 6 tab-separated fields, got 7");
  EXPECT_EQ(ErrorOf(""), "expected 6 tab-separated fields, got 1");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t1,2,3\t4,5"), "hist_items has 3 ids but hist_cates has 2");
}

std::string ErrorOf(std::string_view line, int extra_columns) {
  CtrSample s;
  Status st = ParseCtrLine(line, extra_columns, &s);
  EXPECT_FALSE(st.ok()) << line;
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  return st.message();
}

TEST(CtrLineExtraTest, AppendsExtraFieldsAfterTheSixAndRoundTrips) {
  CtrSample s = MakeSample(1, 5, 12, {3, 4});
  s.extra = {{3}, {}, {1, 2, 18446744073709551615ull}, {0}};
  std::string line;
  AppendCtrLine(s, &line);
  EXPECT_EQ(line, "1\t5\t12\t6\t3,4\t4,5\t3\t\t1,2,18446744073709551615\t0\n");
  line.pop_back();
  CtrSample parsed;
  Status st = ParseCtrLine(line, 4, &parsed);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(parsed, s);
  // The extras take part in ==.
  parsed.extra[1] = {7};
  EXPECT_FALSE(parsed == s);
}

TEST(CtrLineExtraTest, ZeroExtraColumnsIsTheSixFieldFormatAndClearsStaleExtras) {
  CtrSample s;
  s.extra = {{1}, {2}};  // from an earlier line
  ASSERT_TRUE(ParseCtrLine("1\t5\t12\t6\t3\t4", 0, &s).ok());
  EXPECT_TRUE(s.extra.empty());
  s.extra = {{1}};
  ASSERT_TRUE(ParseCtrLine("1\t5\t12\t6\t3\t4", &s).ok());
  EXPECT_TRUE(s.extra.empty());
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4\t9", 0), "expected 6 tab-separated fields, got 7");
}

TEST(CtrLineExtraTest, RejectsAFieldCountOtherThanSixPlusExtraColumns) {
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4", 3), "expected 9 tab-separated fields, got 6");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4\t1\t2", 3), "expected 9 tab-separated fields, got 8");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4\t1\t2\t3\t4", 3), "expected 9 tab-separated fields, got 10");
  // The 6-field parser refuses a line with extras.
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4\t1\t2\t3"), "expected 6 tab-separated fields, got 9");
}

TEST(CtrLineExtraTest, RejectsABadExtraIdNamingTheField) {
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4\tx\t2\t3", 3),
            "field 7 (extra 1): \"x\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4\t1\t2\t1,,2", 3),
            "field 9 (extra 3): \"1,,2\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4\t1\t-2\t3", 3),
            "field 8 (extra 2): \"-2\" is not an unsigned integer");
  // The first six fields are checked as before.
  EXPECT_EQ(ErrorOf("1\t5\tx\t6\t3\t4\t1\t2\t3", 3),
            "field 3 (target_item): \"x\" is not an unsigned integer");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3,4\t4\t1\t2\t3", 3),
            "hist_items has 2 ids but hist_cates has 1");
}

TEST(CtrLineExtraTest, AcceptsUpToTheMaximumExtraColumnsAndRejectsMore) {
  std::string line = "1\t5\t12\t6\t3\t4";
  for (int k = 0; k < kMaxCtrExtraColumns; ++k) line += "\t" + std::to_string(k);
  CtrSample s;
  Status st = ParseCtrLine(line, kMaxCtrExtraColumns, &s);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(s.extra.size(), static_cast<size_t>(kMaxCtrExtraColumns));
  EXPECT_EQ(s.extra.back(), (std::vector<uint64_t>{kMaxCtrExtraColumns - 1}));
  EXPECT_EQ(ErrorOf(line + "\t1", kMaxCtrExtraColumns + 1), "extra_columns 65 is not in [0, 64]");
  EXPECT_EQ(ErrorOf("1\t5\t12\t6\t3\t4", -1), "extra_columns -1 is not in [0, 64]");
}

TEST(RetrievalLineTest, RoundTripsAndRejectsMalformedFields) {
  RetrievalSample s{42, {3, 1, 2}, {1, 1, 2}};
  std::string line;
  AppendRetrievalLine(s, &line);
  EXPECT_EQ(line, "42\t3,1,2\t1,1,2\n");
  line.pop_back();
  RetrievalSample parsed;
  ASSERT_TRUE(ParseRetrievalLine(line, &parsed).ok());
  EXPECT_EQ(parsed, s);
  EXPECT_EQ(ParseRetrievalLine("x\t1\t1", &parsed).message(),
            "field 1 (user): \"x\" is not an unsigned integer");
  EXPECT_EQ(ParseRetrievalLine("1\t1,a\t1,1", &parsed).message(),
            "field 2 (items): \"1,a\" is not an unsigned integer");
  EXPECT_EQ(ParseRetrievalLine("1\t1,2\t1;1", &parsed).message(),
            "field 3 (cates): \"1;1\" is not an unsigned integer");
  EXPECT_EQ(ParseRetrievalLine("1\t1,2\t1", &parsed).message(), "items has 2 ids but cates has 1");
  EXPECT_EQ(ParseRetrievalLine("1\t1,2", &parsed).message(),
            "expected 3 tab-separated fields, got 2");
}

// A CTR file whose sample i has user i + 1 (so samples identify their line).
std::string WriteCtrFile(const std::string& dir, int n, int history = 3) {
  std::string content;
  for (int i = 0; i < n; ++i) {
    std::vector<uint64_t> hist;
    for (int h = 0; h < history; ++h) hist.push_back(i + h + 1);
    AppendCtrLine(MakeSample(i % 2, i + 1, i + 2, hist), &content);
  }
  std::string path = dir + "/ctr.tsv";
  WriteFile(path, content);
  return path;
}

std::vector<uint64_t> ReadUsers(const std::string& path, const CtrReaderOptions& options) {
  CtrFileReader reader;
  EXPECT_TRUE(reader.Open(path, options).ok());
  std::vector<uint64_t> users;
  CtrSample s;
  bool eof = false;
  while (true) {
    Status st = reader.Next(&s, &eof);
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (eof || !st.ok()) break;
    users.push_back(s.user);
  }
  return users;
}

TEST(CtrFileReaderTest, ReadsEverySampleInOrder) {
  std::string path = WriteCtrFile(FreshDir("d"), 50);
  std::vector<uint64_t> users = ReadUsers(path, {});
  ASSERT_EQ(users.size(), 50u);
  for (size_t i = 0; i < users.size(); ++i) EXPECT_EQ(users[i], i + 1);
}

TEST(CtrFileReaderTest, WorkersReadDisjointLinesCoveringTheFile) {
  std::string path = WriteCtrFile(FreshDir("d"), 100);
  for (int workers : {2, 3}) {
    std::set<uint64_t> seen;
    size_t total = 0;
    for (int w = 0; w < workers; ++w) {
      CtrReaderOptions options;
      options.worker_index = w;
      options.num_workers = workers;
      for (uint64_t u : ReadUsers(path, options)) {
        EXPECT_EQ((u - 1) % workers, static_cast<uint64_t>(w));
        seen.insert(u);
        ++total;
      }
    }
    EXPECT_EQ(total, 100u) << workers << " workers";
    EXPECT_EQ(seen.size(), 100u) << workers << " workers";
  }
}

TEST(CtrFileReaderTest, RejectsBadWorkerOptions) {
  std::string path = WriteCtrFile(FreshDir("d"), 3);
  CtrFileReader reader;
  CtrReaderOptions options;
  options.worker_index = 2;
  options.num_workers = 2;
  EXPECT_EQ(reader.Open(path, options).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(reader.Open(path + ".missing", {}).code(), Status::Code::kNotFound);
}

TEST(CtrFileReaderTest, TruncatesHistoryToTheLastMaxHistoryItems) {
  std::string path = WriteCtrFile(FreshDir("d"), 2, /*history=*/5);
  CtrFileReader reader;
  CtrReaderOptions options;
  options.max_history = 2;
  ASSERT_TRUE(reader.Open(path, options).ok());
  CtrSample s;
  bool eof;
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  EXPECT_EQ(s.hist_items, (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(s.hist_cates, (std::vector<uint64_t>{5, 6}));
}

TEST(CtrFileReaderTest, ReadsExtraColumnsWhenToldHowMany) {
  std::string dir = FreshDir("d");
  std::string content;
  for (uint64_t i = 0; i < 5; ++i) {
    CtrSample s = MakeSample(i % 2, i + 1, 3, {1, 2, 3});
    s.extra = {{i}, {i, i + 1}};
    AppendCtrLine(s, &content);
  }
  WriteFile(dir + "/extra.tsv", content);
  CtrReaderOptions options;
  options.extra_columns = 2;
  options.max_history = 1;  // applies to the history only
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(dir + "/extra.tsv", options).ok());
  CtrSample s;
  bool eof = false;
  for (uint64_t i = 0; i < 5; ++i) {
    Status st = reader.Next(&s, &eof);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_FALSE(eof);
    EXPECT_EQ(s.user, i + 1);
    EXPECT_EQ(s.hist_items, (std::vector<uint64_t>{3}));
    EXPECT_EQ(s.extra, (std::vector<std::vector<uint64_t>>{{i}, {i, i + 1}}));
  }
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  EXPECT_TRUE(eof);
  EXPECT_EQ(reader.bad_lines(), 0u);

  // Read as plain 6-field lines, every line is malformed.
  CtrFileReader plain;
  options.extra_columns = 0;
  options.max_bad_fraction = 1;
  ASSERT_TRUE(plain.Open(dir + "/extra.tsv", options).ok());
  ASSERT_TRUE(plain.Next(&s, &eof).ok());
  EXPECT_TRUE(eof);
  EXPECT_EQ(plain.bad_lines(), 5u);
}

TEST(CtrFileReaderTest, RejectsExtraColumnsOutOfRange) {
  std::string path = WriteCtrFile(FreshDir("d"), 3);
  CtrFileReader reader;
  for (int bad : {-1, kMaxCtrExtraColumns + 1}) {
    CtrReaderOptions options;
    options.extra_columns = bad;
    Status st = reader.Open(path, options);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("extra_columns"), std::string::npos) << st.message();
  }
  CtrReaderOptions options;
  options.extra_columns = kMaxCtrExtraColumns;
  EXPECT_TRUE(reader.Open(path, options).ok());
}

TEST(CtrFileReaderTest, SeekToASavedPositionResumesWithTheSameSamples) {
  std::string path = WriteCtrFile(FreshDir("d"), 40);
  CtrReaderOptions options;
  options.worker_index = 1;
  options.num_workers = 3;
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(path, options).ok());
  CtrSample s;
  bool eof;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(reader.Next(&s, &eof).ok());
  CtrFileReader::Position saved = reader.position();
  std::vector<CtrSample> rest;
  while (reader.Next(&s, &eof).ok() && !eof) rest.push_back(s);
  ASSERT_FALSE(rest.empty());

  CtrFileReader resumed;
  ASSERT_TRUE(resumed.Open(path, options).ok());
  ASSERT_TRUE(resumed.Seek(saved).ok());
  std::vector<CtrSample> again;
  while (resumed.Next(&s, &eof).ok() && !eof) again.push_back(s);
  EXPECT_EQ(again, rest);
  // Seeking back in the same reader works too.
  ASSERT_TRUE(reader.Seek(saved).ok());
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  EXPECT_EQ(s, rest[0]);
}

TEST(CtrFileReaderTest, ReadsALastLineWithoutNewlineAndCrLf) {
  std::string dir = FreshDir("d");
  WriteFile(dir + "/f.tsv", "1\t1\t2\t3\t\t\r\n0\t2\t3\t4\t5\t6");
  CtrReaderOptions options;
  std::vector<uint64_t> users = ReadUsers(dir + "/f.tsv", options);
  EXPECT_EQ(users, (std::vector<uint64_t>{1, 2}));
}

TEST(CtrFileReaderTest, ReadsLinesLongerThanTheReadChunk) {
  std::string dir = FreshDir("d");
  std::vector<uint64_t> hist(400000);
  for (size_t i = 0; i < hist.size(); ++i) hist[i] = 1000000 + i;
  std::string content;
  AppendCtrLine(MakeSample(1, 1, 2, {}), &content);
  AppendCtrLine(MakeSample(1, 2, 2, hist), &content);  // about 6 MB
  AppendCtrLine(MakeSample(0, 3, 2, {}), &content);
  WriteFile(dir + "/long.tsv", content);
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(dir + "/long.tsv", {}).ok());
  CtrSample s;
  bool eof;
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  EXPECT_EQ(s.hist_items, hist);
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  EXPECT_EQ(s.user, 3u);
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  EXPECT_TRUE(eof);
}

// 2000 lines of which `bad` are malformed (spread out).
std::string WriteFileWithBadLines(const std::string& dir, int bad) {
  std::string content;
  for (int i = 0; i < 2000; ++i) {
    if (i % 200 == 7 && bad-- > 0) {
      content += "1\t2\tx\t3\t\t\n";
    } else {
      AppendCtrLine(MakeSample(1, i + 1, 3, {1}), &content);
    }
  }
  WriteFile(dir + "/bad.tsv", content);
  return dir + "/bad.tsv";
}

TEST(CtrFileReaderTest, SkipsAndCountsMalformedLinesBelowTheLimit) {
  std::string path = WriteFileWithBadLines(FreshDir("d"), 3);
  CtrReaderOptions options;
  options.max_bad_fraction = 0.01;
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(path, options).ok());
  CtrSample s;
  bool eof = false;
  int n = 0;
  while (true) {
    Status st = reader.Next(&s, &eof);
    ASSERT_TRUE(st.ok()) << st.ToString();
    if (eof) break;
    ++n;
  }
  EXPECT_EQ(n, 1997);
  EXPECT_EQ(reader.bad_lines(), 3u);
  EXPECT_EQ(reader.lines_considered(), 2000u);
}

TEST(CtrFileReaderTest, StopsPastMaxBadFractionNamingFileLineAndCounts) {
  std::string path = WriteFileWithBadLines(FreshDir("d"), 5);
  CtrReaderOptions options;
  options.max_bad_fraction = 0.001;
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(path, options).ok());
  CtrSample s;
  bool eof = false;
  Status st;
  int n = 0;
  while ((st = reader.Next(&s, &eof)).ok() && !eof) ++n;
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  // The check starts at 1000 lines: 5 bad lines in the first 1000 exceed 0.1%.
  EXPECT_EQ(n, 995);
  EXPECT_NE(st.message().find(path + ":1000: 5 of 1000 lines"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(path + ":8: field 3 (target_item)"), std::string::npos)
      << st.message();
  // The error is sticky.
  EXPECT_FALSE(reader.Next(&s, &eof).ok());
}

TEST(CtrFileReaderTest, ChecksTheBadFractionAtEndOfASmallFile) {
  std::string dir = FreshDir("d");
  WriteFile(dir + "/f.tsv", "1\t1\t2\t3\t\t\nbroken\n");
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(dir + "/f.tsv", {}).ok());
  CtrSample s;
  bool eof;
  ASSERT_TRUE(reader.Next(&s, &eof).ok());
  Status st = reader.Next(&s, &eof);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("1 of 2 lines"), std::string::npos) << st.message();
}

struct LineResult {
  bool parsed = false;
  uint64_t user = 0;  // when parsed
  std::string why;    // when not
};

// Every NextLine result until end of file; *final is the status that ended the loop.
std::vector<LineResult> ReadAllLines(CtrFileReader* reader, Status* final) {
  std::vector<LineResult> out;
  CtrSample s;
  while (true) {
    LineResult r;
    bool eof = false;
    *final = reader->NextLine(&s, &r.parsed, &r.why, &eof);
    if (!final->ok() || eof) return out;
    if (r.parsed) {
      EXPECT_TRUE(r.why.empty()) << r.why;
      r.user = s.user;
    }
    out.push_back(r);
  }
}

TEST(CtrFileReaderNextLineTest, ReturnsEveryPhysicalLineInOrderWithFileAndLineOfTheBadOnes) {
  std::string dir = FreshDir("d");
  const std::string path = dir + "/predict.tsv";
  WriteFile(path, "1\t7\t2\t3\t\t\n\n1\t8\tx\t3\t\t\n0\t9\t2\t3\t4\t5\n");
  CtrFileReader reader;
  CtrReaderOptions options;
  options.max_bad_fraction = 0.5;
  ASSERT_TRUE(reader.Open(path, options).ok());
  Status st;
  std::vector<LineResult> got = ReadAllLines(&reader, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].parsed);
  EXPECT_EQ(got[0].user, 7u);
  EXPECT_FALSE(got[1].parsed);
  EXPECT_EQ(got[1].why, path + ":2: blank line");
  EXPECT_FALSE(got[2].parsed);
  EXPECT_EQ(got[2].why, path + ":3: field 3 (target_item): \"x\" is not an unsigned integer");
  EXPECT_TRUE(got[3].parsed);
  EXPECT_EQ(got[3].user, 9u);
  // The malformed line counts as Next would count it; the blank one does not.
  EXPECT_EQ(reader.bad_lines(), 1u);
  EXPECT_EQ(reader.lines_considered(), 3u);
  // Past the end it keeps reporting eof.
  CtrSample s;
  bool parsed = true, eof = false;
  std::string why = "stale";
  ASSERT_TRUE(reader.NextLine(&s, &parsed, &why, &eof).ok());
  EXPECT_TRUE(eof);
  EXPECT_FALSE(parsed);
  EXPECT_TRUE(why.empty());
}

TEST(CtrFileReaderNextLineTest, IgnoresTheWorkerSplitAndAppliesMaxHistory) {
  std::string path = WriteCtrFile(FreshDir("d"), 7, /*history=*/4);
  CtrReaderOptions options;
  options.worker_index = 1;
  options.num_workers = 3;
  options.max_history = 2;
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(path, options).ok());
  CtrSample s;
  bool parsed = false, eof = false;
  std::string why;
  for (uint64_t user = 1; user <= 7; ++user) {
    ASSERT_TRUE(reader.NextLine(&s, &parsed, &why, &eof).ok());
    ASSERT_FALSE(eof);
    ASSERT_TRUE(parsed) << why;
    EXPECT_EQ(s.user, user);
    EXPECT_EQ(s.hist_items, (std::vector<uint64_t>{user + 2, user + 3}));
  }
  ASSERT_TRUE(reader.NextLine(&s, &parsed, &why, &eof).ok());
  EXPECT_TRUE(eof);
}

TEST(CtrFileReaderNextLineTest, FailsAtEndOfFileWhenMalformedLinesExceedTheFraction) {
  std::string dir = FreshDir("d");
  const std::string path = dir + "/f.tsv";
  WriteFile(path, "1\t7\t2\t3\t\t\n\n\nbroken\n1\t8\t2\t3\t\t\n");
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(path, {}).ok());  // max_bad_fraction 0.001
  Status st;
  std::vector<LineResult> got = ReadAllLines(&reader, &st);
  EXPECT_EQ(got.size(), 5u);  // every line is returned; the check runs at the end
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("1 of 3 lines read are malformed"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("first: " + path + ":4: expected 6 tab-separated fields"),
            std::string::npos)
      << st.message();
  // The error is sticky.
  CtrSample s;
  bool parsed, eof;
  std::string why;
  EXPECT_FALSE(reader.NextLine(&s, &parsed, &why, &eof).ok());
}

TEST(CtrFileReaderNextLineTest, StopsPastMaxBadFractionLikeNext) {
  std::string path = WriteFileWithBadLines(FreshDir("d"), 5);
  CtrReaderOptions options;
  options.max_bad_fraction = 0.001;
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(path, options).ok());
  Status st;
  std::vector<LineResult> got = ReadAllLines(&reader, &st);
  ASSERT_EQ(st.code(), Status::Code::kInvalidArgument);
  // Lines 1..1000 come back (5 of them unparsed); the check, run from 1000 lines, fails the call
  // after the 1000th line, as with Next.
  EXPECT_EQ(got.size(), 1000u);
  EXPECT_EQ(std::count_if(got.begin(), got.end(), [](const LineResult& r) { return !r.parsed; }),
            5);
  EXPECT_NE(st.message().find(path + ":1000: 5 of 1000 lines"), std::string::npos) << st.message();
}

TEST(CtrFileReaderNextLineTest, ResumesFromASavedPosition) {
  std::string dir = FreshDir("d");
  const std::string path = dir + "/f.tsv";
  WriteFile(path, "1\t7\t2\t3\t\t\n\n1\t8\t2\t3\t\t\nbad\n");
  CtrFileReader reader;
  CtrReaderOptions options;
  options.max_bad_fraction = 1;
  ASSERT_TRUE(reader.Open(path, options).ok());
  CtrSample s;
  bool parsed, eof;
  std::string why;
  ASSERT_TRUE(reader.NextLine(&s, &parsed, &why, &eof).ok());
  CtrFileReader::Position saved = reader.position();
  CtrFileReader resumed;
  ASSERT_TRUE(resumed.Open(path, options).ok());
  ASSERT_TRUE(resumed.Seek(saved).ok());
  Status st;
  std::vector<LineResult> rest = ReadAllLines(&resumed, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].why, path + ":2: blank line");
  EXPECT_EQ(rest[1].user, 8u);
  EXPECT_EQ(rest[2].why, path + ":4: expected 6 tab-separated fields, got 1");
}

TEST(CtrFileReaderNextLineTest, ReportsAWrongExtraFieldCountWithFileAndLine) {
  std::string dir = FreshDir("d");
  const std::string path = dir + "/f.tsv";
  WriteFile(path, "1\t7\t2\t3\t\t\t4\t5\n1\t8\t2\t3\t\t\n0\t9\t2\t3\t\t\t4\tz\n");
  CtrReaderOptions options;
  options.extra_columns = 2;
  options.max_bad_fraction = 1;
  CtrFileReader reader;
  ASSERT_TRUE(reader.Open(path, options).ok());
  Status st;
  std::vector<LineResult> got = ReadAllLines(&reader, &st);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].parsed);
  EXPECT_EQ(got[0].user, 7u);
  EXPECT_EQ(got[1].why, path + ":2: expected 8 tab-separated fields, got 6");
  EXPECT_EQ(got[2].why, path + ":3: field 8 (extra 2): \"z\" is not an unsigned integer");
}

}  // namespace
}  // namespace attnps::data
