#include "ops/loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "ops/blas.h"
#include "ops/device_dispatch.h"
#include "ops/fast_math.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

// log(1 + exp(x)) without overflow.
inline float Softplus(float x) { return std::max(x, 0.0f) + std::log1p(std::exp(-std::fabs(x))); }

// sigmoid(x) without overflow for any |x|.
inline float StableSigmoid(float x) {
  const float e = std::exp(-std::fabs(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

int64_t CheckBce(ShapeCheck* check, const Tensor& logits, const Tensor& labels,
                 const Tensor& weights) {
  Dim n("N");
  check->Arg("logits", logits, {&n}).Arg("labels", labels, {&n}).Optional("weights", weights, {&n});
  return n.value();
}

struct SoftmaxSizes {
  int64_t b, d, s;
};

SoftmaxSizes CheckSampledSoftmax(ShapeCheck* check, const Tensor& u, const Tensor& pos,
                                 const Tensor& neg, const Tensor& log_q_pos,
                                 const Tensor& log_q_neg, const SampledSoftmaxWorkspace& ws) {
  Dim b("B"), d("D"), s("S"), s1("1+S");
  check->Arg("u", u, {&b, &d}).Arg("pos", pos, {&b, &d}).Arg("neg", neg, {&s, &d});
  check->Arg("log_q_pos", log_q_pos, {&b}).Arg("log_q_neg", log_q_neg, {&s});
  s1.Bind(s.value() + 1);
  check->Arg("ws.probs", ws.probs, {&b, &s1});
  return {b.value(), d.value(), s.value()};
}

struct SeqSizes {
  int64_t b, t, d;
};

SeqSizes CheckDien(ShapeCheck* check, const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                   const Tensor& mask) {
  Dim b("B"), t("T"), d("D");
  check->Arg("h", h, {&b, &t, &d}).Arg("e_pos", e_pos, {&b, &t, &d});
  check->Arg("e_neg", e_neg, {&b, &t, &d}).Arg("mask", mask, {&b, &t});
  return {b.value(), t.value(), d.value()};
}

}  // namespace

// ---- Binary cross-entropy with logits ----------------------------------------------------------

double BceWithLogitsForward(const Tensor& logits, const Tensor& labels, const Tensor& weights) {
  ShapeCheck check("bce_with_logits_forward", logits.device());
  const int64_t n = CheckBce(&check, logits, labels, weights);
  check.Done();
  ATTNPS_RETURN_ON_CUDA(logits, BceWithLogitsForward(logits, labels, weights));
  if (n == 0) return 0.0;
  const float* x = logits.data();
  const float* y = labels.data();
  const float* w = weights.empty() ? nullptr : weights.data();
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double l = std::max(x[i], 0.0f) - x[i] * y[i] + std::log1p(std::exp(-std::fabs(x[i])));
    sum += w ? w[i] * l : l;
  }
  return sum / static_cast<double>(n);
}

void BceWithLogitsBackward(const Tensor& logits, const Tensor& labels, const Tensor& weights,
                           float dloss, Tensor* dlogits) {
  ShapeCheck check("bce_with_logits_backward", logits.device());
  const int64_t n = CheckBce(&check, logits, labels, weights);
  if (dlogits) check.Like("dlogits", *dlogits, logits);
  check.Done();
  ATTNPS_RUN_ON_CUDA(logits, BceWithLogitsBackward(logits, labels, weights, dloss, dlogits));
  if (!dlogits || n == 0) return;
  const float scale = dloss / static_cast<float>(n);
  const float* x = logits.data();
  const float* y = labels.data();
  const float* w = weights.empty() ? nullptr : weights.data();
  float* g = dlogits->data();
  for (int64_t i = 0; i < n; ++i) {
    const float d = scale * (StableSigmoid(x[i]) - y[i]);
    g[i] += w ? w[i] * d : d;
  }
}

void SigmoidProbabilities(const Tensor& logits, Tensor* probs) {
  Dim n("N");
  ShapeCheck("sigmoid_probabilities", logits.device())
      .Arg("logits", logits, {&n})
      .Arg("probs", *probs, {&n})
      .Done();
  ATTNPS_RUN_ON_CUDA(logits, SigmoidProbabilities(logits, probs));
  const float* x = logits.data();
  float* p = probs->data();
  for (int64_t i = 0; i < n.value(); ++i) p[i] = StableSigmoid(x[i]);
}

// ---- Sampled softmax with log-Q correction ------------------------------------------------------

SampledSoftmaxWorkspace SampledSoftmaxWorkspace::Allocate(int64_t b, int64_t s, Device device) {
  return {Tensor::Empty({b, 1 + s}, device), Tensor::Empty({b, 1 + s}, device)};
}

double SampledSoftmaxForward(const Tensor& u, const Tensor& pos, const Tensor& neg,
                             const Tensor& log_q_pos, const Tensor& log_q_neg,
                             const SampledSoftmaxOptions& options, SampledSoftmaxWorkspace* ws) {
  ShapeCheck check("sampled_softmax_forward", u.device());
  const SoftmaxSizes sz = CheckSampledSoftmax(&check, u, pos, neg, log_q_pos, log_q_neg, *ws);
  const bool remove = options.accidental_hits == AccidentalHits::kRemove;
  if (remove) {
    check.Require(static_cast<int64_t>(options.pos_ids.size()) == sz.b,
                  "pos_ids of size B=" + std::to_string(sz.b) + " (got " +
                      std::to_string(options.pos_ids.size()) + ")");
    check.Require(static_cast<int64_t>(options.neg_ids.size()) == sz.s,
                  "neg_ids of size S=" + std::to_string(sz.s) + " (got " +
                      std::to_string(options.neg_ids.size()) + ")");
  }
  check.Done();
  ATTNPS_RETURN_ON_CUDA(u, SampledSoftmaxForward(u, pos, neg, log_q_pos, log_q_neg, options, ws));
  if (sz.b == 0) return 0.0;
  const int64_t d = sz.d, s = sz.s, cols = s + 1;
  float* probs = ws->probs.data();
  if (s > 0) {
    Gemm(false, true, sz.b, s, d, 1.0f, u.data(), d, neg.data(), d, 0.0f, probs + 1, cols);
  }
  const float* lqp = log_q_pos.data();
  const float* lqn = log_q_neg.data();
  std::vector<double> row_loss(sz.b);
  ParallelFor(sz.b, cols * 8 + d * 2, [&](int64_t b) {
    float* row = probs + b * cols;
    row[0] = Dot(u.data() + b * d, pos.data() + b * d, d) - lqp[b];
    for (int64_t j = 0; j < s; ++j) row[1 + j] -= lqn[j];
    if (remove) {
      const int64_t pid = options.pos_ids[b];
      for (int64_t j = 0; j < s; ++j)
        if (options.neg_ids[j] == pid) row[1 + j] = -INFINITY;
    }
    const float max_logit = *std::max_element(row, row + cols);  // finite: row[0] is
    const float target = row[0];
    float sum = 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
      row[j] = row[j] == -INFINITY ? 0.0f : FastExp(row[j] - max_logit);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < cols; ++j) row[j] *= inv;
    row_loss[b] = static_cast<double>(max_logit) + std::log(static_cast<double>(sum)) - target;
  });
  return std::accumulate(row_loss.begin(), row_loss.end(), 0.0) / static_cast<double>(sz.b);
}

void SampledSoftmaxBackward(const Tensor& u, const Tensor& pos, const Tensor& neg,
                            const Tensor& log_q_pos, const Tensor& log_q_neg, float dloss,
                            SampledSoftmaxWorkspace* ws, Tensor* du, Tensor* dpos, Tensor* dneg) {
  ShapeCheck check("sampled_softmax_backward", u.device());
  const SoftmaxSizes sz = CheckSampledSoftmax(&check, u, pos, neg, log_q_pos, log_q_neg, *ws);
  check.Like("ws.d_logits", ws->d_logits, ws->probs);
  if (du) check.Like("du", *du, u);
  if (dpos) check.Like("dpos", *dpos, pos);
  if (dneg) check.Like("dneg", *dneg, neg);
  check.Done();
  ATTNPS_RUN_ON_CUDA(u, SampledSoftmaxBackward(u, pos, neg, dloss, ws, du, dpos, dneg));
  if (sz.b == 0) return;
  const int64_t d = sz.d, s = sz.s, cols = s + 1;
  const float scale = dloss / static_cast<float>(sz.b);
  const float* probs = ws->probs.data();
  float* dl = ws->d_logits.data();
  ParallelFor(sz.b, cols + 4 * d, [&](int64_t b) {
    const float* p = probs + b * cols;
    float* g = dl + b * cols;
    for (int64_t j = 0; j < cols; ++j) g[j] = scale * p[j];
    g[0] -= scale;
    const float* ub = u.data() + b * d;
    const float* pb = pos.data() + b * d;
    if (du) {
      float* o = du->data() + b * d;
      for (int64_t c = 0; c < d; ++c) o[c] += g[0] * pb[c];
    }
    if (dpos) {
      float* o = dpos->data() + b * d;
      for (int64_t c = 0; c < d; ++c) o[c] += g[0] * ub[c];
    }
  });
  if (s == 0) return;
  if (du) Gemm(false, false, sz.b, d, s, 1.0f, dl + 1, cols, neg.data(), d, 1.0f, du->data(), d);
  if (dneg) Gemm(true, false, s, d, sz.b, 1.0f, dl + 1, cols, u.data(), d, 1.0f, dneg->data(), d);
}

// ---- DIEN auxiliary loss
// -------------------------------------------------------------------------

double DienAuxLossForward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                          const Tensor& mask) {
  ShapeCheck check("dien_aux_loss_forward", h.device());
  const SeqSizes sz = CheckDien(&check, h, e_pos, e_neg, mask);
  check.Done();
  ATTNPS_RETURN_ON_CUDA(h, DienAuxLossForward(h, e_pos, e_neg, mask));
  const int64_t t = sz.t, d = sz.d;
  std::vector<double> row_loss(sz.b), row_count(sz.b);
  ParallelFor(sz.b, t * (4 * d + 40), [&](int64_t b) {
    double loss = 0.0, count = 0.0;
    for (int64_t i = 0; i < t; ++i) {
      const float m = mask[b * t + i];
      if (m == 0.0f) continue;
      const int64_t o = (b * t + i) * d;
      const float xp = Dot(h.data() + o, e_pos.data() + o, d);
      const float xn = Dot(h.data() + o, e_neg.data() + o, d);
      loss += m * (static_cast<double>(Softplus(-xp)) + Softplus(xn));
      count += m;
    }
    row_loss[b] = loss;
    row_count[b] = count;
  });
  const double count = std::accumulate(row_count.begin(), row_count.end(), 0.0);
  if (count == 0.0) return 0.0;
  return std::accumulate(row_loss.begin(), row_loss.end(), 0.0) / count;
}

void DienAuxLossBackward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                         const Tensor& mask, float dloss, Tensor* dh, Tensor* de_pos,
                         Tensor* de_neg) {
  ShapeCheck check("dien_aux_loss_backward", h.device());
  const SeqSizes sz = CheckDien(&check, h, e_pos, e_neg, mask);
  if (dh) check.Like("dh", *dh, h);
  if (de_pos) check.Like("de_pos", *de_pos, e_pos);
  if (de_neg) check.Like("de_neg", *de_neg, e_neg);
  check.Done();
  ATTNPS_RUN_ON_CUDA(h, DienAuxLossBackward(h, e_pos, e_neg, mask, dloss, dh, de_pos, de_neg));
  const int64_t t = sz.t, d = sz.d;
  double count = 0.0;
  for (int64_t i = 0; i < mask.numel(); ++i) count += mask[i];
  if (count == 0.0) return;
  const float scale = static_cast<float>(dloss / count);
  ParallelFor(sz.b, t * (10 * d + 40), [&](int64_t b) {
    for (int64_t i = 0; i < t; ++i) {
      const float m = mask[b * t + i];
      if (m == 0.0f) continue;
      const int64_t o = (b * t + i) * d;
      const float* hr = h.data() + o;
      const float* pr = e_pos.data() + o;
      const float* nr = e_neg.data() + o;
      // d/dx softplus(-x) = sigmoid(x) - 1; d/dx softplus(x) = sigmoid(x).
      const float gp = scale * m * (StableSigmoid(Dot(hr, pr, d)) - 1.0f);
      const float gn = scale * m * StableSigmoid(Dot(hr, nr, d));
      if (dh) {
        float* g = dh->data() + o;
        for (int64_t c = 0; c < d; ++c) g[c] += gp * pr[c] + gn * nr[c];
      }
      if (de_pos) {
        float* g = de_pos->data() + o;
        for (int64_t c = 0; c < d; ++c) g[c] += gp * hr[c];
      }
      if (de_neg) {
        float* g = de_neg->data() + o;
        for (int64_t c = 0; c < d; ++c) g[c] += gn * hr[c];
      }
    }
  });
}

}  // namespace attnps
