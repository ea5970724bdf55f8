// Row kernels of the masked softmax, shared by the attention ops (internal to ops/).
#ifndef ATTNPS_OPS_SOFTMAX_ROW_H_
#define ATTNPS_OPS_SOFTMAX_ROW_H_

#include <cmath>
#include <cstdint>

#include "ops/fast_math.h"

namespace attnps {

// Reductions over 8 independent lanes, so that they vectorize without -ffast-math (one
// sequential chain is bound by the add latency: the max and sum dominated the attention ops).
constexpr int kLanes = 8;

inline float LaneSum(const float* x, int64_t n) {
  float lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] += x[j + k];
  float sum = 0.0f;
  for (int k = 0; k < kLanes; ++k) sum += lane[k];
  for (; j < n; ++j) sum += x[j];
  return sum;
}

inline float LaneDot(const float* a, const float* b, int64_t n) {
  float lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] += a[j + k] * b[j + k];
  float sum = 0.0f;
  for (int k = 0; k < kLanes; ++k) sum += lane[k];
  for (; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

// max of scale * x[j] over j < n with mask[j] != 0 (mask may be null); -inf when none is valid.
inline float LaneMaskedMax(const float* x, const float* mask, int64_t n, float scale) {
  float lane[kLanes];
  for (float& v : lane) v = -INFINITY;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const float v = mask == nullptr || mask[j + k] != 0.0f ? scale * x[j + k] : -INFINITY;
      lane[k] = v > lane[k] ? v : lane[k];
    }
  float m = -INFINITY;
  for (int k = 0; k < kLanes; ++k) m = lane[k] > m ? lane[k] : m;
  for (; j < n; ++j) {
    if (mask == nullptr || mask[j] != 0.0f) m = scale * x[j] > m ? scale * x[j] : m;
  }
  return m;
}

// y[j] = softmax of scale * x over the positions j < limit whose mask is nonzero (mask may be
// null: all valid); 0 at every other position of the t. y may alias x.
inline void SoftmaxRow(const float* x, const float* mask, int64_t limit, int64_t t, float scale,
                       float* y) {
  const float max_v = LaneMaskedMax(x, mask, limit, scale);
  if (max_v == -INFINITY) {  // no valid position
    for (int64_t j = 0; j < t; ++j) y[j] = 0.0f;
    return;
  }
  if (mask == nullptr) {
    for (int64_t j = 0; j < limit; ++j) y[j] = FastExp(scale * x[j] - max_v);
  } else {
    for (int64_t j = 0; j < limit; ++j) {
      y[j] = mask[j] != 0.0f ? FastExp(scale * x[j] - max_v) : 0.0f;
    }
  }
  const float inv = 1.0f / LaneSum(y, limit);  // sum >= 1: the max term is exp(0)
  for (int64_t j = 0; j < limit; ++j) y[j] *= inv;
  for (int64_t j = limit; j < t; ++j) y[j] = 0.0f;
}

enum class GradMode { kAssign, kAccumulate };

// dx (=|+=) scale * y * (dy - <dy, y>) over t positions. With kAssign, dx may alias dy.
template <GradMode kMode>
inline void SoftmaxGradRow(const float* y, const float* dy, int64_t t, float scale, float* dx) {
  const float dot = LaneDot(dy, y, t);
  for (int64_t j = 0; j < t; ++j) {
    const float g = scale * y[j] * (dy[j] - dot);
    dx[j] = kMode == GradMode::kAccumulate ? dx[j] + g : g;
  }
}

}  // namespace attnps

#endif  // ATTNPS_OPS_SOFTMAX_ROW_H_
