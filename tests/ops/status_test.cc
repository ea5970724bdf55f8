#include "ops/status.h"

#include <gtest/gtest.h>

#include <string>

namespace attnps {
namespace {

using namespace std::string_literals;  // "...\0..."s keeps embedded NULs

TEST(EscapeForMessageTest, PrintableAsciiNewlineAndTabPassUnchanged) {
  EXPECT_EQ(EscapeForMessage(""), "");
  EXPECT_EQ(EscapeForMessage("a.tsv:3: field 1 (label): \"x\" ~!@#$%^&*()\\"),
            "a.tsv:3: field 1 (label): \"x\" ~!@#$%^&*()\\");
  EXPECT_EQ(EscapeForMessage("two\nlines\tand a tab"), "two\nlines\tand a tab");
}

TEST(EscapeForMessageTest, ControlBytesAndDelBecomeHexEscapes) {
  EXPECT_EQ(EscapeForMessage("a\0b"s), "a\\x00b");
  EXPECT_EQ(EscapeForMessage("\x01\x07\x08\x0B\x0C\x1F"), "\\x01\\x07\\x08\\x0B\\x0C\\x1F");
  EXPECT_EQ(EscapeForMessage("\x1B[2J\x1B]0;title\x07"), "\\x1B[2J\\x1B]0;title\\x07");
  EXPECT_EQ(EscapeForMessage("del\x7F"), "del\\x7F");
}

TEST(EscapeForMessageTest, CarriageReturnIsEscapedSoItCannotOverwriteTheLine) {
  EXPECT_EQ(EscapeForMessage("bad line\rfine"), "bad line\\x0Dfine");
  EXPECT_EQ(EscapeForMessage("crlf\r\n"), "crlf\\x0D\n");
}

TEST(EscapeForMessageTest, ValidUtf8PassesUnchanged) {
  const std::string name =
      "donn\xC3\xA9"
      "es.tsv";  // "données.tsv"
  EXPECT_EQ(EscapeForMessage(name), name);
  const std::string mixed =
      "\xC2\xA0 \xE2\x82\xAC \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF "
      "\xED\x9F\xBF \xEE\x80\x80";  // U+00A0, euro, CJK, emoji, U+10FFFF, U+D7FF, U+E000
  EXPECT_EQ(EscapeForMessage(mixed), mixed);
}

TEST(EscapeForMessageTest, InvalidUtf8BytesBecomeHexEscapes) {
  EXPECT_EQ(EscapeForMessage("a\x80z"), "a\\x80z");                // stray continuation byte
  EXPECT_EQ(EscapeForMessage("\xFF\xFE"), "\\xFF\\xFE");           // never valid
  EXPECT_EQ(EscapeForMessage("\xC0\xAF"), "\\xC0\\xAF");           // overlong '/'
  EXPECT_EQ(EscapeForMessage("\xE0\x80\xAF"), "\\xE0\\x80\\xAF");  // overlong, 3 bytes
  EXPECT_EQ(EscapeForMessage("\xF0\x80\x80\xAF"), "\\xF0\\x80\\x80\\xAF");
  EXPECT_EQ(EscapeForMessage("\xED\xA0\x80"), "\\xED\\xA0\\x80");           // a UTF-16 surrogate
  EXPECT_EQ(EscapeForMessage("\xF4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(EscapeForMessage("\xF5\x80\x80\x80"), "\\xF5\\x80\\x80\\x80");
  // Latin-1 text (not UTF-8): each high byte escaped, the ASCII kept.
  EXPECT_EQ(EscapeForMessage("donn\xE9"
                             "es"),
            "donn\\xE9es");
}

TEST(EscapeForMessageTest, TruncatedMultibyteSequencesAreEscapedByteByByte) {
  EXPECT_EQ(EscapeForMessage("\xC3"), "\\xC3");  // at the end
  EXPECT_EQ(EscapeForMessage("\xE2\x82"), "\\xE2\\x82");
  EXPECT_EQ(EscapeForMessage("\xF0\x9F\x98"), "\\xF0\\x9F\\x98");
  EXPECT_EQ(EscapeForMessage("\xE2\x82z\xC3\xA9"), "\\xE2\\x82z\xC3\xA9");  // resynchronizes
  EXPECT_EQ(EscapeForMessage("\xC3\xC3\xA9"), "\\xC3\xC3\xA9");
}

TEST(EscapeForMessageTest, C1ControlCharactersAreEscaped) {
  EXPECT_EQ(EscapeForMessage("\xC2\x9B"
                             "2J"),
            "\\xC2\\x9B2J");  // U+009B CSI
  EXPECT_EQ(EscapeForMessage("\xC2\x80"), "\\xC2\\x80");
  EXPECT_EQ(EscapeForMessage("\xC2\x9F\xC2\xA0"), "\\xC2\\x9F\xC2\xA0");
}

TEST(StatusTest, ToStringEscapesTheMessageButMessageKeepsTheRawBytes) {
  const std::string raw = "f\xC3\xA9.tsv:3: item \"\x1B[31mred\r\xFF\" is not an unsigned integer";
  Status s = Status::InvalidArgument(raw);
  EXPECT_EQ(s.message(), raw);
  EXPECT_EQ(s.ToString(),
            "Invalid argument: f\xC3\xA9.tsv:3: item \"\\x1B[31mred\\x0D\\xFF\" is not an unsigned "
            "integer");
  EXPECT_EQ(Status::IoError("a\nb").ToString(), "IO error: a\nb");
  EXPECT_EQ(Status::Corruption("x\x01").WithContext("ctx\x02").ToString(),
            "Corruption: ctx\\x02: x\\x01");
  EXPECT_EQ(Status::NotFound("n").ToString(), "Not found: n");
  EXPECT_EQ(Status::Unavailable("u").ToString(), "Unavailable: u");
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  EXPECT_EQ(Status::FromCode(Status::Code::kOk, "\x1B").ToString(), "OK");
}

}  // namespace
}  // namespace attnps
