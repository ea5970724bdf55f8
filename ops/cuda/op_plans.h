// The CUDA ops as plans: which bodies (ops/cuda/kernel_bodies.h) run over how many indices, and
// which GEMMs and reductions, written once over an executor. ops/cuda/device_ops.cu runs them
// with the device executor (grid-stride launches, cuBLAS, CUB); the tests run the same plans
// with a host executor (loops, the CPU GEMM) against the CPU ops, on machines without a GPU.
// An executor provides:
//   template <class Body> void ForEach(int64_t n, const Body& body);   // body(i), i in [0, n)
//   void* Scratch(size_t bytes);        // memory kept until the next Scratch call
//   void Gemm(...);                      // row-major, attnps::Gemm's arguments
//   void GemmBatched(..., lda, stride_a, ..., ldb, stride_b, ..., ldc, stride_c, batch);
//   double Sum(const double* values, int64_t n);
//   const int64_t* Offsets(const JaggedOffsets& offsets);  // B + 1 int64, where the bodies run
//   const int64_t* Int64s(const int64_t* host, int64_t n, int slot);  // slot 0 or 1, likewise
// Arguments are validated by the CPU op before it dispatches (ShapeCheck), not here.
// Plain C++ outside nvcc.
#ifndef ATTNPS_OPS_CUDA_OP_PLANS_H_
#define ATTNPS_OPS_CUDA_OP_PLANS_H_

#include <cstdint>
#include <vector>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cuda/kernel_bodies.h"
#include "ops/din_attention.h"
#include "ops/interaction.h"
#include "ops/jagged.h"
#include "ops/loss.h"
#include "ops/multi_interest.h"
#include "ops/optimizer.h"
#include "ops/rnn.h"
#include "ops/tensor.h"

namespace attnps::cuda {

inline float* Ptr(const Tensor& t) { return t.empty() ? nullptr : t.data(); }
inline float* Ptr(const Tensor* t) { return t == nullptr ? nullptr : t->data(); }
inline int64_t Size(const Tensor& t, int i) { return t.shape()[i]; }

template <typename Exec>
class OpPlans {
 public:
  explicit OpPlans(Exec* exec) : ex_(*exec) {}

  void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y) {
    const int64_t rows = Size(x, 0), in = Size(x, 1), out = Size(w, 1);
    if (!b.empty()) ex_.ForEach(y->numel(), BroadcastRowsBody{b.data(), out, y->data()});
    ex_.Gemm(false, false, rows, out, in, 1.0f, x.data(), in, w.data(), out,
             b.empty() ? 0.0f : 1.0f, y->data(), out);
  }
  void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                      Tensor* db) {
    const int64_t rows = Size(x, 0), in = Size(x, 1), out = Size(w, 1);
    if (dx)
      ex_.Gemm(false, true, rows, in, out, 1.0f, dy.data(), out, w.data(), out, 1.0f, dx->data(),
               in);
    if (dw)
      ex_.Gemm(true, false, in, out, rows, 1.0f, x.data(), in, dy.data(), out, 1.0f, dw->data(),
               out);
    if (db) ex_.ForEach(out, ColumnSumBody{dy.data(), rows, out, db->data()});
  }

  template <typename Body>
  void Unary(const Tensor& x, Tensor* y) {
    ex_.ForEach(x.numel(), Body{x.data(), y->data()});
  }
  template <typename Body>
  void UnaryGrad(const Tensor& y, const Tensor& dy, Tensor* dx) {
    if (dx) ex_.ForEach(y.numel(), Body{y.data(), dy.data(), dx->data()});
  }

  void PreluForward(const Tensor& x, const Tensor& alpha, Tensor* y) {
    ex_.ForEach(x.numel(), PreluForwardBody{x.data(), alpha.data(), Size(x, 1), y->data()});
  }
  void PreluBackward(const Tensor& x, const Tensor& alpha, const Tensor& dy, Tensor* dx,
                     Tensor* dalpha) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    if (dx)
      ex_.ForEach(x.numel(),
                  PreluBackwardBody{x.data(), alpha.data(), dy.data(), cols, dx->data()});
    if (dalpha)
      ex_.ForEach(cols, PreluAlphaGradBody{x.data(), dy.data(), rows, cols, dalpha->data()});
  }

  void DiceForward(const Tensor& x, const Tensor& alpha, Mode mode, const DiceOptions& options,
                   Tensor* running_mean, Tensor* running_var, Tensor* y, Tensor* saved_mean,
                   Tensor* saved_rstd) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    if (mode == Mode::kTraining) {
      ex_.ForEach(cols, DiceTrainStatsBody{x.data(), rows, cols, options.momentum, options.eps,
                                           saved_mean->data(), saved_rstd->data(),
                                           running_mean->data(), running_var->data()});
    } else {
      ex_.ForEach(cols,
                  DiceInferenceStatsBody{running_mean->data(), running_var->data(), options.eps,
                                         saved_mean->data(), saved_rstd->data()});
    }
    ex_.ForEach(x.numel(), DiceForwardBody{x.data(), alpha.data(), saved_mean->data(),
                                           saved_rstd->data(), cols, y->data()});
  }
  void DiceBackward(const Tensor& x, const Tensor& alpha, Mode mode, const Tensor& saved_mean,
                    const Tensor& saved_rstd, const Tensor& dy, Tensor* dx, Tensor* dalpha) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    float* means = static_cast<float*>(ex_.Scratch(2 * cols * sizeof(float)));
    ex_.ForEach(cols, DiceGradSumsBody{x.data(), dy.data(), alpha.data(), saved_mean.data(),
                                       saved_rstd.data(), rows, cols, mode == Mode::kTraining,
                                       means, means + cols, Ptr(dalpha)});
    if (dx) {
      ex_.ForEach(x.numel(),
                  DiceBackwardBody{x.data(), dy.data(), alpha.data(), saved_mean.data(),
                                   saved_rstd.data(), means, means + cols, cols, dx->data()});
    }
  }

  void LayerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        Tensor* y, Tensor* mean, Tensor* rstd) {
    ex_.ForEach(Size(x, 0),
                LayerNormForwardBody{x.data(), gamma.data(), beta.data(), eps, Size(x, 1),
                                     y->data(), mean->data(), rstd->data()});
  }
  void LayerNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd, const Tensor& dy, Tensor* dx, Tensor* dgamma,
                         Tensor* dbeta) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    if (dx) {
      ex_.ForEach(rows, LayerNormBackwardBody{x.data(), gamma.data(), mean.data(), rstd.data(),
                                              dy.data(), cols, dx->data()});
    }
    if (dgamma || dbeta) {
      ex_.ForEach(cols, LayerNormParamGradBody{x.data(), mean.data(), rstd.data(), dy.data(), rows,
                                               cols, Ptr(dgamma), Ptr(dbeta)});
    }
  }

  void MaskedSoftmaxForward(const Tensor& x, const Tensor& mask, float scale, Tensor* y) {
    ex_.ForEach(Size(x, 0),
                MaskedSoftmaxForwardBody{x.data(), Ptr(mask), Size(x, 1), scale, y->data()});
  }
  void MaskedSoftmaxBackward(const Tensor& y, const Tensor& dy, float scale, Tensor* dx) {
    if (dx)
      ex_.ForEach(Size(y, 0),
                  MaskedSoftmaxBackwardBody{y.data(), dy.data(), Size(y, 1), scale, dx->data()});
  }

  void MaskedPoolForward(const Tensor& x, const Tensor& mask, bool mean, Tensor* y) {
    ex_.ForEach(y->numel(), MaskedPoolForwardBody{x.data(), mask.data(), Size(x, 1), Size(x, 2),
                                                  mean, y->data()});
  }
  void MaskedPoolBackward(const Tensor& mask, const Tensor& dy, bool mean, Tensor* dx) {
    if (dx)
      ex_.ForEach(dy.numel(), MaskedPoolBackwardBody{mask.data(), dy.data(), Size(mask, 1),
                                                     Size(dy, 1), mean, dx->data()});
  }

  double BceWithLogitsForward(const Tensor& logits, const Tensor& labels, const Tensor& weights) {
    const int64_t n = logits.numel();
    if (n == 0) return 0.0;
    double* terms = static_cast<double*>(ex_.Scratch(n * sizeof(double)));
    ex_.ForEach(n, BceTermsBody{logits.data(), labels.data(), Ptr(weights), terms});
    return ex_.Sum(terms, n) / static_cast<double>(n);
  }
  void BceWithLogitsBackward(const Tensor& logits, const Tensor& labels, const Tensor& weights,
                             float dloss, Tensor* dlogits) {
    const int64_t n = logits.numel();
    if (!dlogits || n == 0) return;
    ex_.ForEach(n, BceBackwardBody{logits.data(), labels.data(), Ptr(weights),
                                   dloss / static_cast<float>(n), dlogits->data()});
  }

  void SgdUpdate(const SgdOptions& o, float lr, const Tensor& grads, Tensor* params,
                 Tensor* momentum) {
    float* buf = o.momentum != 0.0f ? momentum->data() : nullptr;
    ex_.ForEach(grads.numel(),
                SgdBody{lr, o.momentum, o.weight_decay, o.momentum_kind == MomentumKind::kNesterov,
                        grads.data(), params->data(), buf});
  }
  void AdamUpdate(float b1, float b2, float eps, float step_size, float inv_sqrt_bc2, float l2,
                  float shrink, const Tensor& grads, Tensor* params, Tensor* m, Tensor* v) {
    ex_.ForEach(grads.numel(), AdamBody{b1, b2, eps, step_size, inv_sqrt_bc2, l2, shrink,
                                        grads.data(), params->data(), m->data(), v->data()});
  }
  void AdagradUpdate(const AdagradOptions& o, float lr, const Tensor& grads, Tensor* params,
                     Tensor* accumulator) {
    ex_.ForEach(grads.numel(),
                AdagradBody{lr, o.eps, grads.data(), params->data(), accumulator->data()});
  }

  // The DIN unit over all N rows at once (the CPU twins block rows for their caches); padded
  // (N = B*T, a mask) or jagged (offsets). Ws: DinAttentionWorkspace or the jagged one (both
  // hold at least N rows and B samples).
  template <typename Ws>
  void DinScores(const Tensor& q, const Tensor& k, const SampleRows& rows, int64_t n, int64_t b,
                 const DinAttentionParams& p, const DinAttentionOptions& o, Ws* ws) {
    const int64_t d = Size(q, 1), h1 = Size(p.w1, 1), h2 = Size(p.w2, 1), d2 = 2 * d;
    const bool sigmoid = o.activation == DinActivation::kSigmoid;
    ex_.ForEach(d * h1,
                DinFoldBody{p.w1.data(), d * h1, ws->folded_q.data(), ws->folded_kp.data()});
    Tensor q_term = ws->q_term.Rows(0, b);
    LinearForward(q, ws->folded_q, p.b1, &q_term);
    ex_.ForEach(n * d, DinPairBody{q.data(), k.data(), rows, d, ws->x.data()});
    ex_.Gemm(false, false, n, h1, d2, 1.0f, ws->x.data(), d2, ws->folded_kp.data(), h1, 0.0f,
             ws->a1.data(), h1);
    ex_.ForEach(n * h1, BiasActivateBody{ws->q_term.data(), rows, h1, sigmoid, ws->a1.data()});
    ex_.Gemm(false, false, n, h2, h1, 1.0f, ws->a1.data(), h1, p.w2.data(), h2, 0.0f, ws->a2.data(),
             h2);
    const SampleRows one_bias{nullptr, nullptr, n};
    ex_.ForEach(n * h2, BiasActivateBody{p.b2.data(), one_bias, h2, sigmoid, ws->a2.data()});
    ex_.ForEach(n, BroadcastRowsBody{p.b3.data(), 1, ws->scores.data()});
    ex_.Gemm(false, false, n, 1, h2, 1.0f, ws->a2.data(), h2, p.w3.data(), 1, 1.0f,
             ws->scores.data(), 1);
  }
  // From ds [N] (the gradient of the raw scores) down to dq, dk and the weights' gradients.
  template <typename Ws>
  void DinScoresBackward(const Tensor& q, const Tensor& k, const SampleRows& rows, int64_t n,
                         int64_t b, const DinAttentionParams& p, const DinAttentionOptions& o,
                         const float* ds, Ws* ws, Tensor* dq, Tensor* dk, DinAttentionParams* g) {
    const int64_t d = Size(q, 1), h1 = Size(p.w1, 1), h2 = Size(p.w2, 1), d2 = 2 * d;
    const bool sigmoid = o.activation == DinActivation::kSigmoid;
    float* d_folded_kp = static_cast<float*>(ex_.Scratch(d2 * h1 * sizeof(float)));
    float *dz2 = ws->d_a2.data(), *dz1 = ws->d_a1.data();
    ex_.ForEach(1, ColumnSumBody{ds, n, 1, g->b3.data()});
    ex_.Gemm(true, false, h2, 1, n, 1.0f, ws->a2.data(), h2, ds, 1, 1.0f, g->w3.data(), 1);
    ex_.ForEach(n * h2, TimesActivationGradBody{ds, p.w3.data(), ws->a2.data(), h2, sigmoid, dz2});
    ex_.Gemm(true, false, h1, h2, n, 1.0f, ws->a1.data(), h1, dz2, h2, 1.0f, g->w2.data(), h2);
    ex_.ForEach(h2, ColumnSumBody{dz2, n, h2, g->b2.data()});
    ex_.Gemm(false, true, n, h1, h2, 1.0f, dz2, h2, p.w2.data(), h2, 0.0f, dz1, h1);
    ex_.ForEach(n * h1, TimesActivationGradBody{nullptr, nullptr, ws->a1.data(), h1, sigmoid, dz1});
    ex_.Gemm(true, false, d2, h1, n, 1.0f, ws->x.data(), d2, dz1, h1, 0.0f, d_folded_kp, h1);
    float* dqt = ws->d_q_term.data();
    ex_.ForEach(b * h1, GroupRowSumBody{dz1, rows, h1, dqt});
    if (dq || dk) {
      float* dx = ws->d_x.data();
      ex_.Gemm(false, true, n, d2, h1, 1.0f, dz1, h1, ws->folded_kp.data(), h1, 0.0f, dx, d2);
      if (dk) ex_.ForEach(n * d, DinPairGradKBody{dx, q.data(), rows, d, dk->data()});
      if (dq) ex_.ForEach(b * d, DinPairGradQBody{dx, k.data(), rows, d, dq->data()});
    }
    ex_.ForEach(h1, ColumnSumBody{dqt, b, h1, g->b1.data()});
    ex_.Gemm(true, false, d, h1, b, 1.0f, q.data(), d, dqt, h1, 0.0f, ws->d_folded_q.data(), h1);
    ex_.ForEach(d * h1,
                DinUnfoldGradBody{ws->d_folded_q.data(), d_folded_kp, d * h1, g->w1.data()});
    if (dq) {
      ex_.Gemm(false, true, b, d, h1, 1.0f, dqt, h1, ws->folded_q.data(), h1, 1.0f, dq->data(), d);
    }
  }

  void DinAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                           const DinAttentionParams& p, const DinAttentionOptions& o,
                           DinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled) {
    const int64_t b = Size(k, 0), t = Size(k, 1), d = Size(k, 2), n = b * t;
    DinScores(q, k, SampleRows{nullptr, nullptr, t}, n, b, p, o, ws);
    if (o.normalization == AttentionNormalization::kNone) {
      ex_.ForEach(n, MaskSelectBody{ws->scores.data(), mask.data(), weights->data()});
    } else {
      ex_.ForEach(
          b, MaskedSoftmaxForwardBody{ws->scores.data(), mask.data(), t, 1.0f, weights->data()});
    }
    ex_.ForEach(b * d,
                MaskedPoolForwardBody{k.data(), weights->data(), t, d, false, pooled->data()});
  }
  void DinAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& mask,
                            const DinAttentionParams& p, const DinAttentionOptions& o,
                            const Tensor& weights, const Tensor& d_weights, const Tensor& d_pooled,
                            DinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                            DinAttentionParams* g) {
    const int64_t b = Size(k, 0), t = Size(k, 1), d = Size(k, 2), n = b * t;
    if (n == 0) return;
    const SampleRows rows{nullptr, nullptr, t};
    float* raw = ws->d_x.data();  // free until DinScoresBackward's dx (n <= n * 2D floats)
    float* ds = ws->d_scores.data();
    ex_.ForEach(n, DinWeightGradBody{k.data(), d_pooled.data(), Ptr(d_weights), rows, d, raw});
    if (dk) {
      ex_.ForEach(b * d,
                  MaskedPoolBackwardBody{weights.data(), d_pooled.data(), t, d, false, dk->data()});
    }
    if (o.normalization == AttentionNormalization::kNone) {
      ex_.ForEach(n, MaskSelectBody{raw, mask.data(), ds});
    } else {
      ex_.ForEach(n, FillBody{0.0f, ds});
      ex_.ForEach(b, MaskedSoftmaxBackwardBody{weights.data(), raw, t, 1.0f, ds});
    }
    DinScoresBackward(q, k, rows, n, b, p, o, ds, ws, dq, dk, g);
  }

  // The jagged unit: sample_ids[r] = the sample of row r, uploaded with the offsets.
  SampleRows JaggedRows(const JaggedOffsets& offsets) {
    sample_ids_.resize(offsets.total());
    for (int64_t b = 0; b < offsets.batch(); ++b)
      for (int64_t r = offsets[b]; r < offsets[b + 1]; ++r) sample_ids_[r] = b;
    return {ex_.Offsets(offsets), ex_.Int64s(sample_ids_.data(), offsets.total(), 1), 1};
  }
  void JaggedDinAttentionForward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                                 const DinAttentionParams& p, const DinAttentionOptions& o,
                                 JaggedDinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled) {
    const int64_t b = offsets.batch(), n = offsets.total(), d = Size(q, 1);
    const SampleRows rows = JaggedRows(offsets);
    DinScores(q, k, rows, n, b, p, o, ws);
    if (o.normalization == AttentionNormalization::kNone) {
      ex_.ForEach(n, CopyColumnsBody{ws->scores.data(), 1, 0, weights->data(), 1, 0, 1, false});
    } else {
      ex_.ForEach(b, SampleSoftmaxBody{ws->scores.data(), rows, weights->data()});
    }
    ex_.ForEach(b * d, SampleWeightedSumBody{k.data(), weights->data(), rows, d, pooled->data()});
  }
  void JaggedDinAttentionBackward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                                  const DinAttentionParams& p, const DinAttentionOptions& o,
                                  const Tensor& weights, const Tensor& d_weights,
                                  const Tensor& d_pooled, JaggedDinAttentionWorkspace* ws,
                                  Tensor* dq, Tensor* dk, DinAttentionParams* g) {
    const int64_t b = offsets.batch(), n = offsets.total(), d = Size(q, 1);
    if (n == 0) return;
    const SampleRows rows = JaggedRows(offsets);
    float* raw = ws->d_x.data();
    float* ds = ws->d_scores.data();
    ex_.ForEach(n, DinWeightGradBody{k.data(), d_pooled.data(), Ptr(d_weights), rows, d, raw});
    if (dk)
      ex_.ForEach(b * d,
                  SampleWeightedSumGradBody{weights.data(), d_pooled.data(), rows, d, dk->data()});
    if (o.normalization == AttentionNormalization::kNone) {
      ex_.ForEach(n, CopyColumnsBody{raw, 1, 0, ds, 1, 0, 1, false});
    } else {
      ex_.ForEach(b, SampleSoftmaxGradBody{weights.data(), raw, rows, ds});
    }
    DinScoresBackward(q, k, rows, n, b, p, o, ds, ws, dq, dk, g);
  }

  // The GRU family (ops/rnn.h): x projections in one GEMM, one h-projection GEMM and one cell
  // launch per position (the recurrence is sequential in T).
  void GruForward(GruGate gate, const Tensor& x, const Tensor& mask, const Tensor& attention,
                  const Tensor& h0, const GruParams& p, GruWorkspace* ws, Tensor* states) {
    const int64_t b = Size(x, 0), t = Size(x, 1), in = Size(x, 2), h = Size(p.wh, 0), h3 = 3 * h;
    if (b == 0 || t == 0) return;
    Tensor xp = ws->x_proj.Reshaped({b * t, h3});
    LinearForward(x.Reshaped({b * t, in}), p.wx, p.b, &xp);
    ex_.ForEach(b * h, GruInitialStateBody{Ptr(h0), t, h, ws->h_prev.data()});
    for (int64_t s = 0; s < t; ++s) {
      ex_.Gemm(false, false, b, h3, h, 1.0f, ws->h_prev.data() + s * h, t * h, p.wh.data(), h3,
               0.0f, ws->h_proj.data() + s * h3, t * h3);
      ex_.ForEach(b * h, GruCellForwardBody{gate, s, t, h, ws->x_proj.data(), ws->h_proj.data(),
                                            mask.data(), Ptr(attention), ws->h_prev.data(),
                                            ws->gates.data(), states->data()});
    }
  }

  void GruBackward(GruGate gate, const Tensor& x, const Tensor& mask, const Tensor& attention,
                   const Tensor& h0, const GruParams& p, const Tensor& d_states, GruWorkspace* ws,
                   Tensor* dx, Tensor* dh0, Tensor* d_attention, GruParams* grads) {
    const int64_t b = Size(x, 0), t = Size(x, 1), in = Size(x, 2), h = Size(p.wh, 0), h3 = 3 * h;
    if (b == 0 || t == 0) return;
    float* carry = ws->d_state.data();
    ex_.ForEach(b * h, FillBody{0.0f, carry});
    float* da_terms =
        d_attention ? static_cast<float*>(ex_.Scratch(b * h * sizeof(float))) : nullptr;
    const bool need_dh0 = dh0 != nullptr && !h0.empty();
    for (int64_t s = t - 1; s >= 0; --s) {
      ex_.ForEach(
          b * h, GruCellBackwardBody{gate, s, t, h, ws->h_proj.data(), ws->h_prev.data(),
                                     ws->gates.data(), d_states.data(), mask.data(), Ptr(attention),
                                     carry, ws->d_x_proj.data(), ws->d_h_proj.data(), da_terms});
      if (d_attention) ex_.ForEach(b, RowSumIntoBody{da_terms, h, t, s, d_attention->data()});
      if (s > 0 || need_dh0) {
        ex_.Gemm(false, true, b, h, h3, 1.0f, ws->d_h_proj.data() + s * h3, t * h3, p.wh.data(), h3,
                 1.0f, carry, h);
      }
    }
    if (need_dh0) ex_.ForEach(b * h, AddBody{carry, dh0->data()});
    const int64_t rows = b * t;
    const Tensor dxp = ws->d_x_proj.Reshaped({rows, h3});
    Tensor dx2 = dx ? dx->Reshaped({rows, in}) : Tensor();
    if (dx || grads) {
      LinearBackward(x.Reshaped({rows, in}), p.wx, dxp, dx ? &dx2 : nullptr,
                     grads ? &grads->wx : nullptr, grads ? &grads->b : nullptr);
    }
    if (grads) {
      ex_.Gemm(true, false, h, h3, rows, 1.0f, ws->h_prev.data(), h, ws->d_h_proj.data(), h3, 1.0f,
               grads->wh.data(), h3);
    }
  }

  // Attention per (b, h) over in-place head matrices (the CPU twin's AttentionCore): one
  // strided-batched GEMM over the batch per head for the scores, one softmax launch, one GEMM per
  // head for the outputs. p [B, H, Tq, T].
  void AttentionCoreForward(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v,
                            const float* mask, int64_t batch, bool causal, float* p,
                            const HeadLayout& out) {
    const int64_t heads = q.heads, tq = q.t, t = k.t, dk = q.dh, dv = v.dh, pt = tq * t;
    if (batch == 0 || tq == 0 || t == 0) return;
    const float scale = 1.0f / sqrtf(static_cast<float>(dk));
    for (int64_t h = 0; h < heads; ++h) {
      ex_.GemmBatched(false, true, tq, t, dk, 1.0f, q.at(0, h), q.stride, q.t * q.stride,
                      k.at(0, h), k.stride, k.t * k.stride, 0.0f, p + h * pt, t, heads * pt, batch);
    }
    ex_.ForEach(batch * heads * tq, AttentionSoftmaxBody{mask, heads, tq, t, causal, scale, p});
    for (int64_t h = 0; h < heads; ++h) {
      ex_.GemmBatched(false, false, tq, dv, t, 1.0f, p + h * pt, t, heads * pt, v.at(0, h),
                      v.stride, v.t * v.stride, 0.0f, out.at(0, h), out.stride, out.t * out.stride,
                      batch);
    }
  }
  // Its gradients given d_out; d_scores [B, H, Tq, T] scratch; dq, dk, dv accumulate (absent:
  // data null).
  void AttentionCoreBackward(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v,
                             const float* p, const HeadLayout& d_out, int64_t batch,
                             float* d_scores, const HeadLayout& dq, const HeadLayout& dk,
                             const HeadLayout& dv) {
    const int64_t heads = q.heads, tq = q.t, t = k.t, dkd = q.dh, dvd = v.dh, pt = tq * t;
    if (batch == 0 || tq == 0 || t == 0) return;
    const float scale = 1.0f / sqrtf(static_cast<float>(dkd));
    for (int64_t h = 0; h < heads; ++h) {
      if (dv.data != nullptr) {  // dv += p^T d_out
        ex_.GemmBatched(true, false, t, dvd, tq, 1.0f, p + h * pt, t, heads * pt, d_out.at(0, h),
                        d_out.stride, d_out.t * d_out.stride, 1.0f, dv.at(0, h), dv.stride,
                        dv.t * dv.stride, batch);
      }
      if (dq.data == nullptr && dk.data == nullptr) continue;
      ex_.GemmBatched(false, true, tq, t, dvd, 1.0f, d_out.at(0, h), d_out.stride,
                      d_out.t * d_out.stride, v.at(0, h), v.stride, v.t * v.stride, 0.0f,
                      d_scores + h * pt, t, heads * pt, batch);
    }
    if (dq.data == nullptr && dk.data == nullptr) return;
    ex_.ForEach(batch * heads * tq, SoftmaxGradInPlaceBody{p, t, scale, d_scores});
    for (int64_t h = 0; h < heads; ++h) {
      if (dq.data != nullptr) {  // dq += d_scores k
        ex_.GemmBatched(false, false, tq, dkd, t, 1.0f, d_scores + h * pt, t, heads * pt,
                        k.at(0, h), k.stride, k.t * k.stride, 1.0f, dq.at(0, h), dq.stride,
                        dq.t * dq.stride, batch);
      }
      if (dk.data != nullptr) {  // dk += d_scores^T q
        ex_.GemmBatched(true, false, t, dkd, tq, 1.0f, d_scores + h * pt, t, heads * pt, q.at(0, h),
                        q.stride, q.t * q.stride, 1.0f, dk.at(0, h), dk.stride, dk.t * dk.stride,
                        batch);
      }
    }
  }

  void CopyColumns(const float* src, int64_t rows, int64_t src_cols, int64_t src_col0, float* dst,
                   int64_t dst_cols, int64_t dst_col0, int64_t width, bool accumulate) {
    ex_.ForEach(rows * width, CopyColumnsBody{src, src_cols, src_col0, dst, dst_cols, dst_col0,
                                              width, accumulate});
  }

  void DropoutForward(const Tensor& x, float rate, uint64_t seed, Mode mode, Tensor* mask,
                      Tensor* y, int64_t first_index) {
    if (mode == Mode::kInference) {
      ex_.ForEach(x.numel(), FillBody{1.0f, mask->data()});
      ex_.ForEach(x.numel(), CopyColumnsBody{x.data(), 1, 0, y->data(), 1, 0, 1, false});
      return;
    }
    const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(rate) * 4294967296.0);
    ex_.ForEach(x.numel(), DropoutBody{x.data(), Mix64(seed + kGoldenGamma), threshold,
                                       static_cast<uint64_t>(first_index), 1.0f / (1.0f - rate),
                                       mask->data(), y->data()});
  }
  void DropoutBackward(const Tensor& mask, const Tensor& dy, Tensor* dx) {
    if (dx) ex_.ForEach(mask.numel(), TimesMaskBody{mask.data(), dy.data(), dx->data()});
  }
  double SumOfSquares(const Tensor& x) {
    if (x.numel() == 0) return 0.0;
    double* terms = static_cast<double*>(ex_.Scratch(x.numel() * sizeof(double)));
    ex_.ForEach(x.numel(), SquareTermsBody{x.data(), terms});
    return ex_.Sum(terms, x.numel());
  }
  void Scale(Tensor* x, float factor) { ex_.ForEach(x->numel(), ScaleBody{factor, x->data()}); }

  void SegmentSumPoolForward(const Tensor& x, const JaggedOffsets& offsets, Tensor* y) {
    const int64_t d = Size(*y, 1);
    ex_.ForEach(offsets.batch() * d, SegmentSumBody{x.data(), ex_.Offsets(offsets), d, y->data()});
  }
  void SegmentSumPoolBackward(const JaggedOffsets& offsets, const Tensor& dy, Tensor* dx) {
    const int64_t d = Size(dy, 1);
    if (dx)
      ex_.ForEach(offsets.batch() * d,
                  SegmentSumGradBody{dy.data(), ex_.Offsets(offsets), d, dx->data()});
  }
  void JaggedToPadded(const Tensor& x, const JaggedOffsets& offsets, Tensor* padded, Tensor* mask) {
    const int64_t t = Size(*padded, 1), d = Size(*padded, 2);
    const int64_t* off = ex_.Offsets(offsets);
    ex_.ForEach(padded->numel(), JaggedToPaddedBody{x.data(), off, t, d, padded->data()});
    ex_.ForEach(mask->numel(), PrefixMaskBody{off, t, mask->data()});
  }
  void PaddedToJaggedAdd(const Tensor& dpadded, const JaggedOffsets& offsets, Tensor* dx) {
    const int64_t t = Size(dpadded, 1), d = Size(dpadded, 2);
    ex_.ForEach(dpadded.numel(),
                PaddedToJaggedAddBody{dpadded.data(), ex_.Offsets(offsets), t, d, dx->data()});
  }

  double SampledSoftmaxForward(const Tensor& u, const Tensor& pos, const Tensor& neg,
                               const Tensor& log_q_pos, const Tensor& log_q_neg,
                               const SampledSoftmaxOptions& o, SampledSoftmaxWorkspace* ws) {
    const int64_t b = Size(u, 0), d = Size(u, 1), s = Size(neg, 0), cols = s + 1;
    if (b == 0) return 0.0;
    float* probs = ws->probs.data();
    if (s > 0)
      ex_.Gemm(false, true, b, s, d, 1.0f, u.data(), d, neg.data(), d, 0.0f, probs + 1, cols);
    const bool remove = o.accidental_hits == AccidentalHits::kRemove;
    const int64_t* pos_ids = remove ? ex_.Int64s(o.pos_ids.data(), b, 0) : nullptr;
    const int64_t* neg_ids = remove ? ex_.Int64s(o.neg_ids.data(), s, 1) : nullptr;
    double* loss = static_cast<double*>(ex_.Scratch(b * sizeof(double)));
    ex_.ForEach(b, SampledSoftmaxRowBody{u.data(), pos.data(), log_q_pos.data(), Ptr(log_q_neg),
                                         pos_ids, neg_ids, d, s, probs, loss});
    return ex_.Sum(loss, b) / static_cast<double>(b);
  }
  void SampledSoftmaxBackward(const Tensor& u, const Tensor& pos, const Tensor& neg, float dloss,
                              SampledSoftmaxWorkspace* ws, Tensor* du, Tensor* dpos, Tensor* dneg) {
    const int64_t b = Size(u, 0), d = Size(u, 1), s = Size(neg, 0), cols = s + 1;
    if (b == 0) return;
    float* dl = ws->d_logits.data();
    ex_.ForEach(
        b, SampledSoftmaxGradRowBody{ws->probs.data(), cols, dloss / static_cast<float>(b), dl});
    if (du || dpos)
      ex_.ForEach(b * d, PositiveGradBody{u.data(), pos.data(), dl, d, cols, Ptr(du), Ptr(dpos)});
    if (s == 0) return;
    if (du) ex_.Gemm(false, false, b, d, s, 1.0f, dl + 1, cols, neg.data(), d, 1.0f, du->data(), d);
    if (dneg)
      ex_.Gemm(true, false, s, d, b, 1.0f, dl + 1, cols, u.data(), d, 1.0f, dneg->data(), d);
  }

  double DienAuxLossForward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                            const Tensor& mask) {
    const int64_t n = mask.numel(), d = Size(h, 2);
    if (n == 0) return 0.0;
    double* terms = static_cast<double*>(ex_.Scratch(2 * n * sizeof(double)));
    ex_.ForEach(n, DienAuxTermsBody{h.data(), e_pos.data(), e_neg.data(), mask.data(), d, terms,
                                    terms + n});
    const double count = ex_.Sum(terms + n, n);
    return count == 0.0 ? 0.0 : ex_.Sum(terms, n) / count;
  }
  void DienAuxLossBackward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                           const Tensor& mask, float dloss, Tensor* dh, Tensor* de_pos,
                           Tensor* de_neg) {
    const int64_t n = mask.numel(), d = Size(h, 2);
    if (n == 0) return;
    double* terms = static_cast<double*>(ex_.Scratch(2 * n * sizeof(double)));
    ex_.ForEach(n, DienAuxTermsBody{h.data(), e_pos.data(), e_neg.data(), mask.data(), d, terms,
                                    terms + n});
    const double count = ex_.Sum(terms + n, n);
    if (count == 0.0) return;
    ex_.ForEach(
        n, DienAuxGradBody{h.data(), e_pos.data(), e_neg.data(), mask.data(), d,
                           static_cast<float>(dloss / count), Ptr(dh), Ptr(de_pos), Ptr(de_neg)});
  }

  void SigmoidProbabilities(const Tensor& logits, Tensor* probs) {
    ex_.ForEach(logits.numel(), SigmoidForwardBody{logits.data(), probs->data()});
  }

  void SenetForward(const Tensor& e, const SenetParams& p, SenetWorkspace* ws, Tensor* out) {
    const int64_t b = Size(e, 0), f = Size(e, 1), d = Size(e, 2);
    ex_.ForEach(b * f, FieldMeanBody{e.data(), d, ws->z.data()});
    LinearForward(ws->z, p.w1, p.b1, &ws->hidden);
    Unary<ReluForwardBody>(ws->hidden, &ws->hidden);
    LinearForward(ws->hidden, p.w2, p.b2, &ws->a);
    Unary<ReluForwardBody>(ws->a, &ws->a);
    ex_.ForEach(e.numel(), FieldScaleBody{e.data(), ws->a.data(), d, out->data()});
  }
  void SenetBackward(const Tensor& e, const SenetParams& p, const Tensor& dout, SenetWorkspace* ws,
                     Tensor* de, SenetParams* g) {
    const int64_t b = Size(e, 0), f = Size(e, 1), d = Size(e, 2);
    ex_.ForEach(b * f, SenetWeightGradBody{e.data(), dout.data(), ws->a.data(), d, ws->d_a.data()});
    ex_.ForEach(ws->d_hidden.numel(), FillBody{0.0f, ws->d_hidden.data()});
    LinearBackward(ws->hidden, p.w2, ws->d_a, &ws->d_hidden, g ? &g->w2 : nullptr,
                   g ? &g->b2 : nullptr);
    ex_.ForEach(ws->d_hidden.numel(), TimesActivationGradBody{nullptr, nullptr, ws->hidden.data(),
                                                              1, false, ws->d_hidden.data()});
    if (de) ex_.ForEach(ws->d_z.numel(), FillBody{0.0f, ws->d_z.data()});
    LinearBackward(ws->z, p.w1, ws->d_hidden, de ? &ws->d_z : nullptr, g ? &g->w1 : nullptr,
                   g ? &g->b1 : nullptr);
    if (de)
      ex_.ForEach(e.numel(),
                  SenetInputGradBody{ws->a.data(), dout.data(), ws->d_z.data(), d, de->data()});
  }
  void GateForward(const Tensor& h, const Tensor& g, float scale, Tensor* out) {
    ex_.ForEach(h.numel(), GateForwardBody{h.data(), g.data(), scale, out->data()});
  }
  void GateBackward(const Tensor& h, const Tensor& g, float scale, const Tensor& dout, Tensor* dh,
                    Tensor* dg) {
    ex_.ForEach(h.numel(),
                GateBackwardBody{h.data(), g.data(), dout.data(), scale, Ptr(dh), Ptr(dg)});
  }
  void AfmForward(const Tensor& v, const AfmParams& p, AfmWorkspace* ws, Tensor* out) {
    const int64_t b = Size(v, 0), f = Size(v, 1), d = Size(v, 2), na = Size(p.w, 1);
    ex_.ForEach(b * d, AfmPairsBody{v.data(), f, d, ws->pairs.data()});
    LinearForward(ws->pairs, p.w, p.b, &ws->hidden);
    ex_.ForEach(b, AfmAttendBody{ws->pairs.data(), p.h.data(), f * (f - 1) / 2, na, d,
                                 ws->hidden.data(), ws->attn.data(), out->data()});
  }
  void AfmBackward(const Tensor& v, const AfmParams& p, const Tensor& dout, AfmWorkspace* ws,
                   Tensor* dv, AfmParams* g) {
    const int64_t b = Size(v, 0), f = Size(v, 1), d = Size(v, 2), na = Size(p.w, 1);
    const int64_t np = f * (f - 1) / 2;
    ex_.ForEach(b, AfmAttendGradBody{ws->pairs.data(), ws->hidden.data(), ws->attn.data(),
                                     p.h.data(), dout.data(), np, na, d, ws->d_scores.data(),
                                     ws->d_hidden.data(), dv ? ws->d_pairs.data() : nullptr});
    if (g)
      ex_.Gemm(true, false, na, 1, b * np, 1.0f, ws->hidden.data(), na, ws->d_scores.data(), 1,
               1.0f, g->h.data(), 1);
    LinearBackward(ws->pairs, p.w, ws->d_hidden, dv ? &ws->d_pairs : nullptr, g ? &g->w : nullptr,
                   g ? &g->b : nullptr);
    if (dv) ex_.ForEach(b * d, AfmInputGradBody{v.data(), ws->d_pairs.data(), f, d, dv->data()});
  }

  void ComiRecSaForward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& p,
                        ComiRecSaWorkspace* ws, Tensor* interests) {
    const int64_t b = Size(h, 0), t = Size(h, 1), d = Size(h, 2), da = Size(p.w1, 1);
    const int64_t k = Size(p.w2, 1), rows = b * t;
    ex_.ForEach(h.numel(), AddPositionBody{h.data(), p.position.data(), t * d, ws->input.data()});
    ex_.Gemm(false, false, rows, da, d, 1.0f, ws->input.data(), d, p.w1.data(), da, 0.0f,
             ws->hidden.data(), da);
    Unary<TanhForwardBody>(ws->hidden, &ws->hidden);
    ex_.Gemm(false, false, rows, k, da, 1.0f, ws->hidden.data(), da, p.w2.data(), k, 0.0f,
             ws->scores.data(), k);
    ex_.ForEach(b * k,
                SoftmaxOverTBody{ws->scores.data(), mask.data(), t, k, ws->attention.data()});
    ex_.GemmBatched(false, false, k, d, t, 1.0f, ws->attention.data(), t, k * t, h.data(), d, t * d,
                    0.0f, interests->data(), d, k * d, b);
  }
  void ComiRecSaBackward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& p,
                         const Tensor& d_interests, ComiRecSaWorkspace* ws, Tensor* dh,
                         ComiRecSaParams* g) {
    const int64_t b = Size(h, 0), t = Size(h, 1), d = Size(h, 2), da = Size(p.w1, 1);
    const int64_t k = Size(p.w2, 1), rows = b * t;
    ex_.GemmBatched(false, true, k, t, d, 1.0f, d_interests.data(), d, k * d, h.data(), d, t * d,
                    0.0f, ws->d_attention.data(), t, k * t, b);
    if (dh)
      ex_.GemmBatched(true, false, t, d, k, 1.0f, ws->attention.data(), t, k * t,
                      d_interests.data(), d, k * d, 1.0f, dh->data(), d, t * d, b);
    if (!dh && !g) return;
    ex_.ForEach(b * k, SoftmaxOverTGradBody{ws->attention.data(), ws->d_attention.data(), t, k,
                                            ws->d_scores.data()});
    ex_.Gemm(false, true, rows, da, k, 1.0f, ws->d_scores.data(), k, p.w2.data(), k, 0.0f,
             ws->d_hidden.data(), da);
    if (g)
      ex_.Gemm(true, false, da, k, rows, 1.0f, ws->hidden.data(), da, ws->d_scores.data(), k, 1.0f,
               g->w2.data(), k);
    ex_.ForEach(ws->d_hidden.numel(), TimesTanhGradBody{ws->hidden.data(), ws->d_hidden.data()});
    if (g)
      ex_.Gemm(true, false, d, da, rows, 1.0f, ws->input.data(), d, ws->d_hidden.data(), da, 1.0f,
               g->w1.data(), da);
    ex_.Gemm(false, true, rows, d, da, 1.0f, ws->d_hidden.data(), da, p.w1.data(), da, 0.0f,
             ws->d_input.data(), d);
    if (dh) ex_.ForEach(h.numel(), AddBody{ws->d_input.data(), dh->data()});
    if (g) ex_.ForEach(t * d, ColumnSumBody{ws->d_input.data(), b, t * d, g->position.data()});
  }

  // u_hat[:, i] = e[:, i] W[i]^T for every position i: one GEMM batched over the positions.
  void BilinearCapsuleMapForward(const Tensor& e, const Tensor& w, Tensor* u_hat) {
    const int64_t b = Size(e, 0), n = Size(e, 1), dim = Size(e, 2);
    const int64_t kdc = Size(w, 1) * Size(w, 2);
    ex_.GemmBatched(false, true, b, kdc, dim, 1.0f, e.data(), n * dim, dim, w.data(), dim,
                    kdc * dim, 0.0f, u_hat->data(), n * kdc, kdc, n);
  }
  void BilinearCapsuleMapBackward(const Tensor& e, const Tensor& w, const Tensor& d_u_hat,
                                  Tensor* de, Tensor* dw) {
    const int64_t b = Size(e, 0), n = Size(e, 1), dim = Size(e, 2);
    const int64_t kdc = Size(w, 1) * Size(w, 2);
    if (de)
      ex_.GemmBatched(false, false, b, dim, kdc, 1.0f, d_u_hat.data(), n * kdc, kdc, w.data(), dim,
                      kdc * dim, 1.0f, de->data(), n * dim, dim, n);
    if (dw)
      ex_.GemmBatched(true, false, kdc, dim, b, 1.0f, d_u_hat.data(), n * kdc, kdc, e.data(),
                      n * dim, dim, 1.0f, dw->data(), dim, kdc * dim, n);
  }
  void DynamicRoutingCoefficients(const Tensor& u_hat, const Tensor& mask, int iterations,
                                  Tensor* coupling) {
    const int64_t b = Size(u_hat, 0), t = Size(u_hat, 1), k = Size(u_hat, 2);
    const int64_t dc = Size(u_hat, 3);
    float* scratch = static_cast<float*>(ex_.Scratch(b * k * (t + dc) * sizeof(float)));
    ex_.ForEach(b, DynamicRoutingBody{u_hat.data(), mask.data(), t, k, dc, iterations, scratch,
                                      scratch + b * k * t, coupling->data()});
  }
  void RoutedCapsulesForward(const Tensor& u_hat, const Tensor& coupling, Tensor* s, Tensor* v) {
    const int64_t b = Size(u_hat, 0), t = Size(u_hat, 1), k = Size(u_hat, 2);
    ex_.ForEach(b * k, RoutedCapsulesBody{u_hat.data(), coupling.data(), t, k, Size(u_hat, 3),
                                          s->data(), v->data()});
  }
  void RoutedCapsulesBackward(const Tensor& u_hat, const Tensor& coupling, const Tensor& s,
                              const Tensor& dv, Tensor* d_u_hat) {
    if (!d_u_hat) return;
    const int64_t b = Size(u_hat, 0), t = Size(u_hat, 1), k = Size(u_hat, 2);
    const int64_t dc = Size(u_hat, 3);
    float* ds = static_cast<float*>(ex_.Scratch(b * k * dc * sizeof(float)));
    ex_.ForEach(b * k, SquashGradBody{s.data(), dv.data(), dc, ds});
    ex_.ForEach(u_hat.numel(),
                RoutedCapsulesGradBody{coupling.data(), ds, t, k, dc, d_u_hat->data()});
  }

  void AdditiveAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                                const AdditiveAttentionParams& p, AdditiveAttentionWorkspace* ws,
                                Tensor* weights, Tensor* pooled) {
    const int64_t b = Size(k, 0), t = Size(k, 1), dk = Size(k, 2), a = Size(p.wq, 1);
    LinearForward(q, p.wq, p.b, &ws->q_term);
    Tensor hidden2 = ws->hidden.Reshaped({b * t, a});
    LinearForward(k.Reshaped({b * t, dk}), p.wk, Tensor(), &hidden2);
    ex_.ForEach(b, AdditiveScoresBody{ws->q_term.data(), p.v.data(), Ptr(mask), t, a,
                                      ws->hidden.data(), weights->data()});
    ex_.GemmBatched(false, false, 1, dk, t, 1.0f, weights->data(), t, t, k.data(), dk, t * dk, 0.0f,
                    pooled->data(), dk, dk, b);
  }
  void AdditiveAttentionBackward(const Tensor& q, const Tensor& k, const AdditiveAttentionParams& p,
                                 const Tensor& weights, const Tensor& d_weights,
                                 const Tensor& d_pooled, AdditiveAttentionWorkspace* ws, Tensor* dq,
                                 Tensor* dk, AdditiveAttentionParams* g) {
    const int64_t b = Size(k, 0), t = Size(k, 1), dkd = Size(k, 2), a = Size(p.wq, 1);
    float* ds = ws->d_weights.data();
    if (d_weights.empty())
      ex_.ForEach(b * t, FillBody{0.0f, ds});
    else
      ex_.ForEach(b * t, CopyColumnsBody{d_weights.data(), 1, 0, ds, 1, 0, 1, false});
    ex_.GemmBatched(false, true, 1, t, dkd, 1.0f, d_pooled.data(), dkd, dkd, k.data(), dkd, t * dkd,
                    1.0f, ds, t, t, b);
    if (dk)
      ex_.GemmBatched(true, false, t, dkd, 1, 1.0f, weights.data(), t, t, d_pooled.data(), dkd, dkd,
                      1.0f, dk->data(), dkd, t * dkd, b);
    ex_.ForEach(b, AdditiveScoresGradBody{weights.data(), ws->hidden.data(), p.v.data(), t, a, ds,
                                          ws->d_hidden.data(), ws->d_q_term.data()});
    if (g)
      ex_.Gemm(true, false, a, 1, b * t, 1.0f, ws->hidden.data(), a, ds, 1, 1.0f, g->v.data(), 1);
    LinearBackward(q, p.wq, ws->d_q_term, dq, g ? &g->wq : nullptr, g ? &g->b : nullptr);
    Tensor dk2 = dk ? dk->Reshaped({b * t, dkd}) : Tensor();
    LinearBackward(k.Reshaped({b * t, dkd}), p.wk, ws->d_hidden.Reshaped({b * t, a}),
                   dk ? &dk2 : nullptr, g ? &g->wk : nullptr, nullptr);
  }

  void SumDuplicateRows(const Tensor& grads, const int32_t* order, const int32_t* starts, int64_t u,
                        Tensor* out) {
    const int64_t d = Size(grads, 1);
    ex_.ForEach(u * d, SumDuplicateRowsBody{grads.data(), order, starts, d, out->data()});
  }

 private:
  Exec& ex_;
  std::vector<int64_t> sample_ids_;
};

}  // namespace attnps::cuda

#endif  // ATTNPS_OPS_CUDA_OP_PLANS_H_
