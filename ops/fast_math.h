// Vectorizable elementwise math for the CPU kernels. Plain float code that the compiler turns
// into SIMD loops (libm's expf is a scalar call) when built with -fno-trapping-math, as the root
// CMakeLists.txt does (otherwise the clamp keeps the loops scalar); max relative error of FastExp
// ~2e-7 on [-87, 87], inputs outside are clamped.
#ifndef ATTNPS_OPS_FAST_MATH_H_
#define ATTNPS_OPS_FAST_MATH_H_

#include <cstdint>
#include <cstring>

namespace attnps {

inline float FastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 87.0f ? 87.0f : x);
  // x = n * ln2 + r, |r| <= ln2 / 2; exp(r) by a degree-6 polynomial.
  // Round to nearest by the 1.5 * 2^23 trick (floorf would block vectorization).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float FastSigmoid(float x) { return 1.0f / (1.0f + FastExp(-x)); }

inline float FastTanh(float x) { return 2.0f / (1.0f + FastExp(-2.0f * x)) - 1.0f; }

// sum_i a[i] * b[i], vectorized (partial sums per lane: the order differs from a scalar loop's).
inline float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace attnps

#endif  // ATTNPS_OPS_FAST_MATH_H_
