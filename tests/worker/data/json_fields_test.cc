#include "worker/data/json_fields.h"

#include <gtest/gtest.h>

namespace attnps::data {
namespace {

TEST(JsonFieldsTest, ExtractsWantedTopLevelFieldsOnly) {
  JsonFields f;
  ASSERT_TRUE(ParseJsonFields(R"({"a": "x\"y\u00e9", "b": 12.5, "c": [["p", "q"], ["r"]],)"
                              R"( "skip": {"k": [1, {"z": null}]}, "t": true})",
                              {"a", "b", "c"}, &f)
                  .ok());
  ASSERT_NE(f.Find("a"), nullptr);
  EXPECT_EQ(f.Find("a")->text, "x\"y\xc3\xa9");
  EXPECT_EQ(f.Find("b")->kind, JsonValue::Kind::kNumber);
  EXPECT_EQ(f.Find("b")->text, "12.5");
  ASSERT_EQ(f.Find("c")->items.size(), 2u);
  EXPECT_EQ(f.Find("c")->items[1].items[0].text, "r");
  EXPECT_EQ(f.Find("skip"), nullptr);
  EXPECT_EQ(f.Find("t"), nullptr);
}

TEST(JsonFieldsTest, AcceptsPythonLiteralStyle) {
  JsonFields f;
  ASSERT_TRUE(ParseJsonFields("{'asin': 'B1', 'title': \"Kid's\", 'imUrl': None, 'x': False, "
                              "'categories': [['A', 'B'],]}",
                              {"asin", "title", "categories"}, &f)
                  .ok());
  EXPECT_EQ(f.Find("asin")->text, "B1");
  EXPECT_EQ(f.Find("title")->text, "Kid's");
  EXPECT_EQ(f.Find("categories")->items[0].items[1].text, "B");
}

TEST(JsonFieldsTest, RejectsMalformedObjectsWithAPosition) {
  JsonFields f;
  for (const char* bad :
       {"", "[1]", "{\"a\": }", "{\"a\" 1}", "{\"a\": \"x}", "{\"a\": 1} x", "{\"a\": [1, 2}"}) {
    Status st = ParseJsonFields(bad, {"a"}, &f);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("at byte"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace attnps::data
