#include "ps/initializer.h"

#include <cmath>

#include "ops/random.h"

namespace attnps::ps {
namespace {

// A standard normal value from the stream by Box-Muller, redrawn until |z| <= 2.
float TruncatedStandardNormal(uint64_t stream, uint64_t* counter) {
  constexpr float kTwoPi = 6.28318530717958647f;
  for (;;) {
    const float u1 = 1.0f - StreamUniform(stream, (*counter)++);  // (0, 1]
    const float u2 = StreamUniform(stream, (*counter)++);
    const float z = std::sqrt(-2.0f * std::log(u1)) * std::cos(kTwoPi * u2);
    if (std::fabs(z) <= 2.0f) return z;
  }
}

}  // namespace

void InitializeEmbedding(const InitializerConfig& config, uint64_t seed, uint32_t table_id,
                         uint64_t key, int dim, float* out) {
  const uint64_t stream = StreamKey(seed, table_id, key);
  switch (config.kind) {
    case InitializerKind::kZeros:
      for (int i = 0; i < dim; ++i) out[i] = 0.0f;
      return;
    case InitializerKind::kUniform:
      for (int i = 0; i < dim; ++i) {
        out[i] = config.low + (config.high - config.low) * StreamUniform(stream, i);
      }
      return;
    case InitializerKind::kTruncatedNormal: {
      uint64_t counter = 0;
      for (int i = 0; i < dim; ++i)
        out[i] = config.stddev * TruncatedStandardNormal(stream, &counter);
      return;
    }
  }
}

}  // namespace attnps::ps
