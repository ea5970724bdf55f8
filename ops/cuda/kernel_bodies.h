// The per-thread bodies of the CUDA ops, as functors callable on the host and the device.
//
// A body's operator()(i) does the work of one index i of its launch: an element, a row or a
// column (each body says which). ops/cuda/device_ops.cu launches them over a grid-stride loop;
// the tests also run them on the host (ForEachOnHost) against the CPU twins, so the math of every
// kernel is checked on machines without a GPU. Pointers are device pointers on the GPU and host
// pointers on the host; a body owns nothing. Gradients are accumulated (+=), as the CPU ops do.
// Shape letters follow the CPU twins: N rows, C or D columns, B batch, T positions.
// This header is plain C++ outside nvcc (no CUDA headers needed).
#ifndef ATTNPS_OPS_CUDA_KERNEL_BODIES_H_
#define ATTNPS_OPS_CUDA_KERNEL_BODIES_H_

#include <cmath>
#include <cstdint>

#include "ops/host_device.h"
#include "ops/random.h"

namespace attnps::cuda {

// Runs body(i) for i in [0, n) on the calling thread: the host twin of a launch.
template <typename Body>
void ForEachOnHost(int64_t n, const Body& body) {
  for (int64_t i = 0; i < n; ++i) body(i);
}

ATTNPS_HD inline float Sigmoid(float x) {
  // Stable both ways: exp of a non-positive argument only.
  const float e = expf(-fabsf(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// y[j * ys] = the softmax of scale * x[j * xs] over the positions j < limit whose mask[j] is
// nonzero (mask null: all valid), 0 at every other position j < n; all 0 when none is valid.
// y may alias x.
ATTNPS_HD inline void SoftmaxInto(const float* x, int64_t xs, const float* mask, int64_t limit,
                                  int64_t n, float scale, float* y, int64_t ys) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < limit; ++j)
    if (mask == nullptr || mask[j] != 0.0f) mx = fmaxf(mx, scale * x[j * xs]);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    const bool valid = j < limit && (mask == nullptr || mask[j] != 0.0f) && mx != -INFINITY;
    y[j * ys] = valid ? expf(scale * x[j * xs] - mx) : 0.0f;
    sum += y[j * ys];
  }
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int64_t j = 0; j < limit; ++j) y[j * ys] *= inv;
}
// g[j] = scale y[j] (g[j] - <g, y>) over j < n, in place (a softmax's gradient, assigned).
ATTNPS_HD inline void SoftmaxGradInPlace(const float* y, int64_t n, float scale, float* g) {
  float dot = 0.0f;
  for (int64_t j = 0; j < n; ++j) dot += y[j] * g[j];
  for (int64_t j = 0; j < n; ++j) g[j] = scale * y[j] * (g[j] - dot);
}

// ---- Elementwise activations (i: element) ------------------------------------------------------

struct ReluForwardBody {
  const float* x;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
};
struct ReluBackwardBody {
  const float *y, *dy;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const { dx[i] += y[i] > 0.0f ? dy[i] : 0.0f; }
};
struct SigmoidForwardBody {
  const float* x;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] = Sigmoid(x[i]); }
};
struct SigmoidBackwardBody {
  const float *y, *dy;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const { dx[i] += dy[i] * y[i] * (1.0f - y[i]); }
};
struct TanhForwardBody {
  const float* x;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] = tanhf(x[i]); }
};
struct TanhBackwardBody {
  const float *y, *dy;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const { dx[i] += dy[i] * (1.0f - y[i] * y[i]); }
};

// x [N, C], alpha [C] (i: element).
struct PreluForwardBody {
  const float *x, *alpha;
  int64_t cols;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] = x[i] > 0.0f ? x[i] : alpha[i % cols] * x[i]; }
};
struct PreluBackwardBody {
  const float *x, *alpha, *dy;
  int64_t cols;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const {
    dx[i] += x[i] > 0.0f ? dy[i] : alpha[i % cols] * dy[i];
  }
};
// i: column; dalpha[c] += sum over rows where x <= 0 of dy * x.
struct PreluAlphaGradBody {
  const float *x, *dy;
  int64_t rows, cols;
  float* dalpha;
  ATTNPS_HD void operator()(int64_t c) const {
    float sum = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r * cols + c;
      sum += x[i] > 0.0f ? 0.0f : dy[i] * x[i];
    }
    dalpha[c] += sum;
  }
};

// ---- Dice (i: column for the statistics, element for the rest) ----------------------------------

// Training statistics of column c: batch mean and biased variance in double from sums shifted by
// the first row; writes mean / rstd and updates the running averages (running_var from the
// unbiased variance, unchanged when rows == 1).
struct DiceTrainStatsBody {
  const float* x;
  int64_t rows, cols;
  float momentum, eps;
  float *mean, *rstd, *running_mean, *running_var;
  ATTNPS_HD void operator()(int64_t c) const {
    double s1 = 0.0, s2 = 0.0;
    const float x0 = x[c];
    for (int64_t r = 0; r < rows; ++r) {
      const double d = static_cast<double>(x[r * cols + c] - x0);
      s1 += d;
      s2 += d * d;
    }
    const double m = s1 / rows;
    double var = s2 / rows - m * m;
    var = var > 0.0 ? var : 0.0;
    const double bmean = x0 + m;
    const double mo = momentum;
    mean[c] = static_cast<float>(bmean);
    rstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
    running_mean[c] = static_cast<float>((1.0 - mo) * running_mean[c] + mo * bmean);
    if (rows > 1)
      running_var[c] =
          static_cast<float>((1.0 - mo) * running_var[c] + mo * var * rows / (rows - 1));
  }
};
struct DiceInferenceStatsBody {
  const float *running_mean, *running_var;
  float eps;
  float *mean, *rstd;
  ATTNPS_HD void operator()(int64_t c) const {
    mean[c] = running_mean[c];
    rstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
  }
};
// y = x (a + (1 - a) p), p = sigmoid((x - mean) rstd).
struct DiceForwardBody {
  const float *x, *alpha, *mean, *rstd;
  int64_t cols;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t c = i % cols;
    const float p = Sigmoid((x[i] - mean[c]) * rstd[c]);
    y[i] = x[i] * (alpha[c] + (1.0f - alpha[c]) * p);
  }
};
// Column c: mean_gh[c] and mean_ghx[c] (gh = dL/dxhat, over the rows; 0 unless `training`),
// and dalpha[c] += sum dy x (1 - p) when dalpha is not null.
struct DiceGradSumsBody {
  const float *x, *dy, *alpha, *mean, *rstd;
  int64_t rows, cols;
  bool training;
  float *mean_gh, *mean_ghx, *dalpha;
  ATTNPS_HD void operator()(int64_t c) const {
    float sum_gh = 0.0f, sum_ghx = 0.0f, sum_da = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r * cols + c;
      const float xhat = (x[i] - mean[c]) * rstd[c];
      const float p = Sigmoid(xhat);
      const float gx = dy[i] * x[i];
      const float gh = gx * (1.0f - alpha[c]) * p * (1.0f - p);
      sum_gh += gh;
      sum_ghx += gh * xhat;
      sum_da += gx * (1.0f - p);
    }
    const float inv_rows = training && rows > 0 ? 1.0f / static_cast<float>(rows) : 0.0f;
    mean_gh[c] = sum_gh * inv_rows;
    mean_ghx[c] = sum_ghx * inv_rows;
    if (dalpha != nullptr) dalpha[c] += sum_da;
  }
};
// dx += dy (a + (1 - a) p) + rstd (gh - mean_gh - xhat mean_ghx).
struct DiceBackwardBody {
  const float *x, *dy, *alpha, *mean, *rstd, *mean_gh, *mean_ghx;
  int64_t cols;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t c = i % cols;
    const float xhat = (x[i] - mean[c]) * rstd[c];
    const float p = Sigmoid(xhat);
    const float a = alpha[c];
    const float gh = dy[i] * x[i] * (1.0f - a) * p * (1.0f - p);
    dx[i] += dy[i] * (a + (1.0f - a) * p) + rstd[c] * (gh - mean_gh[c] - xhat * mean_ghx[c]);
  }
};

// ---- LayerNorm over the last dim of x [N, C] ----------------------------------------------------

// i: row.
struct LayerNormForwardBody {
  const float *x, *gamma, *beta;
  float eps;
  int64_t cols;
  float *y, *mean, *rstd;
  ATTNPS_HD void operator()(int64_t r) const {
    const float* xr = x + r * cols;
    float sum = 0.0f;
    for (int64_t j = 0; j < cols; ++j) sum += xr[j];
    const float m = sum / static_cast<float>(cols);
    float sq = 0.0f;
    for (int64_t j = 0; j < cols; ++j) sq += (xr[j] - m) * (xr[j] - m);
    const float s = 1.0f / sqrtf(sq / static_cast<float>(cols) + eps);
    float* yr = y + r * cols;
    for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - m) * s * gamma[j] + beta[j];
    mean[r] = m;
    rstd[r] = s;
  }
};
// i: row; dx += rstd (gh - mean(gh) - xhat mean(gh xhat)), gh = dy gamma.
struct LayerNormBackwardBody {
  const float *x, *gamma, *mean, *rstd, *dy;
  int64_t cols;
  float* dx;
  ATTNPS_HD void operator()(int64_t r) const {
    const float *xr = x + r * cols, *gr = dy + r * cols;
    const float m = mean[r], s = rstd[r];
    float sum_gh = 0.0f, sum_ghx = 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
      const float gh = gr[j] * gamma[j];
      sum_gh += gh;
      sum_ghx += gh * (xr[j] - m) * s;
    }
    const float mean_gh = sum_gh / static_cast<float>(cols);
    const float mean_ghx = sum_ghx / static_cast<float>(cols);
    float* dr = dx + r * cols;
    for (int64_t j = 0; j < cols; ++j)
      dr[j] += s * (gr[j] * gamma[j] - mean_gh - (xr[j] - m) * s * mean_ghx);
  }
};
// i: column; dgamma[c] += sum dy xhat, dbeta[c] += sum dy (either may be null).
struct LayerNormParamGradBody {
  const float *x, *mean, *rstd, *dy;
  int64_t rows, cols;
  float *dgamma, *dbeta;
  ATTNPS_HD void operator()(int64_t c) const {
    float sw = 0.0f, sb = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r * cols + c;
      sw += dy[i] * (x[i] - mean[r]) * rstd[r];
      sb += dy[i];
    }
    if (dgamma != nullptr) dgamma[c] += sw;
    if (dbeta != nullptr) dbeta[c] += sb;
  }
};

// ---- Masked softmax over rows of [N, T] (i: row) ------------------------------------------------

// y = softmax of scale x over the positions whose mask is nonzero (mask null: all), 0 elsewhere;
// a row with no valid position is all zeros.
struct MaskedSoftmaxForwardBody {
  const float *x, *mask;
  int64_t cols;
  float scale;
  float* y;
  ATTNPS_HD void operator()(int64_t r) const {
    SoftmaxInto(x + r * cols, 1, mask != nullptr ? mask + r * cols : nullptr, cols, cols, scale,
                y + r * cols, 1);
  }
};
// dx += scale y (dy - <dy, y>).
struct MaskedSoftmaxBackwardBody {
  const float *y, *dy;
  int64_t cols;
  float scale;
  float* dx;
  ATTNPS_HD void operator()(int64_t r) const {
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float dot = 0.0f;
    for (int64_t j = 0; j < cols; ++j) dot += yr[j] * gr[j];
    float* dr = dx + r * cols;
    for (int64_t j = 0; j < cols; ++j) dr[j] += scale * yr[j] * (gr[j] - dot);
  }
};

// ---- Masked pooling of x [B, T, D] over T (i: b * D + d) ----------------------------------------

ATTNPS_HD inline float PoolScale(const float* mask_row, int64_t t, bool mean) {
  if (!mean) return 1.0f;
  float count = 0.0f;
  for (int64_t i = 0; i < t; ++i) count += mask_row[i];
  return count > 0.0f ? 1.0f / count : 0.0f;
}
struct MaskedPoolForwardBody {
  const float *x, *mask;
  int64_t t, d;
  bool mean;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / d, j = i % d;
    const float* mr = mask + b * t;
    float sum = 0.0f;
    for (int64_t s = 0; s < t; ++s)
      if (mr[s] != 0.0f) sum += mr[s] * x[(b * t + s) * d + j];
    y[i] = sum * PoolScale(mr, t, mean);
  }
};
struct MaskedPoolBackwardBody {
  const float *mask, *dy;
  int64_t t, d;
  bool mean;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / d, j = i % d;
    const float* mr = mask + b * t;
    const float g = dy[i] * PoolScale(mr, t, mean);
    for (int64_t s = 0; s < t; ++s) dx[(b * t + s) * d + j] += mr[s] * g;
  }
};

// ---- Linear's bias (y [N, O], b [O]) ------------------------------------------------------------

// i: element; y = b broadcast over the rows.
struct BroadcastRowsBody {
  const float* b;
  int64_t cols;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] = b[i % cols]; }
};
// i: column; out[c] += sum over rows of x[r, c].
struct ColumnSumBody {
  const float* x;
  int64_t rows, cols;
  float* out;
  ATTNPS_HD void operator()(int64_t c) const {
    float sum = 0.0f;
    for (int64_t r = 0; r < rows; ++r) sum += x[r * cols + c];
    out[c] += sum;
  }
};

// ---- Binary cross-entropy with logits (i: element) ----------------------------------------------

// terms[i] = w_i (max(x, 0) - x y + log1p(exp(-|x|))) in double (w null: 1).
struct BceTermsBody {
  const float *x, *y, *w;
  double* terms;
  ATTNPS_HD void operator()(int64_t i) const {
    const double l = fmax(static_cast<double>(x[i]), 0.0) - static_cast<double>(x[i]) * y[i] +
                     log1p(exp(-fabs(static_cast<double>(x[i]))));
    terms[i] = w != nullptr ? w[i] * l : l;
  }
};
// dx += w_i scale (sigmoid(x) - y).
struct BceBackwardBody {
  const float *x, *y, *w;
  float scale;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const {
    const float d = scale * (Sigmoid(x[i]) - y[i]);
    dx[i] += w != nullptr ? w[i] * d : d;
  }
};

// ---- Dense optimizers (i: parameter) ------------------------------------------------------------

struct SgdBody {
  float lr, momentum, weight_decay;
  bool nesterov;
  const float* g;
  float *p, *buf;  // buf null when momentum == 0
  ATTNPS_HD void operator()(int64_t i) const {
    const float gi = g[i] + weight_decay * p[i];
    if (buf == nullptr) {
      p[i] -= lr * gi;
      return;
    }
    buf[i] = momentum * buf[i] + gi;
    p[i] -= lr * (nesterov ? gi + momentum * buf[i] : buf[i]);
  }
};
struct AdamBody {
  float b1, b2, eps, step_size, inv_sqrt_bc2, l2, shrink;
  const float* g;
  float *p, *m, *v;
  ATTNPS_HD void operator()(int64_t i) const {
    const float gi = g[i] + l2 * p[i];
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
    p[i] = shrink * p[i] - step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
  }
};
struct AdagradBody {
  float lr, eps;
  const float* g;
  float *p, *acc;
  ATTNPS_HD void operator()(int64_t i) const {
    acc[i] += g[i] * g[i];
    p[i] -= lr * g[i] / (sqrtf(acc[i]) + eps);
  }
};

// ---- The DIN activation unit (ops/din_attention.h; rows r = b * T + t)
// ----------------------------

// i < D*H1: folded_q = Wq + Wd, folded_kp = [Wk - Wd; Wp] from w1 = [Wq; Wk; Wd; Wp].
struct DinFoldBody {
  const float* w1;
  int64_t dh;
  float *folded_q, *folded_kp;
  ATTNPS_HD void operator()(int64_t i) const {
    folded_q[i] = w1[i] + w1[2 * dh + i];
    folded_kp[i] = w1[dh + i] - w1[2 * dh + i];
    folded_kp[dh + i] = w1[3 * dh + i];
  }
};
// i < D*H1: dw1 += the folded gradients unfolded into the q, k, q-k, q*k blocks.
struct DinUnfoldGradBody {
  const float *d_folded_q, *d_folded_kp;
  int64_t dh;
  float* dw1;
  ATTNPS_HD void operator()(int64_t i) const {
    dw1[i] += d_folded_q[i];
    dw1[dh + i] += d_folded_kp[i];
    dw1[2 * dh + i] += d_folded_q[i] - d_folded_kp[i];
    dw1[3 * dh + i] += d_folded_kp[dh + i];
  }
};
// The rows of each sample: padded (off null: sample b owns rows [b*t, (b+1)*t)) or jagged
// (rows [off[b], off[b+1]), sample[r] the sample of row r).
struct SampleRows {
  const int64_t *off, *sample;
  int64_t t;
  ATTNPS_HD int64_t Of(int64_t r) const { return off != nullptr ? sample[r] : r / t; }
  ATTNPS_HD int64_t Begin(int64_t b) const { return off != nullptr ? off[b] : b * t; }
  ATTNPS_HD int64_t End(int64_t b) const { return off != nullptr ? off[b + 1] : (b + 1) * t; }
};

// i < N*D: x [N, 2D] = [k, q * k] (q of the row's sample).
struct DinPairBody {
  const float *q, *k;
  SampleRows rows;
  int64_t d;
  float* x;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t r = i / d, j = i % d;
    x[r * 2 * d + j] = k[i];
    x[r * 2 * d + d + j] = q[rows.Of(r) * d + j] * k[i];
  }
};
// i < N*D, from dx [N, 2D] of x = [k, q * k]: dk += dx_k + dx_qk * q.
struct DinPairGradKBody {
  const float *dx, *q;
  SampleRows rows;
  int64_t d;
  float* dk;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t r = i / d, j = i % d;
    dk[i] += dx[r * 2 * d + j] + dx[r * 2 * d + d + j] * q[rows.Of(r) * d + j];
  }
};
// i < B*D: dq[b, j] += sum over b's rows of dx_qk[r, j] k[r, j].
struct DinPairGradQBody {
  const float *dx, *k;
  SampleRows rows;
  int64_t d;
  float* dq;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / d, j = i % d;
    float sum = 0.0f;
    for (int64_t r = rows.Begin(b); r < rows.End(b); ++r)
      sum += dx[r * 2 * d + d + j] * k[r * d + j];
    dq[i] += sum;
  }
};
// i < N*cols: a = act(a + bias[rows.Of(r) * cols + j]) (one bias row for all: rows.t >= N),
// sigmoid or ReLU.
struct BiasActivateBody {
  const float* bias;
  SampleRows rows;
  int64_t cols;
  bool sigmoid;
  float* a;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t r = i / cols, j = i % cols;
    const float z = a[i] + bias[rows.Of(r) * cols + j];
    a[i] = sigmoid ? Sigmoid(z) : (z > 0.0f ? z : 0.0f);
  }
};
// i < rows*cols: g = outer[r] * inner[j] (outer null: g as it is), times act'(z) through a =
// act(z).
struct TimesActivationGradBody {
  const float *outer, *inner, *a;
  int64_t cols;
  bool sigmoid;
  float* g;
  ATTNPS_HD void operator()(int64_t i) const {
    const float v = outer != nullptr ? outer[i / cols] * inner[i % cols] : g[i];
    g[i] = sigmoid ? v * a[i] * (1.0f - a[i]) : (a[i] > 0.0f ? v : 0.0f);
  }
};
// i < B*cols: out[b, j] = sum over sample b's rows of m [N, cols].
struct GroupRowSumBody {
  const float* m;
  SampleRows rows;
  int64_t cols;
  float* out;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / cols, j = i % cols;
    float sum = 0.0f;
    for (int64_t r = rows.Begin(b); r < rows.End(b); ++r) sum += m[r * cols + j];
    out[i] = sum;
  }
};
// i < B: w over sample b's rows = the softmax of its scores (every row valid).
struct SampleSoftmaxBody {
  const float* scores;
  SampleRows rows;
  float* w;
  ATTNPS_HD void operator()(int64_t b) const {
    const int64_t r0 = rows.Begin(b), n = rows.End(b) - r0;
    SoftmaxInto(scores + r0, 1, nullptr, n, n, 1.0f, w + r0, 1);
  }
};
// i < B: ds over sample b's rows = w (g - <g, w>) (the softmax's gradient, assigned).
struct SampleSoftmaxGradBody {
  const float *w, *g;
  SampleRows rows;
  float* ds;
  ATTNPS_HD void operator()(int64_t b) const {
    const int64_t r0 = rows.Begin(b), n = rows.End(b) - r0;
    for (int64_t r = r0; r < r0 + n; ++r) ds[r] = g[r];
    SoftmaxGradInPlace(w + r0, n, 1.0f, ds + r0);
  }
};
// i < B*D: pooled[b, j] = sum over b's rows of w[r] k[r, j].
struct SampleWeightedSumBody {
  const float *k, *w;
  SampleRows rows;
  int64_t d;
  float* pooled;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / d, j = i % d;
    float sum = 0.0f;
    for (int64_t r = rows.Begin(b); r < rows.End(b); ++r) sum += w[r] * k[r * d + j];
    pooled[i] = sum;
  }
};
// i < B*D: dk[r, j] += w[r] d_pooled[b, j] over b's rows.
struct SampleWeightedSumGradBody {
  const float *w, *d_pooled;
  SampleRows rows;
  int64_t d;
  float* dk;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / d, j = i % d;
    for (int64_t r = rows.Begin(b); r < rows.End(b); ++r) dk[r * d + j] += w[r] * d_pooled[i];
  }
};
// i < N: the weights' gradient g = d_weights + <d_pooled[b], k[r]> (d_weights null: 0).
struct DinWeightGradBody {
  const float *k, *d_pooled, *d_weights;
  SampleRows rows;
  int64_t d;
  float* g;
  ATTNPS_HD void operator()(int64_t i) const {
    const float* kr = k + i * d;
    const float* dp = d_pooled + rows.Of(i) * d;
    float sum = d_weights != nullptr ? d_weights[i] : 0.0f;
    for (int64_t j = 0; j < d; ++j) sum += dp[j] * kr[j];
    g[i] = sum;
  }
};
// i: element; y = mask != 0 ? x : 0.
struct MaskSelectBody {
  const float *x, *mask;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] = mask[i] != 0.0f ? x[i] : 0.0f; }
};
// i: element; y = value.
struct FillBody {
  float value;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] = value; }
};

// ---- GRU / AUGRU / AGRU cells (ops/rnn.h; rows r of B, positions s of T, j < H)
// ------------------

// How the attention a enters the update gate: not at all (GRU), scaling it (AUGRU, u' = a u), in
// its place (AGRU, u' = a), or raising it (the DIEN code's AUGRU, u' = 1 - (1 - a)(1 - u)).
enum class GruGate { kGru, kAugru, kAgru, kAugruOfficial };

// The update gate the cell applies, u', and its partial derivatives du'/du and du'/da.
struct GateMix {
  float ua, d_u, d_a;
};
ATTNPS_HD inline GateMix MixGate(GruGate gate, float u, float a) {
  switch (gate) {
    case GruGate::kAgru:
      return {a, 0.0f, 1.0f};
    case GruGate::kAugruOfficial:
      return {u + a - a * u, 1.0f - a, 1.0f - u};
    default:
      return {a * u, a, u};  // kGru (a = 1), kAugru
  }
}

// i < B*H: h_prev[r, 0, j] = h0[r, j] (h0 null: 0).
struct GruInitialStateBody {
  const float* h0;
  int64_t t, h;
  float* h_prev;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t r = i / h, j = i % h;
    h_prev[r * t * h + j] = h0 != nullptr ? h0[i] : 0.0f;
  }
};
// i < B*H at position s: gates u, r, c, the state (frozen where the mask is 0) and the next
// position's h_prev, from x_proj = x Wx + b and h_proj = h_prev Wh.
struct GruCellForwardBody {
  GruGate gate;
  int64_t s, t, h;
  const float *x_proj, *h_proj, *mask, *attention;  // attention null: 1
  float *h_prev, *gates, *states;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t r = i / h, j = i % h, idx = r * t + s, h3 = 3 * h;
    const float* xp = x_proj + idx * h3;
    const float* hp = h_proj + idx * h3;
    const float prev = h_prev[idx * h + j];
    const float a = attention != nullptr ? attention[idx] : 1.0f;
    const float u = Sigmoid(xp[j] + hp[j]);
    const float rr = Sigmoid(xp[h + j] + hp[h + j]);
    const float c = tanhf(xp[2 * h + j] + rr * hp[2 * h + j]);
    const float candidate = prev + MixGate(gate, u, a).ua * (c - prev);
    float* g = gates + idx * h3;
    g[j] = u;
    g[h + j] = rr;
    g[2 * h + j] = c;
    const float out = prev + mask[idx] * (candidate - prev);
    states[idx * h + j] = out;
    if (s + 1 < t) h_prev[(idx + 1) * h + j] = out;
  }
};
// i < B*H at position s: back through the cell. carry [B, H] holds the gradient reaching h_s from
// later positions and leaves with the direct part of dL/dh_{s-1}; writes d_x_proj and d_h_proj
// at s, and da_terms[i] (the attention gradient's term of j, summed over j by the caller).
struct GruCellBackwardBody {
  GruGate gate;
  int64_t s, t, h;
  const float *h_proj, *h_prev, *gates, *d_states, *mask, *attention;
  float *carry, *d_x_proj, *d_h_proj, *da_terms;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t r = i / h, j = i % h, idx = r * t + s, h3 = 3 * h;
    const float* hp = h_proj + idx * h3;
    const float* g = gates + idx * h3;
    const float prev = h_prev[idx * h + j];
    const float m = mask[idx];
    const float a = attention != nullptr ? attention[idx] : 1.0f;
    const float u = g[j], rr = g[h + j], c = g[2 * h + j];
    const float total = d_states[idx * h + j] + carry[i];
    const float d_candidate = m * total;
    const GateMix mix = MixGate(gate, u, a);
    const float d_ua = d_candidate * (c - prev);
    const float dzu = d_ua * mix.d_u * u * (1.0f - u);
    const float dzc = d_candidate * mix.ua * (1.0f - c * c);
    const float dzr = dzc * hp[2 * h + j] * rr * (1.0f - rr);
    float* dxp = d_x_proj + idx * h3;
    float* dhp = d_h_proj + idx * h3;
    dxp[j] = dzu;
    dxp[h + j] = dzr;
    dxp[2 * h + j] = dzc;
    dhp[j] = dzu;
    dhp[h + j] = dzr;
    dhp[2 * h + j] = dzc * rr;
    carry[i] = (1.0f - m) * total + d_candidate * (1.0f - mix.ua);
    if (da_terms != nullptr) da_terms[i] = d_ua * mix.d_a;
  }
};
// i < rows: out[i * stride + offset] += sum of row i of m [rows, cols].
struct RowSumIntoBody {
  const float* m;
  int64_t cols, stride, offset;
  float* out;
  ATTNPS_HD void operator()(int64_t i) const {
    float sum = 0.0f;
    for (int64_t j = 0; j < cols; ++j) sum += m[i * cols + j];
    out[i * stride + offset] += sum;
  }
};
// i: element; y += x.
struct AddBody {
  const float* x;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const { y[i] += x[i]; }
};

// ---- Attention over per-head matrices (ops/attention.h)
// ------------------------------------------

// The per-head matrices of columns [col0, col0 + heads*dh) of a [B, T, W] tensor, in place:
// matrix (b, h) starts at row b*T, column col0 + h*dh, rows `stride` (= W) apart.
struct HeadLayout {
  float* data;  // null: absent
  int64_t t, dh, heads, stride;
  ATTNPS_HD float* at(int64_t b, int64_t h) const { return data + b * t * stride + h * dh; }
};
// i: row R of p [B, H, Tq, T] (R = (b*H + h)*Tq + q): p = softmax of scale p over the keys whose
// mask (row b; null: all) is nonzero and, when causal, j <= q; 0 elsewhere.
struct AttentionSoftmaxBody {
  const float* mask;
  int64_t heads, tq, t;
  bool causal;
  float scale;
  float* p;
  ATTNPS_HD void operator()(int64_t r) const {
    const int64_t b = r / (heads * tq), qi = r % tq;
    SoftmaxInto(p + r * t, 1, mask != nullptr ? mask + b * t : nullptr, causal ? qi + 1 : t, t,
                scale, p + r * t, 1);
  }
};
// i: row of [N, T]; g = scale y (g - <g, y>) in place (the softmax's gradient, assigned).
struct SoftmaxGradInPlaceBody {
  const float* y;
  int64_t t;
  float scale;
  float* g;
  ATTNPS_HD void operator()(int64_t r) const { SoftmaxGradInPlace(y + r * t, t, scale, g + r * t); }
};
// i < rows*width: dst[r, dst_col0 + c] (+)= src[r, src_col0 + c].
struct CopyColumnsBody {
  const float* src;
  int64_t src_cols, src_col0;
  float* dst;
  int64_t dst_cols, dst_col0, width;
  bool accumulate;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t r = i / width, c = i % width;
    const float v = src[r * src_cols + src_col0 + c];
    float& d = dst[r * dst_cols + dst_col0 + c];
    d = accumulate ? d + v : v;
  }
};

// ---- Jagged histories (ops/jagged.h; off [B + 1] int64 row offsets in the launch's memory)
// -------

// i < B*D: y[b, j] = sum of x[r, j] over sample b's rows.
struct SegmentSumBody {
  const float* x;
  const int64_t* off;
  int64_t d;
  float* y;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / d, j = i % d;
    float sum = 0.0f;
    for (int64_t r = off[b]; r < off[b + 1]; ++r) sum += x[r * d + j];
    y[i] = sum;
  }
};
// i < B*D: dx[r, j] += dy[b, j] at every row r of sample b.
struct SegmentSumGradBody {
  const float* dy;
  const int64_t* off;
  int64_t d;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / d, j = i % d;
    for (int64_t r = off[b]; r < off[b + 1]; ++r) dx[r * d + j] += dy[i];
  }
};
// i < B*T*D: padded[b, s, j] = x[off[b] + s, j] within sample b's length, else 0.
struct JaggedToPaddedBody {
  const float* x;
  const int64_t* off;
  int64_t t, d;
  float* padded;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / (t * d), s = (i / d) % t, j = i % d;
    padded[i] = s < off[b + 1] - off[b] ? x[(off[b] + s) * d + j] : 0.0f;
  }
};
// i < B*T: the prefix mask, 1 within sample b's length.
struct PrefixMaskBody {
  const int64_t* off;
  int64_t t;
  float* mask;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / t, s = i % t;
    mask[i] = s < off[b + 1] - off[b] ? 1.0f : 0.0f;
  }
};
// i < B*T*D: dx[off[b] + s, j] += dpadded[b, s, j] within sample b's length.
struct PaddedToJaggedAddBody {
  const float* dpadded;
  const int64_t* off;
  int64_t t, d;
  float* dx;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / (t * d), s = (i / d) % t, j = i % d;
    if (s < off[b + 1] - off[b]) dx[(off[b] + s) * d + j] += dpadded[i];
  }
};

// ---- Feature interactions (ops/interaction.h)
// ----------------------------------------------------

// i < B*F: z = the mean over d of e[b, f, :].
struct FieldMeanBody {
  const float* e;
  int64_t d;
  float* z;
  ATTNPS_HD void operator()(int64_t i) const {
    float sum = 0.0f;
    for (int64_t j = 0; j < d; ++j) sum += e[i * d + j];
    z[i] = sum / static_cast<float>(d);
  }
};
// i < B*F*d: out = a[b, f] e.
struct FieldScaleBody {
  const float *e, *a;
  int64_t d;
  float* out;
  ATTNPS_HD void operator()(int64_t i) const { out[i] = a[i / d] * e[i]; }
};
// i < B*F: d_a = a > 0 ? <dout, e> over the field's d : 0.
struct SenetWeightGradBody {
  const float *e, *dout, *a;
  int64_t d;
  float* d_a;
  ATTNPS_HD void operator()(int64_t i) const {
    float dot = 0.0f;
    for (int64_t j = 0; j < d; ++j) dot += dout[i * d + j] * e[i * d + j];
    d_a[i] = a[i] > 0.0f ? dot : 0.0f;
  }
};
// i < B*F*d: de += a dout + dz / d.
struct SenetInputGradBody {
  const float *a, *dout, *dz;
  int64_t d;
  float* de;
  ATTNPS_HD void operator()(int64_t i) const {
    de[i] += a[i / d] * dout[i] + dz[i / d] / static_cast<float>(d);
  }
};
// out = scale sigmoid(g) h.
struct GateForwardBody {
  const float *h, *g;
  float scale;
  float* out;
  ATTNPS_HD void operator()(int64_t i) const { out[i] = scale * Sigmoid(g[i]) * h[i]; }
};
// dh += scale dout s, dg += scale dout s h (1 - s), s = sigmoid(g) (either null).
struct GateBackwardBody {
  const float *h, *g, *dout;
  float scale;
  float *dh, *dg;
  ATTNPS_HD void operator()(int64_t i) const {
    const float s = Sigmoid(g[i]), gs = scale * dout[i] * s;
    if (dh != nullptr) dh[i] += gs;
    if (dg != nullptr) dg[i] += gs * h[i] * (1.0f - s);
  }
};
// i < B*d: pairs[(b, k), c] = v[b, i, c] v[b, j, c] for the pairs k = (i < j) in row-major order.
struct AfmPairsBody {
  const float* v;
  int64_t f, d;
  float* pairs;
  ATTNPS_HD void operator()(int64_t idx) const {
    const int64_t b = idx / d, c = idx % d, np = f * (f - 1) / 2;
    const float* vb = v + b * f * d;
    float* p = pairs + b * np * d + c;
    for (int64_t i = 0; i < f; ++i)
      for (int64_t j = i + 1; j < f; ++j, p += d) *p = vb[i * d + c] * vb[j * d + c];
  }
};
// i < B: hidden rows relu'd in place, attn = softmax over the pairs of h . hidden, out = the
// attention-weighted sum of the pairs.
struct AfmAttendBody {
  const float *pairs, *h;
  int64_t np, na, d;
  float *hidden, *attn, *out;
  ATTNPS_HD void operator()(int64_t b) const {
    float* a = attn + b * np;
    for (int64_t k = 0; k < np; ++k) {
      float* hk = hidden + (b * np + k) * na;
      float dot = 0.0f;
      for (int64_t c = 0; c < na; ++c) {
        hk[c] = hk[c] > 0.0f ? hk[c] : 0.0f;
        dot += h[c] * hk[c];
      }
      a[k] = dot;
    }
    SoftmaxInto(a, 1, nullptr, np, np, 1.0f, a, 1);
    float* o = out + b * d;
    for (int64_t c = 0; c < d; ++c) o[c] = 0.0f;
    for (int64_t k = 0; k < np; ++k) {
      for (int64_t c = 0; c < d; ++c) o[c] += a[k] * pairs[(b * np + k) * d + c];
    }
  }
};
// i < B: back through the pooling and the softmax: d_scores, d_hidden (through h and the relu)
// and, when d_pairs is not null, the pooling's part of d_pairs.
struct AfmAttendGradBody {
  const float *pairs, *hidden, *attn, *h, *dout;
  int64_t np, na, d;
  float *d_scores, *d_hidden, *d_pairs;
  ATTNPS_HD void operator()(int64_t b) const {
    const float* a = attn + b * np;
    const float* g = dout + b * d;
    float* ds = d_scores + b * np;
    float weighted = 0.0f;
    for (int64_t k = 0; k < np; ++k) {
      float dot = 0.0f;
      for (int64_t c = 0; c < d; ++c) dot += g[c] * pairs[(b * np + k) * d + c];
      ds[k] = dot;
      weighted += a[k] * dot;
    }
    for (int64_t k = 0; k < np; ++k) {
      ds[k] = a[k] * (ds[k] - weighted);
      const int64_t r = b * np + k;
      for (int64_t c = 0; c < na; ++c)
        d_hidden[r * na + c] = hidden[r * na + c] > 0.0f ? ds[k] * h[c] : 0.0f;
      if (d_pairs != nullptr)
        for (int64_t c = 0; c < d; ++c) d_pairs[r * d + c] = a[k] * g[c];
    }
  }
};
// i < B*d: dv[b, i, c] += the pairs' gradients times the other field's value.
struct AfmInputGradBody {
  const float *v, *d_pairs;
  int64_t f, d;
  float* dv;
  ATTNPS_HD void operator()(int64_t idx) const {
    const int64_t b = idx / d, c = idx % d, np = f * (f - 1) / 2;
    const float* vb = v + b * f * d;
    float* dvb = dv + b * f * d;
    const float* g = d_pairs + b * np * d + c;
    for (int64_t i = 0; i < f; ++i)
      for (int64_t j = i + 1; j < f; ++j, g += d) {
        dvb[i * d + c] += *g * vb[j * d + c];
        dvb[j * d + c] += *g * vb[i * d + c];
      }
  }
};

// ---- Multi-interest extraction (ops/multi_interest.h)
// --------------------------------------------

// i < B*T*D: input = h + position[t, :].
struct AddPositionBody {
  const float *h, *position;
  int64_t td;
  float* input;
  ATTNPS_HD void operator()(int64_t i) const { input[i] = h[i] + position[i % td]; }
};
// g *= 1 - y^2 (through y = tanh(z)), in place.
struct TimesTanhGradBody {
  const float* y;
  float* g;
  ATTNPS_HD void operator()(int64_t i) const { g[i] *= 1.0f - y[i] * y[i]; }
};
// i < B*K: attention[b, k, :] = masked softmax over T of scores[b, :, k] (scores [B, T, K]); a
// fully masked sample gets zeros.
struct SoftmaxOverTBody {
  const float *scores, *mask;
  int64_t t, k;
  float* attention;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / k, j = i % k;
    SoftmaxInto(scores + b * t * k + j, k, mask + b * t, t, t, 1.0f, attention + i * t, 1);
  }
};
// i < B*K: d_scores[b, :, k] = A (dA - <A, dA>).
struct SoftmaxOverTGradBody {
  const float *attention, *d_attention;
  int64_t t, k;
  float* d_scores;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / k, j = i % k;
    const float *a = attention + i * t, *da = d_attention + i * t;
    float dot = 0.0f;
    for (int64_t s = 0; s < t; ++s) dot += a[s] * da[s];
    for (int64_t s = 0; s < t; ++s) d_scores[(b * t + s) * k + j] = a[s] * (da[s] - dot);
  }
};
ATTNPS_HD inline void SquashInto(const float* s, int64_t n, float* v) {
  float norm2 = 0.0f;
  for (int64_t e = 0; e < n; ++e) norm2 += s[e] * s[e];
  const float scale = norm2 > 0.0f ? sqrtf(norm2) / (1.0f + norm2) : 0.0f;
  for (int64_t e = 0; e < n; ++e) v[e] = scale * s[e];
}
// i < B*K: s[b, k] = sum_t c[b, k, t] u_hat[b, t, k] and v = squash(s).
struct RoutedCapsulesBody {
  const float *u_hat, *coupling;
  int64_t t, k, dc;
  float *s, *v;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t b = i / k, j = i % k;
    float* si = s + i * dc;
    for (int64_t e = 0; e < dc; ++e) si[e] = 0.0f;
    for (int64_t p = 0; p < t; ++p) {
      const float w = coupling[i * t + p];
      if (w == 0.0f) continue;
      const float* u = u_hat + ((b * t + p) * k + j) * dc;
      for (int64_t e = 0; e < dc; ++e) si[e] += w * u[e];
    }
    SquashInto(si, dc, v + i * dc);
  }
};
// i < B*K: ds = J_squash(s)^T dv (0 at s = 0).
struct SquashGradBody {
  const float *s, *dv;
  int64_t dc;
  float* ds;
  ATTNPS_HD void operator()(int64_t i) const {
    const float *si = s + i * dc, *g = dv + i * dc;
    float norm2 = 0.0f, dot = 0.0f;
    for (int64_t e = 0; e < dc; ++e) {
      norm2 += si[e] * si[e];
      dot += si[e] * g[e];
    }
    float* o = ds + i * dc;
    if (!(norm2 > 0.0f)) {
      for (int64_t e = 0; e < dc; ++e) o[e] = 0.0f;
      return;
    }
    const float norm = sqrtf(norm2), denom = 1.0f + norm2;
    const float f = norm / denom, h = (1.0f - norm2) / (norm * denom * denom) * dot;
    for (int64_t e = 0; e < dc; ++e) o[e] = f * g[e] + h * si[e];
  }
};
// i < B*T*K*Dc: d_u_hat[b, t, k, e] += c[b, k, t] ds[b, k, e].
struct RoutedCapsulesGradBody {
  const float *coupling, *ds;
  int64_t t, k, dc;
  float* d_u_hat;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t e = i % dc, j = (i / dc) % k, p = (i / (dc * k)) % t, b = i / (dc * k * t);
    d_u_hat[i] += coupling[(b * k + j) * t + p] * ds[(b * k + j) * dc + e];
  }
};
// i < B: the routing of sample b (`iterations` rounds; see DynamicRoutingCoefficients), with
// logits [B, K, T] and caps [B, K, Dc] as scratch.
struct DynamicRoutingBody {
  const float *u_hat, *mask;
  int64_t t, k, dc;
  int iterations;
  float *logits, *caps, *coupling;
  ATTNPS_HD void operator()(int64_t b) const {
    const float* u = u_hat + b * t * k * dc;
    const float* m = mask + b * t;
    float* lg = logits + b * k * t;
    float* c = coupling + b * k * t;
    float* v = caps + b * k * dc;
    for (int64_t i = 0; i < k * t; ++i) lg[i] = 0.0f;
    for (int it = 0; it < iterations; ++it) {
      for (int64_t p = 0; p < t; ++p) {
        // Softmax over the K interests at a valid position; 0 at padding.
        SoftmaxInto(lg + p, t, nullptr, m[p] != 0.0f ? k : 0, k, 1.0f, c + p, t);
      }
      if (it + 1 == iterations) break;
      for (int64_t j = 0; j < k; ++j) {
        float* vj = v + j * dc;
        for (int64_t e = 0; e < dc; ++e) vj[e] = 0.0f;
        for (int64_t p = 0; p < t; ++p) {
          const float w = c[j * t + p];
          if (w == 0.0f) continue;
          for (int64_t e = 0; e < dc; ++e) vj[e] += w * u[(p * k + j) * dc + e];
        }
        SquashInto(vj, dc, vj);
      }
      for (int64_t p = 0; p < t; ++p)
        for (int64_t j = 0; j < k; ++j) {
          float dot = 0.0f;
          for (int64_t e = 0; e < dc; ++e) dot += u[(p * k + j) * dc + e] * v[j * dc + e];
          lg[j * t + p] += dot;
        }
    }
  }
};

// ---- Losses (ops/loss.h)
// -------------------------------------------------------------------------

ATTNPS_HD inline float Softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

// i < B: probs row b [1 + S] holds u_b . neg_s in columns 1..S (a GEMM's output); it becomes the
// softmax of the corrected logits [u_b . pos_b - log_q_pos_b, u_b . neg_s - log_q_neg_s] (a
// negative whose id is the positive's gets -inf when pos_ids is not null); loss[b] = its
// cross-entropy with class 0.
struct SampledSoftmaxRowBody {
  const float *u, *pos, *log_q_pos, *log_q_neg;
  const int64_t *pos_ids, *neg_ids;
  int64_t d, s;
  float* probs;
  double* loss;
  ATTNPS_HD void operator()(int64_t b) const {
    const int64_t cols = s + 1;
    float* row = probs + b * cols;
    float dot = 0.0f;
    for (int64_t c = 0; c < d; ++c) dot += u[b * d + c] * pos[b * d + c];
    row[0] = dot - log_q_pos[b];
    float mx = row[0];
    for (int64_t j = 0; j < s; ++j) {
      row[1 + j] -= log_q_neg[j];
      if (pos_ids != nullptr && neg_ids[j] == pos_ids[b]) row[1 + j] = -INFINITY;
      mx = fmaxf(mx, row[1 + j]);
    }
    const float target = row[0];
    float sum = 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
      row[j] = row[j] == -INFINITY ? 0.0f : expf(row[j] - mx);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < cols; ++j) row[j] *= inv;
    loss[b] = static_cast<double>(mx) + log(static_cast<double>(sum)) - target;
  }
};
// i < B: d_logits row b = scale (probs - onehot(0)).
struct SampledSoftmaxGradRowBody {
  const float* probs;
  int64_t cols;
  float scale;
  float* d_logits;
  ATTNPS_HD void operator()(int64_t b) const {
    for (int64_t j = 0; j < cols; ++j) d_logits[b * cols + j] = scale * probs[b * cols + j];
    d_logits[b * cols] -= scale;
  }
};
// i < B*D: du += g0[b] pos, dpos += g0[b] u (either null), g0 = d_logits[b, 0].
struct PositiveGradBody {
  const float *u, *pos, *d_logits;
  int64_t d, cols;
  float *du, *dpos;
  ATTNPS_HD void operator()(int64_t i) const {
    const float g0 = d_logits[(i / d) * cols];
    if (du != nullptr) du[i] += g0 * pos[i];
    if (dpos != nullptr) dpos[i] += g0 * u[i];
  }
};
// i < B*T: the DIEN auxiliary loss's terms of pair i: loss[i] = m (softplus(-h.e_pos) +
// softplus(h.e_neg)), count[i] = m.
struct DienAuxTermsBody {
  const float *h, *e_pos, *e_neg, *mask;
  int64_t d;
  double *loss, *count;
  ATTNPS_HD void operator()(int64_t i) const {
    const float m = mask[i];
    count[i] = m;
    if (m == 0.0f) {
      loss[i] = 0.0;
      return;
    }
    float xp = 0.0f, xn = 0.0f;
    for (int64_t c = 0; c < d; ++c) {
      xp += h[i * d + c] * e_pos[i * d + c];
      xn += h[i * d + c] * e_neg[i * d + c];
    }
    loss[i] = m * (static_cast<double>(Softplus(-xp)) + Softplus(xn));
  }
};
// i < B*T: its gradients, scale = dloss / sum(mask); dh, de_pos, de_neg accumulate (nullable).
struct DienAuxGradBody {
  const float *h, *e_pos, *e_neg, *mask;
  int64_t d;
  float scale;
  float *dh, *de_pos, *de_neg;
  ATTNPS_HD void operator()(int64_t i) const {
    const float m = mask[i];
    if (m == 0.0f) return;
    const float *hr = h + i * d, *pr = e_pos + i * d, *nr = e_neg + i * d;
    float xp = 0.0f, xn = 0.0f;
    for (int64_t c = 0; c < d; ++c) {
      xp += hr[c] * pr[c];
      xn += hr[c] * nr[c];
    }
    const float gp = scale * m * (Sigmoid(xp) - 1.0f), gn = scale * m * Sigmoid(xn);
    for (int64_t c = 0; c < d; ++c) {
      if (dh != nullptr) dh[i * d + c] += gp * pr[c] + gn * nr[c];
      if (de_pos != nullptr) de_pos[i * d + c] += gp * hr[c];
      if (de_neg != nullptr) de_neg[i * d + c] += gn * hr[c];
    }
  }
};

// ---- Additive attention (ops/attention.h; i: sample b) -----------------------------------------

// hidden[b, t] = tanh(hidden + q_term[b]) and weights[b, t] = v . hidden at valid positions
// (hidden 0 and weight 0 at padding), then weights[b] = their masked softmax (mask null: all).
struct AdditiveScoresBody {
  const float *q_term, *v, *mask;
  int64_t t, a;
  float *hidden, *weights;
  ATTNPS_HD void operator()(int64_t b) const {
    const float* m = mask != nullptr ? mask + b * t : nullptr;
    float* w = weights + b * t;
    for (int64_t s = 0; s < t; ++s) {
      float* h = hidden + (b * t + s) * a;
      if (m != nullptr && m[s] == 0.0f) {
        for (int64_t j = 0; j < a; ++j) h[j] = 0.0f;
        w[s] = 0.0f;
        continue;
      }
      float score = 0.0f;
      for (int64_t j = 0; j < a; ++j) {
        h[j] = tanhf(h[j] + q_term[b * a + j]);
        score += h[j] * v[j];
      }
      w[s] = score;
    }
    SoftmaxInto(w, 1, m, t, t, 1.0f, w, 1);
  }
};
// d_scores = the softmax's gradient of d_weights in place; d_hidden = d_score v (1 - h^2);
// d_q_term[b] = sum over t of d_hidden.
struct AdditiveScoresGradBody {
  const float *weights, *hidden, *v;
  int64_t t, a;
  float *d_scores, *d_hidden, *d_q_term;
  ATTNPS_HD void operator()(int64_t b) const {
    const float* w = weights + b * t;
    float* ds = d_scores + b * t;
    SoftmaxGradInPlace(w, t, 1.0f, ds);
    float* dq = d_q_term + b * a;
    for (int64_t j = 0; j < a; ++j) dq[j] = 0.0f;
    for (int64_t s = 0; s < t; ++s) {
      const float* h = hidden + (b * t + s) * a;
      float* dh = d_hidden + (b * t + s) * a;
      for (int64_t j = 0; j < a; ++j) {
        dh[j] = ds[s] * v[j] * (1.0f - h[j] * h[j]);
        dq[j] += dh[j];
      }
    }
  }
};

// ---- Dropout and gradient clipping (i: element)
// --------------------------------------------------

// Element e is kept (mask = scale) when DropoutBits(key, base + e) >= threshold, else mask = 0;
// y = x * mask: the CPU twin's mask, bit for bit.
struct DropoutBody {
  const float* x;
  uint64_t key, threshold, base;
  float scale;
  float *mask, *y;
  ATTNPS_HD void operator()(int64_t e) const {
    const float m = DropoutBits(key, base + static_cast<uint64_t>(e)) >= threshold ? scale : 0.0f;
    mask[e] = m;
    y[e] = x[e] * m;
  }
};
// dx += dy * mask.
struct TimesMaskBody {
  const float *mask, *dy;
  float* dx;
  ATTNPS_HD void operator()(int64_t e) const { dx[e] += dy[e] * mask[e]; }
};
// terms = x^2 in double.
struct SquareTermsBody {
  const float* x;
  double* terms;
  ATTNPS_HD void operator()(int64_t i) const {
    terms[i] = static_cast<double>(x[i]) * static_cast<double>(x[i]);
  }
};
// i < batch*m*n: C = beta C over matrices g of [m, n] at c + g * stride_c, rows ldc apart (a
// GEMM with K = 0; beta = 0 writes zeros, as BLAS does).
struct ScaleMatricesBody {
  float beta;
  int64_t m, n, ldc, stride_c;
  float* c;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t g = i / (m * n), r = (i / n) % m, col = i % n;
    float& v = c[g * stride_c + r * ldc + col];
    v = beta == 0.0f ? 0.0f : beta * v;
  }
};
// x *= factor.
struct ScaleBody {
  float factor;
  float* x;
  ATTNPS_HD void operator()(int64_t i) const { x[i] *= factor; }
};

// ---- Duplicate-key gradient sum (the GPU worker, before the copy back) --------------------------

// grads [L, D] of L lookups, `order` the lookup indices grouped by key (int32), `starts` [U + 1]
// each unique key's range in `order`. i: u * D + d; out [U, D] = the key's summed gradient, in
// the order of `order` (deterministic).
struct SumDuplicateRowsBody {
  const float* grads;
  const int32_t *order, *starts;
  int64_t d;
  float* out;
  ATTNPS_HD void operator()(int64_t i) const {
    const int64_t u = i / d, j = i % d;
    float sum = 0.0f;
    for (int32_t k = starts[u]; k < starts[u + 1]; ++k) sum += grads[order[k] * d + j];
    out[i] = sum;
  }
};

}  // namespace attnps::cuda

#endif  // ATTNPS_OPS_CUDA_KERNEL_BODIES_H_
