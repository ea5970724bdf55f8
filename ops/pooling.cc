#include "ops/pooling.h"

#include "ops/device_dispatch.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

enum class Reduce { kSum, kMean };

struct PoolSizes {
  int64_t b, t, d;
};

PoolSizes CheckForward(const char* op, const Tensor& x, const Tensor& mask, const Tensor& y) {
  Dim b("B"), t("T"), d("D");
  ShapeCheck(op, x.device())
      .Arg("x", x, {&b, &t, &d})
      .Arg("mask", mask, {&b, &t})
      .Arg("y", y, {&b, &d})
      .Done();
  return {b.value(), t.value(), d.value()};
}

PoolSizes CheckBackward(const char* op, const Tensor& mask, const Tensor& dy, const Tensor* dx) {
  Dim b("B"), t("T"), d("D");
  ShapeCheck check(op, mask.device());
  check.Arg("mask", mask, {&b, &t}).Arg("dy", dy, {&b, &d});
  if (dx) check.Arg("dx", *dx, {&b, &t, &d});
  check.Done();
  return {b.value(), t.value(), d.value()};
}

// 1 / sum_t mask for kMean (0 for a fully masked row), 1 for kSum.
float RowScale(const float* mask_row, int64_t t, Reduce reduce) {
  if (reduce == Reduce::kSum) return 1.0f;
  float count = 0.0f;
  for (int64_t i = 0; i < t; ++i) count += mask_row[i];
  return count > 0.0f ? 1.0f / count : 0.0f;
}

// y += m * x over d values (restrict: lets the compiler vectorize).
void Axpy(float m, const float* __restrict x, float* __restrict y, int64_t d) {
  for (int64_t j = 0; j < d; ++j) y[j] += m * x[j];
}

void PoolForward(const Tensor& x, const Tensor& mask, const PoolSizes& s, Reduce reduce,
                 Tensor* y) {
  const float *xd = x.data(), *md = mask.data();
  float* yd = y->data();
  ParallelFor(s.b, 2 * s.t * s.d, [&](int64_t b) {
    const float* mrow = md + b * s.t;
    float* yr = yd + b * s.d;
    for (int64_t j = 0; j < s.d; ++j) yr[j] = 0.0f;
    for (int64_t t = 0; t < s.t; ++t) {
      const float m = mrow[t];
      if (m == 0.0f) continue;
      Axpy(m, xd + (b * s.t + t) * s.d, yr, s.d);
    }
    const float scale = RowScale(mrow, s.t, reduce);
    if (scale != 1.0f)
      for (int64_t j = 0; j < s.d; ++j) yr[j] *= scale;
  });
}

void PoolBackward(const Tensor& mask, const Tensor& dy, const PoolSizes& s, Reduce reduce,
                  Tensor* dx) {
  const float *md = mask.data(), *g = dy.data();
  float* gx = dx->data();
  ParallelFor(s.b, 2 * s.t * s.d, [&](int64_t b) {
    const float* mrow = md + b * s.t;
    const float* gr = g + b * s.d;
    const float scale = RowScale(mrow, s.t, reduce);
    for (int64_t t = 0; t < s.t; ++t) {
      const float m = mrow[t] * scale;
      if (m == 0.0f) continue;
      Axpy(m, gr, gx + (b * s.t + t) * s.d, s.d);
    }
  });
}

}  // namespace

void MaskedSumPoolForward(const Tensor& x, const Tensor& mask, Tensor* y) {
  const PoolSizes s = CheckForward("masked_sum_pool_forward", x, mask, *y);
  ATTNPS_RUN_ON_CUDA(x, MaskedPoolForward(x, mask, false, y));
  PoolForward(x, mask, s, Reduce::kSum, y);
}

void MaskedSumPoolBackward(const Tensor& mask, const Tensor& dy, Tensor* dx) {
  const PoolSizes s = CheckBackward("masked_sum_pool_backward", mask, dy, dx);
  ATTNPS_RUN_ON_CUDA(mask, MaskedPoolBackward(mask, dy, false, dx));
  if (dx) PoolBackward(mask, dy, s, Reduce::kSum, dx);
}

void MaskedMeanPoolForward(const Tensor& x, const Tensor& mask, Tensor* y) {
  const PoolSizes s = CheckForward("masked_mean_pool_forward", x, mask, *y);
  ATTNPS_RUN_ON_CUDA(x, MaskedPoolForward(x, mask, true, y));
  PoolForward(x, mask, s, Reduce::kMean, y);
}

void MaskedMeanPoolBackward(const Tensor& mask, const Tensor& dy, Tensor* dx) {
  const PoolSizes s = CheckBackward("masked_mean_pool_backward", mask, dy, dx);
  ATTNPS_RUN_ON_CUDA(mask, MaskedPoolBackward(mask, dy, true, dx));
  if (dx) PoolBackward(mask, dy, s, Reduce::kMean, dx);
}

}  // namespace attnps
