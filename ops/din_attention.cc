#include "ops/din_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "ops/blas.h"
#include "ops/device_dispatch.h"
#include "ops/din_unit_kernels.h"
#include "ops/fast_math.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"
#include "ops/softmax_row.h"

namespace attnps {

using din_unit::AddColumnSums;
using din_unit::BiasActivate;
using din_unit::BlockGradSlots;
using din_unit::FoldFirstLayer;
using din_unit::LayersBackward;
using din_unit::PartialGrads;
using din_unit::ReduceBlockGrads;
using din_unit::UnfoldFirstLayerGrad;
using din_unit::UpperLayersForward;
using din_unit::ZeroedSlot;

namespace {

struct Sizes {
  int64_t b, t, d, h1, h2;
  int64_t rows() const { return b * t; }
};

Sizes CheckArgs(const char* op, const Tensor& q, const Tensor& k, const Tensor& mask,
                const DinAttentionParams& p, const DinAttentionWorkspace& ws,
                const Tensor& weights) {
  Dim b("B"), t("T"), d("D"), d4("4D"), h1("H1"), h2("H2"), one("1", 1), d2("2D"), bt("B*T");
  ShapeCheck check(op, q.device());
  check.Arg("q", q, {&b, &d}).Arg("k", k, {&b, &t, &d}).Arg("mask", mask, {&b, &t});
  check.Arg("w1", p.w1, {&d4, &h1}).Arg("b1", p.b1, {&h1}).Arg("w2", p.w2, {&h1, &h2});
  check.Arg("b2", p.b2, {&h2}).Arg("w3", p.w3, {&h2, &one}).Arg("b3", p.b3, {&one});
  check.Require(d4.value() == 4 * d.value(), "w1 rows = 4 * D (q, k, q-k, q*k)");
  check.Arg("weights", weights, {&b, &t});
  d2.Bind(2 * d.value());
  bt.Bind(b.value() * t.value());
  check.Arg("ws.folded_q", ws.folded_q, {&d, &h1}).Arg("ws.folded_kp", ws.folded_kp, {&d2, &h1});
  check.Arg("ws.q_term", ws.q_term, {&b, &h1}).Arg("ws.x", ws.x, {&bt, &d2});
  check.Arg("ws.a1", ws.a1, {&bt, &h1}).Arg("ws.a2", ws.a2, {&bt, &h2});
  check.Arg("ws.scores", ws.scores, {&bt});
  check.Done();
  return {b.value(), t.value(), d.value(), h1.value(), h2.value()};
}

void NormalizeRow(const float* scores, const float* mask, int64_t t, AttentionNormalization norm,
                  float* w) {
  if (norm == AttentionNormalization::kNone) {
    for (int64_t j = 0; j < t; ++j) w[j] = mask[j] != 0.0f ? scores[j] : 0.0f;
    return;
  }
  SoftmaxRow(scores, mask, t, t, 1.0f, w);
}

// Rows per block: small enough that a block's activations stay in L2.
constexpr int64_t kBlockRows = 256;

int64_t SamplesPerBlock(const Sizes& s) {
  return std::max<int64_t>(1, kBlockRows / std::max<int64_t>(s.t, 1));
}
int64_t Blocks(const Sizes& s) { return (s.b + SamplesPerBlock(s) - 1) / SamplesPerBlock(s); }

// Calls body(first_sample, end_sample, block) for blocks of whole samples, in parallel.
template <typename Body>
void ForEachBlock(const Sizes& s, const Body& body) {
  const int64_t per_block = SamplesPerBlock(s), blocks = Blocks(s);
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (int64_t i = 0; i < blocks; ++i) {
    body(i * per_block, std::min(s.b, (i + 1) * per_block), i);
  }
}

}  // namespace

DinAttentionParams DinAttentionParams::Zeros(int64_t d, int64_t h1, int64_t h2) {
  return {Tensor::Zeros({4 * d, h1}), Tensor::Zeros({h1}),    Tensor::Zeros({h1, h2}),
          Tensor::Zeros({h2}),        Tensor::Zeros({h2, 1}), Tensor::Zeros({1})};
}

DinAttentionWorkspace DinAttentionWorkspace::Allocate(int64_t b, int64_t t, int64_t d, int64_t h1,
                                                      int64_t h2, Device device) {
  const int64_t bt = b * t;
  DinAttentionWorkspace ws;
  ws.folded_q = Tensor::Empty({d, h1}, device);
  ws.folded_kp = Tensor::Empty({2 * d, h1}, device);
  ws.q_term = Tensor::Empty({b, h1}, device);
  ws.x = Tensor::Empty({bt, 2 * d}, device);
  ws.a1 = Tensor::Empty({bt, h1}, device);
  ws.a2 = Tensor::Empty({bt, h2}, device);
  ws.scores = Tensor::Empty({bt}, device);
  ws.d_a1 = Tensor::Empty({bt, h1}, device);
  ws.d_a2 = Tensor::Empty({bt, h2}, device);
  ws.d_x = Tensor::Empty({bt, 2 * d}, device);
  ws.d_scores = Tensor::Empty({bt}, device);
  ws.d_q_term = Tensor::Empty({b, h1}, device);
  ws.d_folded_q = Tensor::Empty({d, h1}, device);
  return ws;
}

void DinAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                         const DinAttentionParams& params, const DinAttentionOptions& options,
                         DinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled) {
  const Sizes s = CheckArgs("din_attention_forward", q, k, mask, params, *ws, *weights);
  {
    Dim b("B", s.b), d("D", s.d);
    ShapeCheck("din_attention_forward", q.device()).Arg("pooled", *pooled, {&b, &d}).Done();
  }
  ATTNPS_RUN_ON_CUDA(q, DinAttentionForward(q, k, mask, params, options, ws, weights, pooled));
  const int64_t d = s.d, d2 = 2 * s.d, h1 = s.h1, h2 = s.h2, t = s.t;
  FoldFirstLayer(params.w1, s, ws);
  LinearForward(q, ws->folded_q, params.b1, &ws->q_term);
  ForEachBlock(s, [&](int64_t b0, int64_t b1, int64_t) {
    const int64_t r0 = b0 * t, n = (b1 - b0) * t;
    float* x = ws->x.data() + r0 * d2;
    for (int64_t r = 0; r < n; ++r) {
      const float* kr = k.data() + (r0 + r) * d;
      const float* qb = q.data() + ((r0 + r) / t) * d;
      for (int64_t j = 0; j < d; ++j) {
        x[r * d2 + j] = kr[j];
        x[r * d2 + d + j] = qb[j] * kr[j];
      }
    }
    float* a1 = ws->a1.data() + r0 * h1;
    Gemm(false, false, n, h1, d2, 1.0f, x, d2, ws->folded_kp.data(), h1, 0.0f, a1, h1);
    for (int64_t r = 0; r < n; ++r) {
      BiasActivate(a1 + r * h1, ws->q_term.data() + ((r0 + r) / t) * h1, h1, options.activation);
    }
    UpperLayersForward(a1, n, params, s, options.activation, ws->a2.data() + r0 * h2,
                       ws->scores.data() + r0);
    for (int64_t b = b0; b < b1; ++b) {
      float* w = weights->data() + b * t;
      NormalizeRow(ws->scores.data() + b * t, mask.data() + b * t, t, options.normalization, w);
      float* out = pooled->data() + b * d;
      std::fill(out, out + d, 0.0f);
      for (int64_t i = 0; i < t; ++i) {
        const float* kr = k.data() + (b * t + i) * d;
        for (int64_t j = 0; j < d; ++j) out[j] += w[i] * kr[j];
      }
    }
  });
}

namespace {

// d_scores of samples [b0, b1) from the weights' total gradient; adds the pooling's part of dk.
void BackwardThroughPooling(const Tensor& k, const Tensor& mask, const Tensor& weights,
                            const Tensor& d_weights, const Tensor& d_pooled,
                            AttentionNormalization norm, const Sizes& s, int64_t b0, int64_t b1,
                            Tensor* dk, float* d_scores) {
  const int64_t t = s.t, d = s.d;
  for (int64_t b = b0; b < b1; ++b) {
    const float* w = weights.data() + b * t;
    const float* m = mask.data() + b * t;
    const float* dp = d_pooled.data() + b * d;
    float* ds = d_scores + b * t;
    for (int64_t i = 0; i < t; ++i) {
      const float* kr = k.data() + (b * t + i) * d;
      float g = d_weights.empty() ? 0.0f : d_weights[b * t + i];
      for (int64_t j = 0; j < d; ++j) g += dp[j] * kr[j];
      ds[i] = g;
      if (dk) {
        float* dkr = dk->data() + (b * t + i) * d;
        for (int64_t j = 0; j < d; ++j) dkr[j] += w[i] * dp[j];
      }
    }
    if (norm == AttentionNormalization::kNone) {
      for (int64_t i = 0; i < t; ++i) ds[i] = m[i] != 0.0f ? ds[i] : 0.0f;
    } else {
      SoftmaxGradRow<GradMode::kAssign>(w, ds, t, 1.0f, ds);
    }
  }
}

}  // namespace

void DinAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& mask,
                          const DinAttentionParams& params, const DinAttentionOptions& options,
                          const Tensor& weights, const Tensor& d_weights, const Tensor& d_pooled,
                          DinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                          DinAttentionParams* grads) {
  const Sizes s = CheckArgs("din_attention_backward", q, k, mask, params, *ws, weights);
  {
    Dim b("B", s.b), t("T", s.t), d("D", s.d);
    ShapeCheck check("din_attention_backward", q.device());
    check.Optional("d_weights", d_weights, {&b, &t}).Arg("d_pooled", d_pooled, {&b, &d});
    if (dq) check.Like("dq", *dq, q);
    if (dk) check.Like("dk", *dk, k);
    check.Like("grads.w1", grads->w1, params.w1).Like("grads.b1", grads->b1, params.b1);
    check.Like("grads.w2", grads->w2, params.w2).Like("grads.b2", grads->b2, params.b2);
    check.Like("grads.w3", grads->w3, params.w3).Like("grads.b3", grads->b3, params.b3);
    check.Like("ws.d_a1", ws->d_a1, ws->a1).Like("ws.d_a2", ws->d_a2, ws->a2);
    check.Like("ws.d_x", ws->d_x, ws->x).Like("ws.d_scores", ws->d_scores, ws->scores);
    check.Like("ws.d_q_term", ws->d_q_term, ws->q_term);
    check.Like("ws.d_folded_q", ws->d_folded_q, ws->folded_q).Done();
  }
  if (s.b == 0 || s.t == 0) return;  // no positions: nothing to add
  ATTNPS_RUN_ON_CUDA(q, DinAttentionBackward(q, k, mask, params, options, weights, d_weights,
                                             d_pooled, ws, dq, dk, grads));
  const int64_t d = s.d, d2 = 2 * s.d, h1 = s.h1, h2 = s.h2, t = s.t;
  const DinActivation act = options.activation;
  float* block_grads = BlockGradSlots(s, Blocks(s), ws);
  ForEachBlock(s, [&](int64_t b0, int64_t b1, int64_t block) {
    const PartialGrads part = ZeroedSlot(block_grads, s, block);
    const int64_t r0 = b0 * t, n = (b1 - b0) * t;
    float* ds = ws->d_scores.data() + r0;
    BackwardThroughPooling(k, mask, weights, d_weights, d_pooled, options.normalization, s, b0, b1,
                           dk, ws->d_scores.data());
    float* dz1 = ws->d_a1.data() + r0 * h1;
    LayersBackward(ds, ws->x.data() + r0 * d2, ws->a1.data() + r0 * h1, ws->a2.data() + r0 * h2, n,
                   params, s, act, part, ws->d_a2.data() + r0 * h2, dz1);
    float* dqt = ws->d_q_term.data();
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(dqt + b * h1, dqt + (b + 1) * h1, 0.0f);
      AddColumnSums(ws->d_a1.data() + b * t * h1, t, h1, dqt + b * h1);
    }
    if (!dq && !dk) return;
    float* dx = ws->d_x.data() + r0 * d2;
    Gemm(false, true, n, d2, h1, 1.0f, dz1, h1, ws->folded_kp.data(), h1, 0.0f, dx, d2);
    for (int64_t r = 0; r < n; ++r) {
      const float* g = dx + r * d2;
      const float* qb = q.data() + ((r0 + r) / t) * d;
      if (dk) {
        float* dkr = dk->data() + (r0 + r) * d;
        for (int64_t j = 0; j < d; ++j) dkr[j] += g[j] + g[d + j] * qb[j];
      }
      if (dq) {
        const float* kr = k.data() + (r0 + r) * d;
        float* dqb = dq->data() + ((r0 + r) / t) * d;
        for (int64_t j = 0; j < d; ++j) dqb[j] += g[d + j] * kr[j];
      }
    }
  });
  const PartialGrads sum = ReduceBlockGrads(s, ws, grads);
  const float* dqt = ws->d_q_term.data();
  AddColumnSums(dqt, s.b, h1, grads->b1.data());
  Gemm(true, false, d, h1, s.b, 1.0f, q.data(), d, dqt, h1, 0.0f, ws->d_folded_q.data(), h1);
  UnfoldFirstLayerGrad(ws->d_folded_q.data(), sum.kp, s, &grads->w1);
  if (dq)
    Gemm(false, true, s.b, d, h1, 1.0f, dqt, h1, ws->folded_q.data(), h1, 1.0f, dq->data(), d);
}

}  // namespace attnps
