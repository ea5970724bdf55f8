#include "ops/attention.h"

#include <cmath>
#include <cstring>
#include <string>

#include "ops/blas.h"
#include "ops/fast_math.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"
#include "ops/softmax_row.h"

namespace attnps {
namespace {

// A [rows, last] view of a tensor of rank >= 1.
Tensor Flat(const Tensor& t) {
  const int64_t last = t.dim(-1);
  return t.Reshaped({last == 0 ? 0 : t.numel() / last, last});
}

// Attention over G independent matrices: p [G,Tq,T] = masked softmax(q k^T / sqrt(Dk)),
// out [G,Tq,Dv] = p v. Matrix g uses mask row g / heads (mask [G/heads, T] or empty). One pass per
// matrix, in parallel over the matrices, so that its scores stay in cache between the two GEMMs
// and the softmax (the same GEMM calls and rows as three batched passes would make).
void AttentionCoreForward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          int64_t heads, bool causal, Tensor* p, Tensor* out) {
  const int64_t g_count = q.dim(0), tq = q.dim(1), t = k.dim(1), dk = q.dim(2), dv = v.dim(2);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dk));
  float* pd = p->data();
  const float* md = mask.empty() ? nullptr : mask.data();
  ParallelFor(g_count, tq * t * (2 * dk + 2 * dv + 8), [&](int64_t g) {
    float* pg = pd + g * tq * t;
    Gemm(false, true, tq, t, dk, 1.0f, q.data() + g * tq * dk, dk, k.data() + g * t * dk, dk, 0.0f,
         pg, t);
    for (int64_t i = 0; i < tq; ++i) {
      SoftmaxRow(pg + i * t, md ? md + (g / heads) * t : nullptr, causal ? i + 1 : t, t, scale,
                 pg + i * t);
    }
    Gemm(false, false, tq, dv, t, 1.0f, pg, t, v.data() + g * t * dv, dv, 0.0f,
         out->data() + g * tq * dv, dv);
  });
}

// Gradients of AttentionCoreForward given d_out; d_scores [G,Tq,T] is scratch. One pass per
// matrix, as the forward.
void AttentionCoreBackward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& p,
                           const Tensor& d_out, Tensor* d_scores, Tensor* dq, Tensor* dk,
                           Tensor* dv) {
  const int64_t g_count = q.dim(0), tq = q.dim(1), t = k.dim(1), dkd = q.dim(2), dvd = v.dim(2);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dkd));
  const bool scores = dq != nullptr || dk != nullptr;
  ParallelFor(g_count, tq * t * (4 * dkd + 4 * dvd + 8), [&](int64_t g) {
    const float* pg = p.data() + g * tq * t;
    const float* dog = d_out.data() + g * tq * dvd;
    const float* qg = q.data() + g * tq * dkd;
    const float* kg = k.data() + g * t * dkd;
    if (dv != nullptr) {  // dv += p^T d_out
      Gemm(true, false, t, dvd, tq, 1.0f, pg, t, dog, dvd, 1.0f, dv->data() + g * t * dvd, dvd);
    }
    if (!scores) return;
    float* sg = d_scores->data() + g * tq * t;
    Gemm(false, true, tq, t, dvd, 1.0f, dog, dvd, v.data() + g * t * dvd, dvd, 0.0f, sg, t);
    for (int64_t i = 0; i < tq; ++i) {
      SoftmaxGradRow<GradMode::kAssign>(pg + i * t, sg + i * t, t, scale, sg + i * t);
    }
    if (dq != nullptr) {  // dq += d_scores k
      Gemm(false, false, tq, dkd, t, 1.0f, sg, t, kg, dkd, 1.0f, dq->data() + g * tq * dkd, dkd);
    }
    if (dk != nullptr) {  // dk += d_scores^T q
      Gemm(true, false, t, dkd, tq, 1.0f, sg, t, qg, dkd, 1.0f, dk->data() + g * t * dkd, dkd);
    }
  });
}

// src [B, T, H*Dh] -> dst [B, H, T, Dh].
void SplitHeads(const Tensor& src, int64_t heads, Tensor* dst) {
  const int64_t b = src.dim(0), t = src.dim(1), width = src.dim(2), dh = width / heads;
  const float* s = src.data();
  float* d = dst->data();
  ParallelFor(b, t * width, [&](int64_t bi) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t ti = 0; ti < t; ++ti)
        std::memcpy(d + ((bi * heads + h) * t + ti) * dh, s + (bi * t + ti) * width + h * dh,
                    dh * sizeof(float));
  });
}

// src [B, H, T, Dh] -> dst [B, T, H*Dh].
void MergeHeads(const Tensor& src, Tensor* dst) {
  const int64_t b = src.dim(0), heads = src.dim(1), t = src.dim(2), dh = src.dim(3);
  const int64_t width = heads * dh;
  const float* s = src.data();
  float* d = dst->data();
  ParallelFor(b, t * width, [&](int64_t bi) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t ti = 0; ti < t; ++ti)
        std::memcpy(d + (bi * t + ti) * width + h * dh, s + ((bi * heads + h) * t + ti) * dh,
                    dh * sizeof(float));
  });
}

// [B, H, T, Dh] as [B*H, T, Dh].
Tensor MergeBatchHeads(const Tensor& t) {
  return t.Reshaped({t.dim(0) * t.dim(1), t.dim(2), t.dim(3)});
}

Tensor* GradOrNull(MultiHeadAttentionParams* grads, Tensor MultiHeadAttentionParams::*member) {
  if (grads == nullptr || (grads->*member).empty()) return nullptr;
  return &(grads->*member);
}

struct MhaSizes {
  int64_t b, tq, t, d, pk, pv, dout, heads;
};

// Validates the inputs, weights and the forward workspace; `out` is the output or its gradient.
MhaSizes CheckMha(const char* op, const Tensor& query, const Tensor& keys, const Tensor& mask,
                  const MultiHeadAttentionParams& p, const MultiHeadAttentionOptions& options,
                  const MultiHeadAttentionWorkspace& ws, const char* out_name, const Tensor& out) {
  Dim b("B"), tq("Tq"), t("T"), d("D"), pk("Pk"), pv("Pv"), dout("Dout");
  const int64_t heads = options.heads;
  {
    ShapeCheck check(op);
    check.Arg("query", query, {&b, &tq, &d}).Arg("keys", keys, {&b, &t, &d});
    check.Optional("mask", mask, {&b, &t});
    check.Arg("wq", p.wq, {&d, &pk}).Optional("bq", p.bq, {&pk});
    check.Arg("wk", p.wk, {&d, &pk}).Optional("bk", p.bk, {&pk});
    check.Arg("wv", p.wv, {&d, &pv}).Optional("bv", p.bv, {&pv});
    check.Arg("wo", p.wo, {&pv, &dout}).Optional("bo", p.bo, {&dout});
    check.Arg(out_name, out, {&b, &tq, &dout});
    check.Require(heads > 0 && pk.value() % heads == 0 && pv.value() % heads == 0,
                  "heads=" + std::to_string(heads) + " dividing Pk=" + std::to_string(pk.value()) +
                      " and Pv=" + std::to_string(pv.value()));
    check.Require(!options.causal || tq.value() == t.value(), "causal attention with Tq == T");
  }
  Dim h("H", heads), dk("Dk", pk.value() / heads), dv("Dv", pv.value() / heads);
  ShapeCheck(op)
      .Arg("ws.q", ws.q, {&b, &tq, &pk})
      .Arg("ws.k", ws.k, {&b, &t, &pk})
      .Arg("ws.v", ws.v, {&b, &t, &pv})
      .Arg("ws.qh", ws.qh, {&b, &h, &tq, &dk})
      .Arg("ws.kh", ws.kh, {&b, &h, &t, &dk})
      .Arg("ws.vh", ws.vh, {&b, &h, &t, &dv})
      .Arg("ws.probs", ws.probs, {&b, &h, &tq, &t})
      .Arg("ws.heads", ws.heads, {&b, &h, &tq, &dv})
      .Arg("ws.concat", ws.concat, {&b, &tq, &pv})
      .Done();
  return {b.value(), tq.value(), t.value(), d.value(), pk.value(), pv.value(), dout.value(), heads};
}

struct AdditiveSizes {
  int64_t b, t, dq, dk, a;
};

AdditiveSizes CheckAdditive(const char* op, const Tensor& q, const Tensor& k, const Tensor& mask,
                            const AdditiveAttentionParams& p, const AdditiveAttentionWorkspace& ws,
                            const Tensor& weights, const char* pooled_name, const Tensor& pooled) {
  Dim b("B"), t("T"), dq("Dq"), dk("Dk"), a("A");
  ShapeCheck(op)
      .Arg("q", q, {&b, &dq})
      .Arg("k", k, {&b, &t, &dk})
      .Optional("mask", mask, {&b, &t})
      .Arg("wq", p.wq, {&dq, &a})
      .Arg("wk", p.wk, {&dk, &a})
      .Arg("b", p.b, {&a})
      .Arg("v", p.v, {&a})
      .Arg("weights", weights, {&b, &t})
      .Arg(pooled_name, pooled, {&b, &dk})
      .Arg("ws.q_term", ws.q_term, {&b, &a})
      .Arg("ws.hidden", ws.hidden, {&b, &t, &a})
      .Done();
  return {b.value(), t.value(), dq.value(), dk.value(), a.value()};
}

}  // namespace

void MaskedSoftmaxForward(const Tensor& x, const Tensor& mask, float scale, Tensor* y) {
  Dim n("N"), t("T");
  ShapeCheck("masked_softmax_forward")
      .Arg("x", x, {&n, &t})
      .Optional("mask", mask, {&n, &t})
      .Arg("y", *y, {&n, &t})
      .Done();
  const int64_t cols = t.value();
  const float* xd = x.data();
  const float* md = mask.empty() ? nullptr : mask.data();
  float* yd = y->data();
  ParallelFor(n.value(), 8 * cols, [&](int64_t r) {
    SoftmaxRow(xd + r * cols, md ? md + r * cols : nullptr, cols, cols, scale, yd + r * cols);
  });
}

void MaskedSoftmaxBackward(const Tensor& y, const Tensor& dy, float scale, Tensor* dx) {
  Dim n("N"), t("T");
  ShapeCheck check("masked_softmax_backward");
  check.Arg("y", y, {&n, &t}).Arg("dy", dy, {&n, &t});
  if (dx != nullptr) check.Arg("dx", *dx, {&n, &t});
  check.Done();
  if (dx == nullptr) return;
  const int64_t cols = t.value();
  const float* yd = y.data();
  const float* dyd = dy.data();
  float* dxd = dx->data();
  ParallelFor(n.value(), 4 * cols, [&](int64_t r) {
    SoftmaxGradRow<GradMode::kAccumulate>(yd + r * cols, dyd + r * cols, cols, scale,
                                          dxd + r * cols);
  });
}

void ScaledDotProductAttentionForward(const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& mask, bool causal, Tensor* p, Tensor* out) {
  Dim b("B"), tq("Tq"), t("T"), dk("Dk"), dv("Dv");
  ShapeCheck("scaled_dot_product_attention_forward")
      .Arg("q", q, {&b, &tq, &dk})
      .Arg("k", k, {&b, &t, &dk})
      .Arg("v", v, {&b, &t, &dv})
      .Optional("mask", mask, {&b, &t})
      .Arg("p", *p, {&b, &tq, &t})
      .Arg("out", *out, {&b, &tq, &dv})
      .Require(!causal || tq.value() == t.value(), "causal attention with Tq == T")
      .Done();
  AttentionCoreForward(q, k, v, mask, /*heads=*/1, causal, p, out);
}

void ScaledDotProductAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& p, const Tensor& d_out, Tensor* dq, Tensor* dk,
                                       Tensor* dv) {
  Dim b("B"), tq("Tq"), t("T"), dkd("Dk"), dvd("Dv");
  ShapeCheck check("scaled_dot_product_attention_backward");
  check.Arg("q", q, {&b, &tq, &dkd}).Arg("k", k, {&b, &t, &dkd}).Arg("v", v, {&b, &t, &dvd});
  check.Arg("p", p, {&b, &tq, &t}).Arg("d_out", d_out, {&b, &tq, &dvd});
  if (dq != nullptr) check.Like("dq", *dq, q);
  if (dk != nullptr) check.Like("dk", *dk, k);
  if (dv != nullptr) check.Like("dv", *dv, v);
  check.Done();
  Tensor d_scores = Tensor::Empty(p.shape());
  AttentionCoreBackward(q, k, v, p, d_out, &d_scores, dq, dk, dv);
}

MultiHeadAttentionParams MultiHeadAttentionParams::ZerosLike(const MultiHeadAttentionParams& p) {
  auto zeros = [](const Tensor& t) { return t.ndim() == 0 ? Tensor() : Tensor::Zeros(t.shape()); };
  return {zeros(p.wq), zeros(p.bq), zeros(p.wk), zeros(p.bk),
          zeros(p.wv), zeros(p.bv), zeros(p.wo), zeros(p.bo)};
}

MultiHeadAttentionWorkspace MultiHeadAttentionWorkspace::Allocate(int64_t b, int64_t tq, int64_t t,
                                                                  int64_t heads, int64_t dk,
                                                                  int64_t dv) {
  MultiHeadAttentionWorkspace ws;
  ws.q = Tensor::Zeros({b, tq, heads * dk});
  ws.k = Tensor::Zeros({b, t, heads * dk});
  ws.v = Tensor::Zeros({b, t, heads * dv});
  ws.qh = Tensor::Zeros({b, heads, tq, dk});
  ws.kh = Tensor::Zeros({b, heads, t, dk});
  ws.vh = Tensor::Zeros({b, heads, t, dv});
  ws.probs = Tensor::Zeros({b, heads, tq, t});
  ws.heads = Tensor::Zeros({b, heads, tq, dv});
  ws.concat = Tensor::Zeros({b, tq, heads * dv});
  ws.d_q = Tensor::Zeros(ws.q.shape());
  ws.d_k = Tensor::Zeros(ws.k.shape());
  ws.d_v = Tensor::Zeros(ws.v.shape());
  ws.d_qh = Tensor::Zeros(ws.qh.shape());
  ws.d_kh = Tensor::Zeros(ws.kh.shape());
  ws.d_vh = Tensor::Zeros(ws.vh.shape());
  ws.d_probs = Tensor::Zeros(ws.probs.shape());
  ws.d_heads = Tensor::Zeros(ws.heads.shape());
  ws.d_concat = Tensor::Zeros(ws.concat.shape());
  return ws;
}

void MultiHeadAttentionForward(const Tensor& query, const Tensor& keys, const Tensor& mask,
                               const MultiHeadAttentionParams& params,
                               const MultiHeadAttentionOptions& options,
                               MultiHeadAttentionWorkspace* ws, Tensor* out) {
  const MhaSizes s = CheckMha("multi_head_attention_forward", query, keys, mask, params, options,
                              *ws, "out", *out);
  Tensor q2 = Flat(ws->q), k2 = Flat(ws->k), v2 = Flat(ws->v), out2 = Flat(*out);
  const Tensor keys2 = Flat(keys);
  LinearForward(Flat(query), params.wq, params.bq, &q2);
  LinearForward(keys2, params.wk, params.bk, &k2);
  LinearForward(keys2, params.wv, params.bv, &v2);
  SplitHeads(ws->q, s.heads, &ws->qh);
  SplitHeads(ws->k, s.heads, &ws->kh);
  SplitHeads(ws->v, s.heads, &ws->vh);
  Tensor probs = MergeBatchHeads(ws->probs), heads = MergeBatchHeads(ws->heads);
  AttentionCoreForward(MergeBatchHeads(ws->qh), MergeBatchHeads(ws->kh), MergeBatchHeads(ws->vh),
                       mask, s.heads, options.causal, &probs, &heads);
  MergeHeads(ws->heads, &ws->concat);
  LinearForward(Flat(ws->concat), params.wo, params.bo, &out2);
}

void MultiHeadAttentionBackward(const Tensor& query, const Tensor& keys, const Tensor& mask,
                                const MultiHeadAttentionParams& params,
                                const MultiHeadAttentionOptions& options, const Tensor& d_out,
                                MultiHeadAttentionWorkspace* ws, Tensor* d_query, Tensor* d_keys,
                                MultiHeadAttentionParams* grads) {
  const char* op = "multi_head_attention_backward";
  const MhaSizes s = CheckMha(op, query, keys, mask, params, options, *ws, "d_out", d_out);
  {
    ShapeCheck check(op);
    check.Like("ws.d_q", ws->d_q, ws->q).Like("ws.d_k", ws->d_k, ws->k);
    check.Like("ws.d_v", ws->d_v, ws->v).Like("ws.d_qh", ws->d_qh, ws->qh);
    check.Like("ws.d_kh", ws->d_kh, ws->kh).Like("ws.d_vh", ws->d_vh, ws->vh);
    check.Like("ws.d_probs", ws->d_probs, ws->probs).Like("ws.d_heads", ws->d_heads, ws->heads);
    check.Like("ws.d_concat", ws->d_concat, ws->concat);
    if (d_query != nullptr) check.Like("d_query", *d_query, query);
    if (d_keys != nullptr) check.Like("d_keys", *d_keys, keys);
    if (grads != nullptr) {
      check.Like("grads.wq", grads->wq, params.wq).Like("grads.bq", grads->bq, params.bq);
      check.Like("grads.wk", grads->wk, params.wk).Like("grads.bk", grads->bk, params.bk);
      check.Like("grads.wv", grads->wv, params.wv).Like("grads.bv", grads->bv, params.bv);
      check.Like("grads.wo", grads->wo, params.wo).Like("grads.bo", grads->bo, params.bo);
    }
  }
  using P = MultiHeadAttentionParams;
  // Output projection, then back into per-head layout.
  ws->d_concat.SetZero();
  Tensor d_concat2 = Flat(ws->d_concat);
  LinearBackward(Flat(ws->concat), params.wo, Flat(d_out), &d_concat2, GradOrNull(grads, &P::wo),
                 GradOrNull(grads, &P::bo));
  SplitHeads(ws->d_concat, s.heads, &ws->d_heads);
  // Attention per head.
  ws->d_qh.SetZero();
  ws->d_kh.SetZero();
  ws->d_vh.SetZero();
  Tensor d_probs = MergeBatchHeads(ws->d_probs), d_qh = MergeBatchHeads(ws->d_qh),
         d_kh = MergeBatchHeads(ws->d_kh), d_vh = MergeBatchHeads(ws->d_vh);
  AttentionCoreBackward(MergeBatchHeads(ws->qh), MergeBatchHeads(ws->kh), MergeBatchHeads(ws->vh),
                        MergeBatchHeads(ws->probs), MergeBatchHeads(ws->d_heads), &d_probs, &d_qh,
                        &d_kh, &d_vh);
  MergeHeads(ws->d_qh, &ws->d_q);
  MergeHeads(ws->d_kh, &ws->d_k);
  MergeHeads(ws->d_vh, &ws->d_v);
  // Input projections.
  Tensor dq2, dk2;
  if (d_query != nullptr) dq2 = Flat(*d_query);
  if (d_keys != nullptr) dk2 = Flat(*d_keys);
  const Tensor keys2 = Flat(keys);
  LinearBackward(Flat(query), params.wq, Flat(ws->d_q), d_query ? &dq2 : nullptr,
                 GradOrNull(grads, &P::wq), GradOrNull(grads, &P::bq));
  LinearBackward(keys2, params.wk, Flat(ws->d_k), d_keys ? &dk2 : nullptr,
                 GradOrNull(grads, &P::wk), GradOrNull(grads, &P::bk));
  LinearBackward(keys2, params.wv, Flat(ws->d_v), d_keys ? &dk2 : nullptr,
                 GradOrNull(grads, &P::wv), GradOrNull(grads, &P::bv));
}

AdditiveAttentionParams AdditiveAttentionParams::Zeros(int64_t dq, int64_t dk, int64_t a) {
  return {Tensor::Zeros({dq, a}), Tensor::Zeros({dk, a}), Tensor::Zeros({a}), Tensor::Zeros({a})};
}

AdditiveAttentionWorkspace AdditiveAttentionWorkspace::Allocate(int64_t b, int64_t t, int64_t a) {
  return {Tensor::Zeros({b, a}), Tensor::Zeros({b, t, a}), Tensor::Zeros({b, t}),
          Tensor::Zeros({b, t, a}), Tensor::Zeros({b, a})};
}

void AdditiveAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                              const AdditiveAttentionParams& params, AdditiveAttentionWorkspace* ws,
                              Tensor* weights, Tensor* pooled) {
  const AdditiveSizes s = CheckAdditive("additive_attention_forward", q, k, mask, params, *ws,
                                        *weights, "pooled", *pooled);
  LinearForward(q, params.wq, params.b, &ws->q_term);  // once per sample
  Tensor hidden2 = Flat(ws->hidden);
  LinearForward(Flat(k), params.wk, Tensor(), &hidden2);
  const int64_t t = s.t, a = s.a;
  const float* qt = ws->q_term.data();
  const float* v = params.v.data();
  const float* md = mask.empty() ? nullptr : mask.data();
  float* hd = ws->hidden.data();
  float* wd = weights->data();
  ParallelFor(s.b, 4 * t * a, [&](int64_t bi) {
    const float* q_row = qt + bi * a;
    float* w_row = wd + bi * t;
    const float* m_row = md ? md + bi * t : nullptr;
    for (int64_t ti = 0; ti < t; ++ti) {
      float* h = hd + (bi * t + ti) * a;
      if (m_row != nullptr && m_row[ti] == 0.0f) {  // padding: no score needed
        std::memset(h, 0, a * sizeof(float));
        w_row[ti] = 0.0f;
        continue;
      }
      float score = 0.0f;
      for (int64_t j = 0; j < a; ++j) {
        h[j] = FastTanh(h[j] + q_row[j]);
        score += h[j] * v[j];
      }
      w_row[ti] = score;
    }
    SoftmaxRow(w_row, m_row, t, t, 1.0f, w_row);
  });
  Tensor pooled3 = pooled->Reshaped({s.b, 1, s.dk});
  BatchedMatmulForward(weights->Reshaped({s.b, 1, t}), false, k, false, &pooled3);
}

void AdditiveAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& mask,
                               const AdditiveAttentionParams& params, const Tensor& weights,
                               const Tensor& d_weights, const Tensor& d_pooled,
                               AdditiveAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                               AdditiveAttentionParams* grads) {
  const char* op = "additive_attention_backward";
  const AdditiveSizes s = CheckAdditive(op, q, k, mask, params, *ws, weights, "d_pooled", d_pooled);
  {
    ShapeCheck check(op);
    if (d_weights.ndim() != 0) check.Like("d_weights", d_weights, weights);  // else absent
    check.Like("ws.d_weights", ws->d_weights, weights);
    check.Like("ws.d_hidden", ws->d_hidden, ws->hidden);
    check.Like("ws.d_q_term", ws->d_q_term, ws->q_term);
    if (dq != nullptr) check.Like("dq", *dq, q);
    if (dk != nullptr) check.Like("dk", *dk, k);
    if (grads != nullptr) {
      check.Like("grads.wq", grads->wq, params.wq).Like("grads.wk", grads->wk, params.wk);
      check.Like("grads.b", grads->b, params.b).Like("grads.v", grads->v, params.v);
    }
  }
  const int64_t t = s.t, a = s.a;
  // d weights = d_weights + d_pooled k^T; dk += weights^T d_pooled.
  if (d_weights.empty()) {
    ws->d_weights.SetZero();
  } else {
    ws->d_weights.CopyFrom(d_weights);
  }
  Tensor dw3 = ws->d_weights.Reshaped({s.b, 1, t});
  BatchedMatmulBackward(weights.Reshaped({s.b, 1, t}), false, k, false,
                        d_pooled.Reshaped({s.b, 1, s.dk}), &dw3, dk);
  // Softmax, then tanh: d_hidden = d_score * v * (1 - h^2), d_q_term = sum_t d_hidden.
  const float* wd = weights.data();
  const float* hd = ws->hidden.data();
  const float* v = params.v.data();
  float* dsd = ws->d_weights.data();  // becomes d_scores in place
  float* dhd = ws->d_hidden.data();
  float* dqt = ws->d_q_term.data();
  ParallelFor(s.b, 4 * t * a, [&](int64_t bi) {
    float* ds = dsd + bi * t;
    SoftmaxGradRow<GradMode::kAssign>(wd + bi * t, ds, t, 1.0f, ds);
    float* dq_row = dqt + bi * a;
    for (int64_t j = 0; j < a; ++j) dq_row[j] = 0.0f;
    for (int64_t ti = 0; ti < t; ++ti) {
      const float* h = hd + (bi * t + ti) * a;
      float* dh = dhd + (bi * t + ti) * a;
      const float g = ds[ti];
      for (int64_t j = 0; j < a; ++j) {
        dh[j] = g * v[j] * (1.0f - h[j] * h[j]);
        dq_row[j] += dh[j];
      }
    }
  });
  if (grads != nullptr) {  // dv += hidden^T d_scores
    Gemm(true, false, a, 1, s.b * t, 1.0f, hd, a, dsd, 1, 1.0f, grads->v.data(), 1);
  }
  LinearBackward(q, params.wq, ws->d_q_term, dq, grads ? &grads->wq : nullptr,
                 grads ? &grads->b : nullptr);
  Tensor dk2;
  if (dk != nullptr) dk2 = Flat(*dk);
  LinearBackward(Flat(k), params.wk, Flat(ws->d_hidden), dk ? &dk2 : nullptr,
                 grads ? &grads->wk : nullptr, nullptr);
}

}  // namespace attnps
