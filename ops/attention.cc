#include "ops/attention.h"

#include <cmath>
#include <cstring>
#include <string>

#include "ops/blas.h"
#include "ops/cuda/kernel_bodies.h"
#include "ops/device_dispatch.h"
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

// The per-head matrices of columns [col0, col0 + H*dh) of a [B, T, W] tensor without copying them
// out: matrix (b, h) starts at row b*T, column col0 + h*dh, with row stride W.
struct HeadMatrices {
  float* data = nullptr;  // null: absent (a gradient that is not wanted)
  int64_t t = 0, dh = 0, heads = 1, stride = 0;
  Device memory = Device::kCPU;

  // All of x's columns (width 0) or `width` of them from col0.
  static HeadMatrices Of(const Tensor& x, int64_t heads, int64_t col0 = 0, int64_t width = 0) {
    const int64_t w = width > 0 ? width : x.dim(2);
    return {const_cast<float*>(x.data()) + col0, x.dim(1), w / heads, heads, x.dim(2), x.device()};
  }
  Device device() const { return memory; }
  cuda::HeadLayout layout() const { return {data, t, dh, heads, stride}; }
  float* at(int64_t b, int64_t h) const { return data + b * t * stride + h * dh; }
  int64_t ld() const { return stride; }
};

// Self-attention's three input projections as one: [wq | wk | wv] [D, 2Pk + Pv] and the biases
// side by side (zeros where one is absent; empty when all three are).
struct PackedQkv {
  Tensor w, b;
};

PackedQkv PackQkv(const MultiHeadAttentionParams& p) {
  const int64_t d = p.wq.dim(0), pk = p.wq.dim(1), pv = p.wv.dim(1), n = 2 * pk + pv;
  PackedQkv out{Tensor::Empty({d, n}, p.wq.device()), Tensor()};
  const Tensor* weights[] = {&p.wq, &p.wk, &p.wv};
  const Tensor* biases[] = {&p.bq, &p.bk, &p.bv};
  const int64_t widths[] = {pk, pk, pv};
  for (int j = 0, col = 0; j < 3; col += widths[j++])
    CopyColumns(*weights[j], 0, &out.w, col, widths[j], false);
  if (p.bq.empty() && p.bk.empty() && p.bv.empty()) return out;
  out.b = Tensor::Zeros({n}, p.wq.device());
  Tensor b_row = out.b.Reshaped({1, n});
  for (int j = 0, col = 0; j < 3; col += widths[j++]) {
    if (!biases[j]->empty())
      CopyColumns(biases[j]->Reshaped({1, widths[j]}), 0, &b_row, col, widths[j], false);
  }
  return out;
}

// grads' wq, wk, wv and their biases += the packed gradients' columns (each skipped when absent).
void AddUnpackedQkvGrads(const PackedQkv& g, int64_t pk, int64_t pv,
                         MultiHeadAttentionParams* grads) {
  Tensor* ws[] = {&grads->wq, &grads->wk, &grads->wv};
  Tensor* bs[] = {&grads->bq, &grads->bk, &grads->bv};
  const int64_t widths[] = {pk, pk, pv};
  const int64_t n = g.w.dim(1);
  for (int j = 0, col = 0; j < 3; col += widths[j++]) {
    if (!ws[j]->empty()) CopyColumns(g.w, col, ws[j], 0, widths[j], true);
    if (!g.b.empty() && !bs[j]->empty()) {
      Tensor b_row = bs[j]->Reshaped({1, widths[j]});
      CopyColumns(g.b.Reshaped({1, n}), col, &b_row, 0, widths[j], true);
    }
  }
}

// Attention per (b, h): p [B, H, Tq, T] = masked softmax(q k^T / sqrt(Dk)), out = p v (out in
// the same head layout). Mask row b (mask [B, T] or null). One pass per matrix, in parallel over
// the matrices, so that its scores stay in cache between the two GEMMs and the softmax.
void AttentionCoreForward(const HeadMatrices& q, const HeadMatrices& k, const HeadMatrices& v,
                          const float* mask, int64_t batch, bool causal, float* p,
                          const HeadMatrices& out) {
  ATTNPS_RUN_ON_CUDA(q, AttentionCoreForward(q.layout(), k.layout(), v.layout(), mask, batch,
                                             causal, p, out.layout()));
  const int64_t heads = q.heads, tq = q.t, t = k.t, dk = q.dh, dv = v.dh;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dk));
  ParallelFor(batch * heads, tq * t * (2 * dk + 2 * dv + 8), [&](int64_t g) {
    const int64_t b = g / heads, h = g % heads;
    float* pg = p + g * tq * t;
    Gemm(false, true, tq, t, dk, 1.0f, q.at(b, h), q.ld(), k.at(b, h), k.ld(), 0.0f, pg, t);
    for (int64_t i = 0; i < tq; ++i) {
      SoftmaxRow(pg + i * t, mask ? mask + b * t : nullptr, causal ? i + 1 : t, t, scale,
                 pg + i * t);
    }
    Gemm(false, false, tq, dv, t, 1.0f, pg, t, v.at(b, h), v.ld(), 0.0f, out.at(b, h), out.ld());
  });
}

// Gradients of AttentionCoreForward given d_out (in the head layout); d_scores [B, H, Tq, T] is
// scratch; dq, dk, dv accumulate (+=) in the head layout, each absent when its data is null.
void AttentionCoreBackward(const HeadMatrices& q, const HeadMatrices& k, const HeadMatrices& v,
                           const float* p, const HeadMatrices& d_out, int64_t batch,
                           float* d_scores, const HeadMatrices& dq, const HeadMatrices& dk,
                           const HeadMatrices& dv) {
  ATTNPS_RUN_ON_CUDA(
      q, AttentionCoreBackward(q.layout(), k.layout(), v.layout(), p, d_out.layout(), batch,
                               d_scores, dq.layout(), dk.layout(), dv.layout()));
  const int64_t heads = q.heads, tq = q.t, t = k.t, dkd = q.dh, dvd = v.dh;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dkd));
  const bool scores = dq.data != nullptr || dk.data != nullptr;
  ParallelFor(batch * heads, tq * t * (4 * dkd + 4 * dvd + 8), [&](int64_t g) {
    const int64_t b = g / heads, h = g % heads;
    const float* pg = p + g * tq * t;
    if (dv.data != nullptr) {  // dv += p^T d_out
      Gemm(true, false, t, dvd, tq, 1.0f, pg, t, d_out.at(b, h), d_out.ld(), 1.0f, dv.at(b, h),
           dv.ld());
    }
    if (!scores) return;
    float* sg = d_scores + g * tq * t;
    Gemm(false, true, tq, t, dvd, 1.0f, d_out.at(b, h), d_out.ld(), v.at(b, h), v.ld(), 0.0f, sg,
         t);
    for (int64_t i = 0; i < tq; ++i) {
      SoftmaxGradRow<GradMode::kAssign>(pg + i * t, sg + i * t, t, scale, sg + i * t);
    }
    if (dq.data != nullptr) {  // dq += d_scores k
      Gemm(false, false, tq, dkd, t, 1.0f, sg, t, k.at(b, h), k.ld(), 1.0f, dq.at(b, h), dq.ld());
    }
    if (dk.data != nullptr) {  // dk += d_scores^T q
      Gemm(true, false, t, dkd, tq, 1.0f, sg, t, q.at(b, h), q.ld(), 1.0f, dk.at(b, h), dk.ld());
    }
  });
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
    ShapeCheck check(op, query.device());
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
  Dim h("H", heads);
  Dim packed("2Pk+Pv", 2 * pk.value() + pv.value());
  ShapeCheck check(op, query.device());
  if (ws.self_attention()) {
    check.Arg("ws.qkv", ws.qkv, {&b, &t, &packed});
    check.Require(query.data() == keys.data() && tq.value() == t.value(),
                  "a self-attention workspace with query and keys one tensor");
  } else {
    check.Arg("ws.q", ws.q, {&b, &tq, &pk}).Arg("ws.k", ws.k, {&b, &t, &pk});
    check.Arg("ws.v", ws.v, {&b, &t, &pv});
  }
  check.Arg("ws.probs", ws.probs, {&b, &h, &tq, &t}).Arg("ws.concat", ws.concat, {&b, &tq, &pv});
  check.Done();
  return {b.value(), tq.value(), t.value(), d.value(), pk.value(), pv.value(), dout.value(), heads};
}

struct AdditiveSizes {
  int64_t b, t, dq, dk, a;
};

AdditiveSizes CheckAdditive(const char* op, const Tensor& q, const Tensor& k, const Tensor& mask,
                            const AdditiveAttentionParams& p, const AdditiveAttentionWorkspace& ws,
                            const Tensor& weights, const char* pooled_name, const Tensor& pooled) {
  Dim b("B"), t("T"), dq("Dq"), dk("Dk"), a("A");
  ShapeCheck(op, q.device())
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
  ShapeCheck("masked_softmax_forward", x.device())
      .Arg("x", x, {&n, &t})
      .Optional("mask", mask, {&n, &t})
      .Arg("y", *y, {&n, &t})
      .Done();
  ATTNPS_RUN_ON_CUDA(x, MaskedSoftmaxForward(x, mask, scale, y));
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
  ShapeCheck check("masked_softmax_backward", y.device());
  check.Arg("y", y, {&n, &t}).Arg("dy", dy, {&n, &t});
  if (dx != nullptr) check.Arg("dx", *dx, {&n, &t});
  check.Done();
  ATTNPS_RUN_ON_CUDA(y, MaskedSoftmaxBackward(y, dy, scale, dx));
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
  ShapeCheck("scaled_dot_product_attention_forward", q.device())
      .Arg("q", q, {&b, &tq, &dk})
      .Arg("k", k, {&b, &t, &dk})
      .Arg("v", v, {&b, &t, &dv})
      .Optional("mask", mask, {&b, &t})
      .Arg("p", *p, {&b, &tq, &t})
      .Arg("out", *out, {&b, &tq, &dv})
      .Require(!causal || tq.value() == t.value(), "causal attention with Tq == T")
      .Done();
  AttentionCoreForward(HeadMatrices::Of(q, 1), HeadMatrices::Of(k, 1), HeadMatrices::Of(v, 1),
                       mask.empty() ? nullptr : mask.data(), q.dim(0), causal, p->data(),
                       HeadMatrices::Of(*out, 1));
}

void ScaledDotProductAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& p, const Tensor& d_out, Tensor* dq, Tensor* dk,
                                       Tensor* dv) {
  Dim b("B"), tq("Tq"), t("T"), dkd("Dk"), dvd("Dv");
  ShapeCheck check("scaled_dot_product_attention_backward", q.device());
  check.Arg("q", q, {&b, &tq, &dkd}).Arg("k", k, {&b, &t, &dkd}).Arg("v", v, {&b, &t, &dvd});
  check.Arg("p", p, {&b, &tq, &t}).Arg("d_out", d_out, {&b, &tq, &dvd});
  if (dq != nullptr) check.Like("dq", *dq, q);
  if (dk != nullptr) check.Like("dk", *dk, k);
  if (dv != nullptr) check.Like("dv", *dv, v);
  check.Done();
  Tensor d_scores = Tensor::Empty(p.shape(), p.device());
  auto grad = [](Tensor* g) { return g ? HeadMatrices::Of(*g, 1) : HeadMatrices(); };
  AttentionCoreBackward(HeadMatrices::Of(q, 1), HeadMatrices::Of(k, 1), HeadMatrices::Of(v, 1),
                        p.data(), HeadMatrices::Of(d_out, 1), q.dim(0), d_scores.data(), grad(dq),
                        grad(dk), grad(dv));
}

MultiHeadAttentionParams MultiHeadAttentionParams::ZerosLike(const MultiHeadAttentionParams& p) {
  auto zeros = [](const Tensor& t) {
    return t.ndim() == 0 ? Tensor() : Tensor::Zeros(t.shape(), t.device());
  };
  return {zeros(p.wq), zeros(p.bq), zeros(p.wk), zeros(p.bk),
          zeros(p.wv), zeros(p.bv), zeros(p.wo), zeros(p.bo)};
}

MultiHeadAttentionWorkspace MultiHeadAttentionWorkspace::Allocate(int64_t b, int64_t tq, int64_t t,
                                                                  int64_t heads, int64_t dk,
                                                                  int64_t dv, Device device) {
  MultiHeadAttentionWorkspace ws;
  ws.q = Tensor::Zeros({b, tq, heads * dk}, device);
  ws.k = Tensor::Zeros({b, t, heads * dk}, device);
  ws.v = Tensor::Zeros({b, t, heads * dv}, device);
  ws.probs = Tensor::Zeros({b, heads, tq, t}, device);
  ws.concat = Tensor::Zeros({b, tq, heads * dv}, device);
  ws.d_q = Tensor::Zeros(ws.q.shape(), device);
  ws.d_k = Tensor::Zeros(ws.k.shape(), device);
  ws.d_v = Tensor::Zeros(ws.v.shape(), device);
  ws.d_probs = Tensor::Zeros(ws.probs.shape(), device);
  ws.d_concat = Tensor::Zeros(ws.concat.shape(), device);
  return ws;
}

MultiHeadAttentionWorkspace MultiHeadAttentionWorkspace::AllocateSelf(int64_t b, int64_t t,
                                                                      int64_t heads, int64_t dk,
                                                                      int64_t dv, Device device) {
  MultiHeadAttentionWorkspace ws;
  ws.qkv = Tensor::Zeros({b, t, heads * (2 * dk + dv)}, device);
  ws.probs = Tensor::Zeros({b, heads, t, t}, device);
  ws.concat = Tensor::Zeros({b, t, heads * dv}, device);
  ws.d_qkv = Tensor::Zeros(ws.qkv.shape(), device);
  ws.d_probs = Tensor::Zeros(ws.probs.shape(), device);
  ws.d_concat = Tensor::Zeros(ws.concat.shape(), device);
  return ws;
}

MultiHeadAttentionWorkspace MultiHeadAttentionWorkspace::Samples(int64_t b0, int64_t b1) const {
  using W = MultiHeadAttentionWorkspace;
  MultiHeadAttentionWorkspace out;
  for (Tensor W::*t : {&W::q, &W::k, &W::v, &W::qkv, &W::probs, &W::concat, &W::d_q, &W::d_k,
                       &W::d_v, &W::d_qkv, &W::d_probs, &W::d_concat}) {
    if (!(this->*t).empty()) out.*t = (this->*t).Rows(b0, b1);
  }
  return out;
}

void MultiHeadAttentionForward(const Tensor& query, const Tensor& keys, const Tensor& mask,
                               const MultiHeadAttentionParams& params,
                               const MultiHeadAttentionOptions& options,
                               MultiHeadAttentionWorkspace* ws, Tensor* out) {
  const MhaSizes s = CheckMha("multi_head_attention_forward", query, keys, mask, params, options,
                              *ws, "out", *out);
  const int64_t h = s.heads;
  HeadMatrices q, k, v;
  if (ws->self_attention()) {
    const PackedQkv packed = PackQkv(params);
    Tensor qkv2 = Flat(ws->qkv);
    LinearForward(Flat(query), packed.w, packed.b, &qkv2);
    q = HeadMatrices::Of(ws->qkv, h, 0, s.pk);
    k = HeadMatrices::Of(ws->qkv, h, s.pk, s.pk);
    v = HeadMatrices::Of(ws->qkv, h, 2 * s.pk, s.pv);
  } else {
    Tensor q2 = Flat(ws->q), k2 = Flat(ws->k), v2 = Flat(ws->v);
    const Tensor keys2 = Flat(keys);
    LinearForward(Flat(query), params.wq, params.bq, &q2);
    LinearForward(keys2, params.wk, params.bk, &k2);
    LinearForward(keys2, params.wv, params.bv, &v2);
    q = HeadMatrices::Of(ws->q, h);
    k = HeadMatrices::Of(ws->k, h);
    v = HeadMatrices::Of(ws->v, h);
  }
  AttentionCoreForward(q, k, v, mask.empty() ? nullptr : mask.data(), s.b, options.causal,
                       ws->probs.data(), HeadMatrices::Of(ws->concat, h));
  Tensor out2 = Flat(*out);
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
    ShapeCheck check(op, query.device());
    check.Like("ws.d_q", ws->d_q, ws->q).Like("ws.d_k", ws->d_k, ws->k);
    check.Like("ws.d_v", ws->d_v, ws->v).Like("ws.d_qkv", ws->d_qkv, ws->qkv);
    check.Like("ws.d_probs", ws->d_probs, ws->probs).Like("ws.d_concat", ws->d_concat, ws->concat);
    if (d_query != nullptr) check.Like("d_query", *d_query, query);
    if (d_keys != nullptr) check.Like("d_keys", *d_keys, keys);
    if (ws->self_attention()) {
      check.Require(d_query == nullptr || d_keys == nullptr || d_query->data() == d_keys->data(),
                    "self-attention's d_query and d_keys one buffer");
    }
    if (grads != nullptr) {
      check.Like("grads.wq", grads->wq, params.wq).Like("grads.bq", grads->bq, params.bq);
      check.Like("grads.wk", grads->wk, params.wk).Like("grads.bk", grads->bk, params.bk);
      check.Like("grads.wv", grads->wv, params.wv).Like("grads.bv", grads->bv, params.bv);
      check.Like("grads.wo", grads->wo, params.wo).Like("grads.bo", grads->bo, params.bo);
    }
  }
  using P = MultiHeadAttentionParams;
  // Output projection.
  ws->d_concat.SetZero();
  Tensor d_concat2 = Flat(ws->d_concat);
  LinearBackward(Flat(ws->concat), params.wo, Flat(d_out), &d_concat2, GradOrNull(grads, &P::wo),
                 GradOrNull(grads, &P::bo));
  // Attention per head, in the projections' layout, then the input projections.
  const int64_t h = s.heads;
  const HeadMatrices d_concat = HeadMatrices::Of(ws->d_concat, h);
  const float* probs = ws->probs.data();
  if (ws->self_attention()) {
    ws->d_qkv.SetZero();
    const Tensor& x = ws->qkv;
    const Tensor& dx = ws->d_qkv;
    AttentionCoreBackward(HeadMatrices::Of(x, h, 0, s.pk), HeadMatrices::Of(x, h, s.pk, s.pk),
                          HeadMatrices::Of(x, h, 2 * s.pk, s.pv), probs, d_concat, s.b,
                          ws->d_probs.data(), HeadMatrices::Of(dx, h, 0, s.pk),
                          HeadMatrices::Of(dx, h, s.pk, s.pk),
                          HeadMatrices::Of(dx, h, 2 * s.pk, s.pv));
    const PackedQkv packed = PackQkv(params);
    PackedQkv packed_grads;
    if (grads != nullptr) {
      packed_grads.w = Tensor::Zeros(packed.w.shape(), packed.w.device());
      if (!packed.b.empty()) packed_grads.b = Tensor::Zeros(packed.b.shape(), packed.b.device());
    }
    Tensor* d_in = d_query != nullptr ? d_query : d_keys;
    Tensor d_in2 = d_in != nullptr ? Flat(*d_in) : Tensor();
    LinearBackward(Flat(query), packed.w, Flat(ws->d_qkv), d_in ? &d_in2 : nullptr,
                   grads ? &packed_grads.w : nullptr,
                   packed_grads.b.empty() ? nullptr : &packed_grads.b);
    if (grads != nullptr) AddUnpackedQkvGrads(packed_grads, s.pk, s.pv, grads);
    return;
  }
  ws->d_q.SetZero();
  ws->d_k.SetZero();
  ws->d_v.SetZero();
  AttentionCoreBackward(HeadMatrices::Of(ws->q, h), HeadMatrices::Of(ws->k, h),
                        HeadMatrices::Of(ws->v, h), probs, d_concat, s.b, ws->d_probs.data(),
                        HeadMatrices::Of(ws->d_q, h), HeadMatrices::Of(ws->d_k, h),
                        HeadMatrices::Of(ws->d_v, h));
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

AdditiveAttentionWorkspace AdditiveAttentionWorkspace::Allocate(int64_t b, int64_t t, int64_t a,
                                                                Device device) {
  return {Tensor::Zeros({b, a}, device), Tensor::Zeros({b, t, a}, device),
          Tensor::Zeros({b, t}, device), Tensor::Zeros({b, t, a}, device),
          Tensor::Zeros({b, a}, device)};
}

void AdditiveAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                              const AdditiveAttentionParams& params, AdditiveAttentionWorkspace* ws,
                              Tensor* weights, Tensor* pooled) {
  const AdditiveSizes s = CheckAdditive("additive_attention_forward", q, k, mask, params, *ws,
                                        *weights, "pooled", *pooled);
  ATTNPS_RUN_ON_CUDA(q, AdditiveAttentionForward(q, k, mask, params, ws, weights, pooled));
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
    ShapeCheck check(op, q.device());
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
  ATTNPS_RUN_ON_CUDA(
      q, AdditiveAttentionBackward(q, k, params, weights, d_weights, d_pooled, ws, dq, dk, grads));
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
