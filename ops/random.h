// Counter-based random numbers: value i of stream `key` is a pure function of (key, i), so results
// do not depend on thread count, call order or which process draws them (dropout masks, embedding
// initializers). Based on the splitmix64 finalizer.
#ifndef ATTNPS_OPS_RANDOM_H_
#define ATTNPS_OPS_RANDOM_H_

#include <cstdint>

#include "ops/host_device.h"

namespace attnps {

constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;

// The splitmix64 finalizer: a bijective 64-bit mix.
ATTNPS_HD inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A stream key from several words (e.g. seed, table id, feature id).
inline uint64_t StreamKey(uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  return Mix64((Mix64(Mix64(a + kGoldenGamma) ^ b) + kGoldenGamma) ^ c);
}

// The i-th 64-bit value of stream `key`.
ATTNPS_HD inline uint64_t StreamBits(uint64_t key, uint64_t i) {
  return Mix64(key + (i + 1) * kGoldenGamma);
}

// The i-th value of stream `key`, uniform in [0, 1) with 24 random bits.
inline float StreamUniform(uint64_t key, uint64_t i) {
  return static_cast<float>(StreamBits(key, i) >> 40) * (1.0f / 16777216.0f);
}

// The i-th value of stream `key`, uniform in [0, 1) with 53 random bits (a double).
inline double StreamUniform53(uint64_t key, uint64_t i) {
  return static_cast<double>(StreamBits(key, i) >> 11) * (1.0 / 9007199254740992.0);
}

// Dropout's 32 bits for element e of stream `key`: half of value e / 2 (the high half for even
// e), so one 64-bit value serves two elements.
ATTNPS_HD inline uint32_t DropoutBits(uint64_t key, uint64_t e) {
  const uint64_t h = StreamBits(key, e >> 1);
  return static_cast<uint32_t>((e & 1) ? h : h >> 32);
}

}  // namespace attnps

#endif  // ATTNPS_OPS_RANDOM_H_
