#include "ops/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/device_dispatch.h"
#include "ops/parallel.h"
#include "ops/random.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

constexpr int64_t kChunk = 1 << 14;    // elements per parallel item of dropout
constexpr int64_t kRowsPerBlock = 64;  // rows per parallel item of the LayerNorm backward

// sum_{j < n} f(j) over 8 independent lanes: float sums are not reassociated by the compiler, and
// one serial chain of adds would bound the short-row kernels by the add latency.
template <typename F>
inline float LaneSum(int64_t n, const F& f) {
  constexpr int kLanes = 8;
  float lanes[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] += f(j + k);
  float sum = 0.0f;
  for (; j < n; ++j) sum += f(j);
  for (int k = 0; k < kLanes; ++k) sum += lanes[k];
  return sum;
}

// Row kernels over `cols` features (restrict: lets the compiler vectorize).
void LayerNormRow(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                  float eps, int64_t cols, float* __restrict y, float* mean, float* rstd) {
  const float m = LaneSum(cols, [&](int64_t j) { return x[j]; }) / static_cast<float>(cols);
  const float sq = LaneSum(cols, [&](int64_t j) { return (x[j] - m) * (x[j] - m); });
  const float s = 1.0f / std::sqrt(sq / static_cast<float>(cols) + eps);
  for (int64_t j = 0; j < cols; ++j) y[j] = (x[j] - m) * s * w[j] + b[j];
  *mean = m;
  *rstd = s;
}

void LayerNormParamGradRow(const float* __restrict x, const float* __restrict g, float m, float s,
                           float* __restrict dw, float* __restrict db, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) {
    dw[j] += g[j] * (x[j] - m) * s;
    db[j] += g[j];
  }
}

// dx += rstd * (gh - mean(gh) - xhat * mean(gh * xhat)), gh = dy * gamma.
void LayerNormGradRow(const float* __restrict x, const float* __restrict g,
                      const float* __restrict w, float m, float s, float* __restrict gx,
                      int64_t cols) {
  const float sum_gh = LaneSum(cols, [&](int64_t j) { return g[j] * w[j]; });
  const float sum_ghx = LaneSum(cols, [&](int64_t j) { return g[j] * w[j] * (x[j] - m) * s; });
  const float mean_gh = sum_gh / static_cast<float>(cols);
  const float mean_ghx = sum_ghx / static_cast<float>(cols);
  for (int64_t j = 0; j < cols; ++j)
    gx[j] += s * (g[j] * w[j] - mean_gh - (x[j] - m) * s * mean_ghx);
}

// Elements [begin, end) of x, mask and y; element e's flat index is base + e.
void DropoutRows(const float* __restrict x, uint64_t key, uint64_t threshold, float scale,
                 uint64_t base, int64_t begin, int64_t end, float* __restrict mask,
                 float* __restrict y) {
  auto keep = [&](int64_t e, uint32_t bits) {
    const float m = bits >= threshold ? scale : 0.0f;
    mask[e] = m;
    y[e] = x[e] * m;
  };
  int64_t e = begin;
  if (e < end && ((base + e) & 1)) {
    keep(e, DropoutBits(key, base + e));
    ++e;
  }
  for (; e + 1 < end; e += 2) {
    const uint64_t h = StreamBits(key, (base + e) >> 1);
    keep(e, static_cast<uint32_t>(h >> 32));
    keep(e + 1, static_cast<uint32_t>(h));
  }
  if (e < end) keep(e, DropoutBits(key, base + e));
}

void DropoutGradRows(const float* __restrict mask, const float* __restrict g, int64_t begin,
                     int64_t end, float* __restrict gx) {
  for (int64_t e = begin; e < end; ++e) gx[e] += g[e] * mask[e];
}

}  // namespace

void LayerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                      Tensor* y, Tensor* mean, Tensor* rstd) {
  Dim n("N"), c("C");
  ShapeCheck("layer_norm_forward", x.device())
      .Arg("x", x, {&n, &c})
      .Arg("gamma", gamma, {&c})
      .Arg("beta", beta, {&c})
      .Arg("y", *y, {&n, &c})
      .Arg("mean", *mean, {&n})
      .Arg("rstd", *rstd, {&n})
      .Require(eps > 0.0f, "eps > 0")
      .Require(c.value() > 0, "C > 0")
      .Done();
  ATTNPS_RUN_ON_CUDA(x, LayerNormForward(x, gamma, beta, eps, y, mean, rstd));
  const int64_t cols = c.value();
  const float *xd = x.data(), *w = gamma.data(), *b = beta.data();
  float *yd = y->data(), *md = mean->data(), *rd = rstd->data();
  ParallelFor(n.value(), 8 * cols, [&](int64_t r) {
    LayerNormRow(xd + r * cols, w, b, eps, cols, yd + r * cols, md + r, rd + r);
  });
}

void LayerNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                       const Tensor& dy, Tensor* dx, Tensor* dgamma, Tensor* dbeta) {
  Dim n("N"), c("C");
  ShapeCheck check("layer_norm_backward", x.device());
  check.Arg("x", x, {&n, &c}).Arg("gamma", gamma, {&c});
  check.Arg("mean", mean, {&n}).Arg("rstd", rstd, {&n}).Arg("dy", dy, {&n, &c});
  if (dx) check.Arg("dx", *dx, {&n, &c});
  if (dgamma) check.Arg("dgamma", *dgamma, {&c});
  if (dbeta) check.Arg("dbeta", *dbeta, {&c});
  check.Done();
  ATTNPS_RUN_ON_CUDA(x, LayerNormBackward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta));
  const int64_t rows = n.value(), cols = c.value();
  const float *xd = x.data(), *w = gamma.data(), *md = mean.data(), *rd = rstd.data();
  const float* g = dy.data();
  float* gx = dx ? dx->data() : nullptr;
  const bool params = dgamma || dbeta;
  // Fixed row blocks, each with its own dgamma / dbeta partial sums (added in block order, so
  // the result does not depend on the thread count); dx rows are disjoint across blocks.
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<float> partial(params ? blocks * 2 * cols : 0, 0.0f);
  ParallelFor(blocks, kRowsPerBlock * 12 * cols, [&](int64_t blk) {
    float* pg = params ? partial.data() + blk * 2 * cols : nullptr;
    float* pb = params ? pg + cols : nullptr;
    for (int64_t r = blk * kRowsPerBlock; r < std::min(rows, (blk + 1) * kRowsPerBlock); ++r) {
      const float *xr = xd + r * cols, *gr = g + r * cols;
      const float m = md[r], s = rd[r];
      if (params) LayerNormParamGradRow(xr, gr, m, s, pg, pb, cols);
      if (gx) LayerNormGradRow(xr, gr, w, m, s, gx + r * cols, cols);
    }
  });
  for (int64_t blk = 0; blk < (params ? blocks : 0); ++blk) {
    const float* pg = partial.data() + blk * 2 * cols;
    for (int64_t j = 0; j < cols; ++j) {
      if (dgamma) (*dgamma)[j] += pg[j];
      if (dbeta) (*dbeta)[j] += pg[cols + j];
    }
  }
}

void DropoutForward(const Tensor& x, float rate, uint64_t seed, Mode mode, Tensor* mask, Tensor* y,
                    int64_t first_index) {
  ShapeCheck("dropout_forward", x.device())
      .Like("x", x, x)
      .Like("mask", *mask, x)
      .Like("y", *y, x)
      .Require(rate >= 0.0f && rate < 1.0f, "0 <= rate < 1")
      .Require(first_index >= 0, "first_index >= 0")
      .Done();
  ATTNPS_RUN_ON_CUDA(x, DropoutForward(x, rate, seed, mode, mask, y, first_index));
  const int64_t total = x.numel();
  const float* xd = x.data();
  float *md = mask->data(), *yd = y->data();
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  if (mode == Mode::kInference) {
    ParallelFor(chunks, kChunk, [&](int64_t i) {
      for (int64_t e = i * kChunk; e < std::min(total, (i + 1) * kChunk); ++e) {
        md[e] = 1.0f;
        yd[e] = xd[e];
      }
    });
    return;
  }
  // Element e is kept when its 32 bits (DropoutBits: half of output e / 2 of a splitmix64
  // stream seeded by Mix64(seed)) are >= rate * 2^32.
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(rate) * 4294967296.0);
  const float scale = 1.0f / (1.0f - rate);
  const uint64_t key = Mix64(seed + kGoldenGamma);
  ParallelFor(chunks, 12 * kChunk, [&](int64_t i) {
    DropoutRows(xd, key, threshold, scale, static_cast<uint64_t>(first_index), i * kChunk,
                std::min(total, (i + 1) * kChunk), md, yd);
  });
}

void DropoutBackward(const Tensor& mask, const Tensor& dy, Tensor* dx) {
  ShapeCheck check("dropout_backward", mask.device());
  check.Like("mask", mask, mask).Like("dy", dy, mask);
  if (dx) check.Like("dx", *dx, mask);
  check.Done();
  ATTNPS_RUN_ON_CUDA(mask, DropoutBackward(mask, dy, dx));
  if (!dx) return;
  const int64_t total = mask.numel();
  const float *md = mask.data(), *g = dy.data();
  float* gx = dx->data();
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  ParallelFor(chunks, 2 * kChunk, [&](int64_t i) {
    DropoutGradRows(md, g, i * kChunk, std::min(total, (i + 1) * kChunk), gx);
  });
}

}  // namespace attnps
