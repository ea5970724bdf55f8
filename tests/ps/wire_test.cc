#include "ps/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace attnps::ps {
namespace {

Request PushRequest() {
  Request r;
  r.type = RequestType::kPush;
  r.request_id = 42;
  r.table_id = 3;
  r.dim = 2;
  r.step = 9;
  r.sender = 5;
  r.keys = {1, 2, 1ull << 60};
  r.values = {0.5f, -1.0f, 2.0f, 3.0f, 4.0f, 5.5f};
  return r;
}

TEST(WireTest, RequestRoundTripsEveryField) {
  const Request in = PushRequest();
  const std::string frame = EncodeRequest(in);
  Request out;
  ASSERT_TRUE(DecodeRequest(frame.data(), frame.size(), &out).ok());
  EXPECT_EQ(out.type, in.type);
  EXPECT_EQ(out.request_id, 42u);
  EXPECT_EQ(out.table_id, 3u);
  EXPECT_EQ(out.dim, 2u);
  EXPECT_EQ(out.step, 9u);
  EXPECT_EQ(out.sender, 5);
  EXPECT_EQ(out.keys, in.keys);
  EXPECT_EQ(out.values, in.values);
}

TEST(WireTest, SaveRequestCarriesPathAndNoPayload) {
  Request in;
  in.type = RequestType::kSave;
  in.path = "/ckpt/step-100";
  const std::string frame = EncodeRequest(in);
  Request out;
  ASSERT_TRUE(DecodeRequest(frame.data(), frame.size(), &out).ok());
  EXPECT_EQ(out.path, "/ckpt/step-100");
  EXPECT_TRUE(out.keys.empty());
}

TEST(WireTest, ReplyRoundTripsStatusValuesAndStats) {
  Reply in;
  in.request_id = 7;
  in.status = Status::InvalidArgument("table 9: unknown");
  in.values = {1, 2, 3};
  in.stats = {{1, 100}, {2, 5}};
  const std::string frame = EncodeReply(in);
  Reply out;
  ASSERT_TRUE(DecodeReply(frame.data(), frame.size(), &out).ok());
  EXPECT_EQ(out.request_id, 7u);
  EXPECT_EQ(out.status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(out.status.message(), "table 9: unknown");
  EXPECT_EQ(out.values, in.values);
  EXPECT_EQ(out.stats, in.stats);
}

TEST(WireTest, PayloadStartsEightByteAligned) {
  const std::string frame = EncodeRequest(PushRequest());
  const size_t payload = 3 * 8 + 6 * 4;
  EXPECT_EQ((frame.size() - payload) % 8, 0u);
}

TEST(WireTest, EveryTruncationIsRefused) {
  const std::string frame = EncodeRequest(PushRequest());
  for (size_t len = 0; len < frame.size(); ++len) {
    Request out;
    EXPECT_FALSE(DecodeRequest(frame.data(), len, &out).ok()) << "length " << len;
  }
}

TEST(WireTest, MalformedHeadersNameTheProblem) {
  std::string frame = EncodeRequest(PushRequest());
  Request out;
  std::string bad = frame;
  bad[0] = 'X';
  EXPECT_NE(DecodeRequest(bad.data(), bad.size(), &out).message().find("bad magic"),
            std::string::npos);
  bad = frame;
  const uint32_t huge = 1u << 30;
  std::memcpy(&bad[4], &huge, 4);
  EXPECT_NE(DecodeRequest(bad.data(), bad.size(), &out).message().find("header length"),
            std::string::npos);
  bad = frame + "extra!!!";
  EXPECT_NE(DecodeRequest(bad.data(), bad.size(), &out).message().find("payload is"),
            std::string::npos);

  Request r = PushRequest();
  r.dim = 0;
  r.values.clear();
  std::string zero_dim = EncodeRequest(r);
  EXPECT_NE(DecodeRequest(zero_dim.data(), zero_dim.size(), &out).message().find("dim 0"),
            std::string::npos);
}

TEST(WireTest, UnknownTypeIsRefused) {
  Request r = PushRequest();
  r.type = static_cast<RequestType>(99);
  std::string frame = EncodeRequest(r);
  Request out;
  EXPECT_NE(DecodeRequest(frame.data(), frame.size(), &out).message().find("unknown type 99"),
            std::string::npos);
}

// Random corruption must give a Status (or a valid message), never a crash.
TEST(WireTest, RandomByteFlipsNeverCrash) {
  const std::string frame = EncodeRequest(PushRequest());
  std::mt19937 rng(3);
  int refused = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string bad = frame;
    for (int f = 0; f < 3; ++f) bad[rng() % bad.size()] = static_cast<char>(rng());
    Request out;
    if (!DecodeRequest(bad.data(), bad.size(), &out).ok()) ++refused;
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace attnps::ps
