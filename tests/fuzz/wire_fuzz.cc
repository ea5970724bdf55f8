// libFuzzer target for the PS wire decoder: any byte string must decode to a Status or to a
// message that re-encodes and decodes to itself, without crashes, leaks or undefined behaviour.
//   build: bash launch/setup.sh fuzz   (clang, -fsanitize=fuzzer,address,undefined)
//   run longer: build-fuzz/wire_fuzz -max_total_time=3600 build-fuzz/fuzz_corpus tests/fuzz/corpus
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ps/wire.h"

namespace {

void CheckRequestRoundTrip(const attnps::ps::Request& r) {
  const attnps::ps::Buffer again = attnps::ps::EncodeRequest(r);
  attnps::ps::Request back;
  const size_t value_bytes =
      r.type == attnps::ps::RequestType::kPush ? r.num_keys * r.dim * sizeof(float) : 0;
  if (!attnps::ps::DecodeRequest(again.data(), again.size(), &back).ok() ||
      back.num_keys != r.num_keys || back.path != r.path || back.type != r.type ||
      std::memcmp(back.keys, r.keys, r.num_keys * sizeof(uint64_t)) != 0 ||
      (value_bytes > 0 && std::memcmp(back.values, r.values, value_bytes) != 0)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  attnps::ps::Request request;
  if (attnps::ps::DecodeRequest(bytes, size, &request).ok()) CheckRequestRoundTrip(request);
  attnps::ps::Reply reply;
  (void)attnps::ps::DecodeReply(bytes, size, &reply);
  return 0;
}
