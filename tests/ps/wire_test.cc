#include "ps/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace attnps::ps {
namespace {

const std::vector<uint64_t> kKeys = {1, 2, 1ull << 60};
const std::vector<float> kValues = {0.5f, -1.0f, 2.0f, 3.0f, 4.0f, 5.5f};

Request PushRequest() {
  Request r;
  r.type = RequestType::kPush;
  r.request_id = 42;
  r.table_id = 3;
  r.dim = 2;
  r.step = 9;
  r.sender = 5;
  r.num_keys = kKeys.size();
  r.keys = kKeys.data();
  r.values = kValues.data();
  return r;
}

std::string Bytes(const Buffer& b) { return std::string(b.view()); }

// Decodes a copy of `bytes` held in an aligned Buffer that outlives the decoded views.
struct Decoded {
  Buffer bytes;
  Request request;
  Status status;
};
Decoded DecodeCopy(std::string_view bytes) {
  Decoded d;
  d.bytes = Buffer::Copy(bytes);
  d.status = DecodeRequest(d.bytes.data(), d.bytes.size(), &d.request);
  return d;
}

TEST(WireTest, RequestRoundTripsEveryField) {
  const Request in = PushRequest();
  const Buffer frame = EncodeRequest(in);
  Request out;
  ASSERT_TRUE(DecodeRequest(frame.data(), frame.size(), &out).ok());
  EXPECT_EQ(out.type, in.type);
  EXPECT_EQ(out.request_id, 42u);
  EXPECT_EQ(out.table_id, 3u);
  EXPECT_EQ(out.dim, 2u);
  EXPECT_EQ(out.step, 9u);
  EXPECT_EQ(out.sender, 5);
  ASSERT_EQ(out.num_keys, 3u);
  EXPECT_EQ(std::vector<uint64_t>(out.keys, out.keys + 3), kKeys);
  EXPECT_EQ(std::vector<float>(out.values, out.values + 6), kValues);
}

TEST(WireTest, SaveRequestCarriesPathAndNoPayload) {
  Request in;
  in.type = RequestType::kSave;
  in.path = "/ckpt/step-100";
  const Buffer frame = EncodeRequest(in);
  Request out;
  ASSERT_TRUE(DecodeRequest(frame.data(), frame.size(), &out).ok());
  EXPECT_EQ(out.path, "/ckpt/step-100");
  EXPECT_EQ(out.num_keys, 0u);
}

TEST(WireTest, ReplyRoundTripsStatusValuesAndStats) {
  Reply in;
  in.request_id = 7;
  in.status = Status::InvalidArgument("table 9: unknown");
  const std::vector<float> values = {1, 2, 3};
  in.num_values = values.size();
  in.values = values.data();
  in.stats = {{1, 100}, {2, 5}};
  const Buffer frame = EncodeReply(in);
  Reply out;
  ASSERT_TRUE(DecodeReply(frame.data(), frame.size(), &out).ok());
  EXPECT_EQ(out.request_id, 7u);
  EXPECT_EQ(out.status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(out.status.message(), "table 9: unknown");
  ASSERT_EQ(out.num_values, 3u);
  EXPECT_EQ(std::vector<float>(out.values, out.values + 3), values);
  EXPECT_EQ(out.stats, in.stats);
}

TEST(WireTest, PayloadStartsEightByteAligned) {
  const Buffer frame = EncodeRequest(PushRequest());
  const size_t payload = 3 * 8 + 6 * 4;
  EXPECT_EQ((frame.size() - payload) % 8, 0u);
}

TEST(WireTest, EveryTruncationIsRefused) {
  const Buffer frame = EncodeRequest(PushRequest());
  for (size_t len = 0; len < frame.size(); ++len) {
    Request out;
    EXPECT_FALSE(DecodeRequest(frame.data(), len, &out).ok()) << "length " << len;
  }
}

TEST(WireTest, MalformedHeadersNameTheProblem) {
  const std::string frame = Bytes(EncodeRequest(PushRequest()));
  std::string bad = frame;
  bad[0] = 'X';
  EXPECT_NE(DecodeCopy(bad).status.message().find("bad magic"), std::string::npos);
  bad = frame;
  const uint32_t huge = 1u << 30;
  std::memcpy(&bad[4], &huge, 4);
  EXPECT_NE(DecodeCopy(bad).status.message().find("header length"), std::string::npos);
  bad = frame + "extra!!!";
  EXPECT_NE(DecodeCopy(bad).status.message().find("payload is"), std::string::npos);

  Request r = PushRequest();
  r.dim = 0;
  EXPECT_NE(DecodeCopy(Bytes(EncodeRequest(r))).status.message().find("dim 0"), std::string::npos);
}

TEST(WireTest, UnknownTypeIsRefused) {
  Request r = PushRequest();
  r.type = static_cast<RequestType>(99);
  EXPECT_NE(DecodeCopy(Bytes(EncodeRequest(r))).status.message().find("unknown type 99"),
            std::string::npos);
}

TEST(WireTest, MisalignedPayloadIsRefused) {
  const Buffer frame = EncodeRequest(PushRequest());
  Buffer shifted(frame.size() + 4);
  std::memcpy(shifted.data() + 4, frame.data(), frame.size());
  Request out;
  EXPECT_NE(DecodeRequest(shifted.data() + 4, frame.size(), &out).message().find("aligned"),
            std::string::npos);
}

TEST(WireTest, FramesAreFilledInPlace) {
  Request r = PushRequest();
  RequestFrame frame = NewRequestFrame(r);
  for (size_t i = 0; i < kKeys.size(); ++i) frame.keys[i] = kKeys[i];
  for (size_t i = 0; i < kValues.size(); ++i) frame.values[i] = kValues[i];
  EXPECT_EQ(Bytes(frame.buffer), Bytes(EncodeRequest(r)));
}

// Random corruption must give a Status (or a valid message), never a crash.
TEST(WireTest, RandomByteFlipsNeverCrash) {
  const std::string frame = Bytes(EncodeRequest(PushRequest()));
  std::mt19937 rng(3);
  int refused = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string bad = frame;
    for (int f = 0; f < 3; ++f) bad[rng() % bad.size()] = static_cast<char>(rng());
    if (!DecodeCopy(bad).status.ok()) ++refused;
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace attnps::ps
