// Row kernels of the masked softmax, shared by the attention ops (internal to ops/).
#ifndef ATTNPS_OPS_SOFTMAX_ROW_H_
#define ATTNPS_OPS_SOFTMAX_ROW_H_

#include <cmath>
#include <cstdint>

#include "ops/fast_math.h"

namespace attnps {

// y[j] = softmax of scale * x over the positions j < limit whose mask is nonzero (mask may be
// null: all valid); 0 at every other position of the t. y may alias x.
inline void SoftmaxRow(const float* x, const float* mask, int64_t limit, int64_t t, float scale,
                       float* y) {
  float max_v = -INFINITY;
  int64_t valid = 0;
  for (int64_t j = 0; j < limit; ++j) {
    if (mask != nullptr && mask[j] == 0.0f) continue;
    max_v = std::fmax(max_v, scale * x[j]);
    ++valid;
  }
  if (valid == 0) {
    for (int64_t j = 0; j < t; ++j) y[j] = 0.0f;
    return;
  }
  // Separate loops so that the exponentials vectorize (the sum is a sequential reduction).
  if (mask == nullptr) {
    for (int64_t j = 0; j < limit; ++j) y[j] = FastExp(scale * x[j] - max_v);
  } else {
    for (int64_t j = 0; j < limit; ++j) {
      y[j] = mask[j] != 0.0f ? FastExp(scale * x[j] - max_v) : 0.0f;
    }
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < limit; ++j) sum += y[j];
  const float inv = 1.0f / sum;  // sum >= 1: the max term is exp(0)
  for (int64_t j = 0; j < limit; ++j) y[j] *= inv;
  for (int64_t j = limit; j < t; ++j) y[j] = 0.0f;
}

enum class GradMode { kAssign, kAccumulate };

// dx (=|+=) scale * y * (dy - <dy, y>) over t positions. With kAssign, dx may alias dy.
template <GradMode kMode>
inline void SoftmaxGradRow(const float* y, const float* dy, int64_t t, float scale, float* dx) {
  float dot = 0.0f;
  for (int64_t j = 0; j < t; ++j) dot += dy[j] * y[j];
  for (int64_t j = 0; j < t; ++j) {
    const float g = scale * y[j] * (dy[j] - dot);
    dx[j] = kMode == GradMode::kAccumulate ? dx[j] + g : g;
  }
}

}  // namespace attnps

#endif  // ATTNPS_OPS_SOFTMAX_ROW_H_
