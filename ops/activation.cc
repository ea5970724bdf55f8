#include "ops/activation.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/device_dispatch.h"
#include "ops/fast_math.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

constexpr int64_t kChunk = 1 << 14;    // elements per parallel item of the elementwise ops
constexpr int64_t kRowsPerBlock = 32;  // rows per parallel item of the per-channel reductions

// Calls body(begin, end) over [0, n) in chunks, in parallel when worth it.
template <typename Body>
void ForChunks(int64_t n, int64_t cost_per_element, const Body& body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  ParallelFor(chunks, kChunk * cost_per_element,
              [&](int64_t i) { body(i * kChunk, std::min(n, (i + 1) * kChunk)); });
}

// Splits [0, rows) into fixed blocks, calls body(begin, end, acc) with a zeroed accumulator of
// `width` values per block and adds the blocks' accumulators, in block order, to out[width].
// The fixed blocking makes the sums independent of the thread count.
template <typename T, typename Body>
void ReduceRowBlocks(int64_t rows, int64_t width, int64_t cost_per_row, T* out, const Body& body) {
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<T> partial(blocks * width, T(0));
  ParallelFor(blocks, kRowsPerBlock * cost_per_row, [&](int64_t b) {
    body(b * kRowsPerBlock, std::min(rows, (b + 1) * kRowsPerBlock), partial.data() + b * width);
  });
  for (int64_t b = 0; b < blocks; ++b) {
    const T* p = partial.data() + b * width;
    for (int64_t i = 0; i < width; ++i) out[i] += p[i];
  }
}

void CheckUnaryForward(const char* op, const Tensor& x, const Tensor& y) {
  ShapeCheck(op, x.device()).Like("x", x, x).Like("y", y, x).Done();
}

void CheckUnaryBackward(const char* op, const Tensor& y, const Tensor& dy, const Tensor* dx) {
  ShapeCheck check(op, y.device());
  check.Like("y", y, y).Like("dy", dy, y);
  if (dx) check.Like("dx", *dx, y);
  check.Done();
}

// Elementwise kernels over n contiguous values (restrict: lets the compiler vectorize).
void ReluKernel(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
void ReluGradKernel(const float* __restrict y, const float* __restrict g, float* __restrict gx,
                    int64_t n) {
  for (int64_t i = 0; i < n; ++i) gx[i] += y[i] > 0.0f ? g[i] : 0.0f;
}
void SigmoidKernel(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = FastSigmoid(x[i]);
}
void SigmoidGradKernel(const float* __restrict y, const float* __restrict g, float* __restrict gx,
                       int64_t n) {
  for (int64_t i = 0; i < n; ++i) gx[i] += g[i] * y[i] * (1.0f - y[i]);
}
void TanhKernel(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = FastTanh(x[i]);
}
void TanhGradKernel(const float* __restrict y, const float* __restrict g, float* __restrict gx,
                    int64_t n) {
  for (int64_t i = 0; i < n; ++i) gx[i] += g[i] * (1.0f - y[i] * y[i]);
}

}  // namespace

namespace {

// y = kernel(x) elementwise, in parallel chunks; `cost` is the kernel's work per element.
template <typename Kernel>
void UnaryForward(const Tensor& x, Tensor* y, int64_t cost, Kernel kernel) {
  const float* xd = x.data();
  float* yd = y->data();
  ForChunks(x.numel(), cost,
            [&](int64_t begin, int64_t end) { kernel(xd + begin, yd + begin, end - begin); });
}

// dx += kernel(y, dy) elementwise, from the forward output y.
template <typename Kernel>
void UnaryBackward(const Tensor& y, const Tensor& dy, Tensor* dx, int64_t cost, Kernel kernel) {
  if (!dx) return;
  const float *yd = y.data(), *g = dy.data();
  float* gx = dx->data();
  ForChunks(y.numel(), cost, [&](int64_t begin, int64_t end) {
    kernel(yd + begin, g + begin, gx + begin, end - begin);
  });
}

}  // namespace

void ReluForward(const Tensor& x, Tensor* y) {
  CheckUnaryForward("relu_forward", x, *y);
  ATTNPS_RUN_ON_CUDA(x, ReluForward(x, y));
  UnaryForward(x, y, 1, ReluKernel);
}

void ReluBackward(const Tensor& y, const Tensor& dy, Tensor* dx) {
  CheckUnaryBackward("relu_backward", y, dy, dx);
  ATTNPS_RUN_ON_CUDA(y, ReluBackward(y, dy, dx));
  UnaryBackward(y, dy, dx, 2, ReluGradKernel);
}

void SigmoidForward(const Tensor& x, Tensor* y) {
  CheckUnaryForward("sigmoid_forward", x, *y);
  ATTNPS_RUN_ON_CUDA(x, SigmoidForward(x, y));
  UnaryForward(x, y, 20, SigmoidKernel);
}

void SigmoidBackward(const Tensor& y, const Tensor& dy, Tensor* dx) {
  CheckUnaryBackward("sigmoid_backward", y, dy, dx);
  ATTNPS_RUN_ON_CUDA(y, SigmoidBackward(y, dy, dx));
  UnaryBackward(y, dy, dx, 4, SigmoidGradKernel);
}

void TanhForward(const Tensor& x, Tensor* y) {
  CheckUnaryForward("tanh_forward", x, *y);
  ATTNPS_RUN_ON_CUDA(x, TanhForward(x, y));
  UnaryForward(x, y, 20, TanhKernel);
}

void TanhBackward(const Tensor& y, const Tensor& dy, Tensor* dx) {
  CheckUnaryBackward("tanh_backward", y, dy, dx);
  ATTNPS_RUN_ON_CUDA(y, TanhBackward(y, dy, dx));
  UnaryBackward(y, dy, dx, 4, TanhGradKernel);
}

namespace {

// Row kernels over `cols` channels (restrict: lets the compiler vectorize).
void PreluRow(const float* __restrict x, const float* __restrict a, float* __restrict y,
              int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) y[j] = x[j] > 0.0f ? x[j] : a[j] * x[j];
}

void PreluGradRow(const float* __restrict x, const float* __restrict a, const float* __restrict g,
                  float* __restrict gx, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) gx[j] += x[j] > 0.0f ? g[j] : a[j] * g[j];
}

void PreluAlphaGradRow(const float* __restrict x, const float* __restrict g, float* __restrict ga,
                       int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) ga[j] += x[j] > 0.0f ? 0.0f : g[j] * x[j];
}

// Shifted sums s1 += x - x0, s2 += (x - x0)^2, in double.
void DiceStatsRow(const float* __restrict x, const float* __restrict x0, double* __restrict s1,
                  double* __restrict s2, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) {
    const double d = static_cast<double>(x[j] - x0[j]);
    s1[j] += d;
    s2[j] += d * d;
  }
}

void DiceRow(const float* __restrict x, const float* __restrict a, const float* __restrict mean,
             const float* __restrict rstd, float* __restrict y, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) {
    const float p = FastSigmoid((x[j] - mean[j]) * rstd[j]);
    y[j] = x[j] * (a[j] + (1.0f - a[j]) * p);
  }
}

// Accumulates gh = dL/dxhat, gh * xhat and dL/dalpha.
void DiceGradSumsRow(const float* __restrict x, const float* __restrict g,
                     const float* __restrict a, const float* __restrict mean,
                     const float* __restrict rstd, float* __restrict sum_gh,
                     float* __restrict sum_ghx, float* __restrict sum_da, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) {
    const float xhat = (x[j] - mean[j]) * rstd[j];
    const float p = FastSigmoid(xhat);
    const float gx = g[j] * x[j];
    const float gh = gx * (1.0f - a[j]) * p * (1.0f - p);
    sum_gh[j] += gh;
    sum_ghx[j] += gh * xhat;
    sum_da[j] += gx * (1.0f - p);
  }
}

// dx += dy * (a + (1 - a) p) + rstd * (gh - mean_gh - xhat * mean_ghx).
void DiceGradRow(const float* __restrict x, const float* __restrict g, const float* __restrict a,
                 const float* __restrict mean, const float* __restrict rstd,
                 const float* __restrict mean_gh, const float* __restrict mean_ghx,
                 float* __restrict gx, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) {
    const float xhat = (x[j] - mean[j]) * rstd[j];
    const float p = FastSigmoid(xhat);
    const float gh = g[j] * x[j] * (1.0f - a[j]) * p * (1.0f - p);
    gx[j] += g[j] * (a[j] + (1.0f - a[j]) * p) + rstd[j] * (gh - mean_gh[j] - xhat * mean_ghx[j]);
  }
}

// Training statistics: mean and biased variance per channel, in double, from sums shifted by
// the first row (stable when |mean| >> std).
void BatchStatistics(const float* x, int64_t rows, int64_t cols, std::vector<double>* mean,
                     std::vector<double>* var) {
  std::vector<double> sums(2 * cols, 0.0);
  ReduceRowBlocks<double>(rows, 2 * cols, 4 * cols, sums.data(),
                          [&](int64_t begin, int64_t end, double* acc) {
                            for (int64_t r = begin; r < end; ++r)
                              DiceStatsRow(x + r * cols, x, acc, acc + cols, cols);
                          });
  mean->resize(cols);
  var->resize(cols);
  for (int64_t j = 0; j < cols; ++j) {
    const double m = sums[j] / rows;
    (*mean)[j] = x[j] + m;
    (*var)[j] = std::max(sums[cols + j] / rows - m * m, 0.0);
  }
}

}  // namespace

void PreluForward(const Tensor& x, const Tensor& alpha, Tensor* y) {
  Dim n("N"), c("C");
  ShapeCheck("prelu_forward", x.device())
      .Arg("x", x, {&n, &c})
      .Arg("alpha", alpha, {&c})
      .Arg("y", *y, {&n, &c})
      .Done();
  ATTNPS_RUN_ON_CUDA(x, PreluForward(x, alpha, y));
  const int64_t cols = c.value();
  const float *xd = x.data(), *a = alpha.data();
  float* yd = y->data();
  ParallelFor(n.value(), 2 * cols,
              [&](int64_t r) { PreluRow(xd + r * cols, a, yd + r * cols, cols); });
}

void PreluBackward(const Tensor& x, const Tensor& alpha, const Tensor& dy, Tensor* dx,
                   Tensor* dalpha) {
  Dim n("N"), c("C");
  ShapeCheck check("prelu_backward", x.device());
  check.Arg("x", x, {&n, &c}).Arg("alpha", alpha, {&c}).Arg("dy", dy, {&n, &c});
  if (dx) check.Arg("dx", *dx, {&n, &c});
  if (dalpha) check.Arg("dalpha", *dalpha, {&c});
  check.Done();
  ATTNPS_RUN_ON_CUDA(x, PreluBackward(x, alpha, dy, dx, dalpha));
  const int64_t rows = n.value(), cols = c.value();
  const float *xd = x.data(), *a = alpha.data(), *g = dy.data();
  if (dx) {
    float* gx = dx->data();
    ParallelFor(rows, 3 * cols, [&](int64_t r) {
      PreluGradRow(xd + r * cols, a, g + r * cols, gx + r * cols, cols);
    });
  }
  if (dalpha) {
    ReduceRowBlocks<float>(rows, cols, 3 * cols, dalpha->data(),
                           [&](int64_t begin, int64_t end, float* acc) {
                             for (int64_t r = begin; r < end; ++r)
                               PreluAlphaGradRow(xd + r * cols, g + r * cols, acc, cols);
                           });
  }
}

void DiceForward(const Tensor& x, const Tensor& alpha, Mode mode, const DiceOptions& options,
                 Tensor* running_mean, Tensor* running_var, Tensor* y, Tensor* saved_mean,
                 Tensor* saved_rstd) {
  Dim n("N"), c("C");
  ShapeCheck("dice_forward", x.device())
      .Arg("x", x, {&n, &c})
      .Arg("alpha", alpha, {&c})
      .Arg("running_mean", *running_mean, {&c})
      .Arg("running_var", *running_var, {&c})
      .Arg("y", *y, {&n, &c})
      .Arg("saved_mean", *saved_mean, {&c})
      .Arg("saved_rstd", *saved_rstd, {&c})
      .Require(options.eps > 0.0f, "eps > 0")
      .Require(options.momentum >= 0.0f && options.momentum <= 1.0f, "0 <= momentum <= 1")
      .Require(mode == Mode::kInference || n.value() > 0, "N > 0 in training")
      .Done();
  ATTNPS_RUN_ON_CUDA(x, DiceForward(x, alpha, mode, options, running_mean, running_var, y,
                                    saved_mean, saved_rstd));
  const int64_t rows = n.value(), cols = c.value();
  const float* xd = x.data();
  float *mean = saved_mean->data(), *rstd = saved_rstd->data();
  float *rm = running_mean->data(), *rv = running_var->data();
  if (mode == Mode::kTraining) {
    std::vector<double> bmean, bvar;
    BatchStatistics(xd, rows, cols, &bmean, &bvar);
    const double m = options.momentum;
    for (int64_t j = 0; j < cols; ++j) {
      mean[j] = static_cast<float>(bmean[j]);
      rstd[j] = static_cast<float>(1.0 / std::sqrt(bvar[j] + options.eps));
      rm[j] = static_cast<float>((1.0 - m) * rm[j] + m * bmean[j]);
      if (rows > 1) rv[j] = static_cast<float>((1.0 - m) * rv[j] + m * bvar[j] * rows / (rows - 1));
    }
  } else {
    for (int64_t j = 0; j < cols; ++j) {
      mean[j] = rm[j];
      rstd[j] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(rv[j]) + options.eps));
    }
  }
  const float* a = alpha.data();
  float* yd = y->data();
  ParallelFor(rows, 30 * cols,
              [&](int64_t r) { DiceRow(xd + r * cols, a, mean, rstd, yd + r * cols, cols); });
}

void DiceBackward(const Tensor& x, const Tensor& alpha, Mode mode, const Tensor& saved_mean,
                  const Tensor& saved_rstd, const Tensor& dy, Tensor* dx, Tensor* dalpha) {
  Dim n("N"), c("C");
  ShapeCheck check("dice_backward", x.device());
  check.Arg("x", x, {&n, &c}).Arg("alpha", alpha, {&c});
  check.Arg("saved_mean", saved_mean, {&c}).Arg("saved_rstd", saved_rstd, {&c});
  check.Arg("dy", dy, {&n, &c});
  if (dx) check.Arg("dx", *dx, {&n, &c});
  if (dalpha) check.Arg("dalpha", *dalpha, {&c});
  check.Done();
  ATTNPS_RUN_ON_CUDA(x, DiceBackward(x, alpha, mode, saved_mean, saved_rstd, dy, dx, dalpha));
  const int64_t rows = n.value(), cols = c.value();
  const bool training = mode == Mode::kTraining;
  const float *xd = x.data(), *a = alpha.data(), *g = dy.data();
  const float *mean = saved_mean.data(), *rstd = saved_rstd.data();

  // Pass 1: per channel sums of gh = dL/dxhat, gh * xhat, and dalpha.
  std::vector<float> sums(3 * cols, 0.0f);
  if (dalpha || (dx && training)) {
    ReduceRowBlocks<float>(rows, 3 * cols, 35 * cols, sums.data(),
                           [&](int64_t begin, int64_t end, float* acc) {
                             for (int64_t r = begin; r < end; ++r) {
                               DiceGradSumsRow(xd + r * cols, g + r * cols, a, mean, rstd, acc,
                                               acc + cols, acc + 2 * cols, cols);
                             }
                           });
  }
  if (dalpha) {
    float* ga = dalpha->data();
    for (int64_t j = 0; j < cols; ++j) ga[j] += sums[2 * cols + j];
  }
  if (!dx) return;
  // Pass 2. The mean(gh) and mean(gh * xhat) terms (the gradient through the batch mean and
  // variance) exist only in training.
  if (training) {
    const float inv_rows = 1.0f / static_cast<float>(rows);
    for (int64_t j = 0; j < 2 * cols; ++j) sums[j] *= inv_rows;
  } else {
    std::fill(sums.begin(), sums.begin() + 2 * cols, 0.0f);
  }
  const float *mean_gh = sums.data(), *mean_ghx = sums.data() + cols;
  float* gxd = dx->data();
  ParallelFor(rows, 35 * cols, [&](int64_t r) {
    DiceGradRow(xd + r * cols, g + r * cols, a, mean, rstd, mean_gh, mean_ghx, gxd + r * cols,
                cols);
  });
}

}  // namespace attnps
