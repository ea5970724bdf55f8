#include "ops/interaction.h"

#include <algorithm>
#include <cmath>

#include "ops/blas.h"
#include "ops/device_dispatch.h"
#include "ops/fast_math.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

inline void ReluInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// g = 0 where the relu output y is 0.
inline void MaskByRelu(const float* y, int64_t n, float* g) {
  for (int64_t i = 0; i < n; ++i) g[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

// ---- SENet ---------------------------------------------------------------------------------

struct SenetSizes {
  int64_t b, f, d, r;
};

SenetSizes CheckSenet(ShapeCheck* check, const Tensor& e, const SenetParams& p,
                      const SenetWorkspace& ws) {
  Dim b("B"), f("F"), d("d"), r("R");
  check->Arg("e", e, {&b, &f, &d});
  check->Arg("w1", p.w1, {&f, &r}).Arg("b1", p.b1, {&r});
  check->Arg("w2", p.w2, {&r, &f}).Arg("b2", p.b2, {&f});
  check->Arg("ws.z", ws.z, {&b, &f}).Arg("ws.hidden", ws.hidden, {&b, &r});
  check->Arg("ws.a", ws.a, {&b, &f});
  check->Require(d.value() != 0, "d > 0");
  return {b.value(), f.value(), d.value(), r.value()};
}

// ---- Gate ----------------------------------------------------------------------------------

void GateForward(const char* op, const Tensor& h, const Tensor& g, float scale, Tensor* out) {
  Dim n("N"), c("C");
  ShapeCheck(op, h.device())
      .Arg("h", h, {&n, &c})
      .Arg("g", g, {&n, &c})
      .Arg("out", *out, {&n, &c})
      .Done();
  ATTNPS_RUN_ON_CUDA(h, GateForward(h, g, scale, out));
  const int64_t cols = c.value();
  const float* hd = h.data();
  const float* gd = g.data();
  float* od = out->data();
  ParallelFor(n.value(), 20 * cols, [&](int64_t row) {
    const int64_t o = row * cols;
    for (int64_t j = 0; j < cols; ++j) od[o + j] = scale * FastSigmoid(gd[o + j]) * hd[o + j];
  });
}

void GateBackward(const char* op, const Tensor& h, const Tensor& g, float scale, const Tensor& dout,
                  Tensor* dh, Tensor* dg) {
  Dim n("N"), c("C");
  ShapeCheck check(op, h.device());
  check.Arg("h", h, {&n, &c}).Arg("g", g, {&n, &c}).Arg("dout", dout, {&n, &c});
  if (dh) check.Like("dh", *dh, h);
  if (dg) check.Like("dg", *dg, g);
  check.Done();
  ATTNPS_RUN_ON_CUDA(h, GateBackward(h, g, scale, dout, dh, dg));
  const int64_t cols = c.value();
  const float* hd = h.data();
  const float* gd = g.data();
  const float* dod = dout.data();
  float* dhd = dh ? dh->data() : nullptr;
  float* dgd = dg ? dg->data() : nullptr;
  ParallelFor(n.value(), 25 * cols, [&](int64_t row) {
    const int64_t o = row * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const float s = FastSigmoid(gd[o + j]);
      const float gs = scale * dod[o + j] * s;
      if (dhd) dhd[o + j] += gs;
      if (dgd) dgd[o + j] += gs * hd[o + j] * (1.0f - s);
    }
  });
}

// ---- AFM -------------------------------------------------------------------------------------

struct AfmSizes {
  int64_t b, f, d, a, p;
};

AfmSizes CheckAfm(ShapeCheck* check, const Tensor& v, const AfmParams& params,
                  const AfmWorkspace& ws) {
  Dim b("B"), f("F"), d("d"), a("A"), p("P"), bp("B*P");
  check->Arg("v", v, {&b, &f, &d});
  check->Arg("w", params.w, {&d, &a}).Arg("b", params.b, {&a}).Arg("h", params.h, {&a});
  check->Require(f.value() >= 2, "F >= 2 fields (at least one pair)");
  p.Bind(f.value() * (f.value() - 1) / 2);
  bp.Bind(b.value() * p.value());
  check->Arg("ws.pairs", ws.pairs, {&bp, &d}).Arg("ws.hidden", ws.hidden, {&bp, &a});
  check->Arg("ws.attn", ws.attn, {&b, &p});
  return {b.value(), f.value(), d.value(), a.value(), p.value()};
}

}  // namespace

// ---- SENet ---------------------------------------------------------------------------------

int64_t SenetHiddenSize(int64_t fields, int64_t ratio) {
  {
    ShapeCheck("senet_hidden_size")
        .Require(fields > 0 && ratio > 0, "fields > 0 and ratio > 0")
        .Done();
  }
  return (fields + ratio - 1) / ratio;
}

SenetParams SenetParams::Zeros(int64_t f, int64_t r) {
  return {Tensor::Zeros({f, r}), Tensor::Zeros({r}), Tensor::Zeros({r, f}), Tensor::Zeros({f})};
}

SenetWorkspace SenetWorkspace::Allocate(int64_t b, int64_t f, int64_t r, Device device) {
  SenetWorkspace ws;
  ws.z = Tensor::Empty({b, f}, device);
  ws.hidden = Tensor::Empty({b, r}, device);
  ws.a = Tensor::Empty({b, f}, device);
  ws.d_a = Tensor::Empty({b, f}, device);
  ws.d_hidden = Tensor::Empty({b, r}, device);
  ws.d_z = Tensor::Empty({b, f}, device);
  return ws;
}

void SenetForward(const Tensor& e, const SenetParams& params, SenetWorkspace* ws, Tensor* out) {
  ShapeCheck check("senet_forward", e.device());
  const SenetSizes s = CheckSenet(&check, e, params, *ws);
  check.Like("out", *out, e).Done();
  ATTNPS_RUN_ON_CUDA(e, SenetForward(e, params, ws, out));
  const int64_t f = s.f, d = s.d;
  const float inv_d = 1.0f / static_cast<float>(d);
  const float* ed = e.data();
  float* z = ws->z.data();
  ParallelFor(s.b, f * d, [&](int64_t b) {
    for (int64_t i = 0; i < f; ++i) {
      const float* row = ed + (b * f + i) * d;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < d; ++j) sum += row[j];
      z[b * f + i] = sum * inv_d;
    }
  });
  LinearForward(ws->z, params.w1, params.b1, &ws->hidden);
  ReluInPlace(ws->hidden.data(), ws->hidden.numel());
  LinearForward(ws->hidden, params.w2, params.b2, &ws->a);
  ReluInPlace(ws->a.data(), ws->a.numel());
  const float* a = ws->a.data();
  float* od = out->data();
  ParallelFor(s.b, f * d, [&](int64_t b) {
    for (int64_t i = 0; i < f; ++i) {
      const int64_t o = (b * f + i) * d;
      const float w = a[b * f + i];
      for (int64_t j = 0; j < d; ++j) od[o + j] = w * ed[o + j];
    }
  });
}

void SenetBackward(const Tensor& e, const SenetParams& params, const Tensor& dout,
                   SenetWorkspace* ws, Tensor* de, SenetParams* grads) {
  ShapeCheck check("senet_backward", e.device());
  const SenetSizes s = CheckSenet(&check, e, params, *ws);
  check.Like("dout", dout, e);
  if (de) check.Like("de", *de, e);
  if (grads) {
    check.Like("grads.w1", grads->w1, params.w1).Like("grads.b1", grads->b1, params.b1);
    check.Like("grads.w2", grads->w2, params.w2).Like("grads.b2", grads->b2, params.b2);
  }
  check.Like("ws.d_a", ws->d_a, ws->a).Like("ws.d_hidden", ws->d_hidden, ws->hidden);
  check.Like("ws.d_z", ws->d_z, ws->z).Done();
  ATTNPS_RUN_ON_CUDA(e, SenetBackward(e, params, dout, ws, de, grads));
  const int64_t f = s.f, d = s.d;
  const float* ed = e.data();
  const float* dod = dout.data();
  const float* a = ws->a.data();
  float* d_a = ws->d_a.data();
  ParallelFor(s.b, 2 * f * d, [&](int64_t b) {
    for (int64_t i = 0; i < f; ++i) {
      const int64_t o = (b * f + i) * d;
      const float dot = Dot(dod + o, ed + o, d);
      d_a[b * f + i] = a[b * f + i] > 0.0f ? dot : 0.0f;
    }
  });
  ws->d_hidden.SetZero();
  LinearBackward(ws->hidden, params.w2, ws->d_a, &ws->d_hidden, grads ? &grads->w2 : nullptr,
                 grads ? &grads->b2 : nullptr);
  MaskByRelu(ws->hidden.data(), ws->hidden.numel(), ws->d_hidden.data());
  if (de) ws->d_z.SetZero();
  LinearBackward(ws->z, params.w1, ws->d_hidden, de ? &ws->d_z : nullptr,
                 grads ? &grads->w1 : nullptr, grads ? &grads->b1 : nullptr);
  if (!de) return;
  const float inv_d = 1.0f / static_cast<float>(d);
  const float* dz = ws->d_z.data();
  float* ded = de->data();
  ParallelFor(s.b, 2 * f * d, [&](int64_t b) {
    for (int64_t i = 0; i < f; ++i) {
      const int64_t o = (b * f + i) * d;
      const float w = a[b * f + i];
      const float from_mean = dz[b * f + i] * inv_d;
      for (int64_t j = 0; j < d; ++j) ded[o + j] += w * dod[o + j] + from_mean;
    }
  });
}

// ---- Gate ----------------------------------------------------------------------------------

void ScaledSigmoidGateForward(const Tensor& h, const Tensor& g, float scale, Tensor* out) {
  GateForward("scaled_sigmoid_gate_forward", h, g, scale, out);
}

void ScaledSigmoidGateBackward(const Tensor& h, const Tensor& g, float scale, const Tensor& dout,
                               Tensor* dh, Tensor* dg) {
  GateBackward("scaled_sigmoid_gate_backward", h, g, scale, dout, dh, dg);
}

void PosoGateForward(const Tensor& h, const Tensor& g, Tensor* out, float scale) {
  GateForward("poso_gate_forward", h, g, scale, out);
}

void PosoGateBackward(const Tensor& h, const Tensor& g, const Tensor& dout, Tensor* dh, Tensor* dg,
                      float scale) {
  GateBackward("poso_gate_backward", h, g, scale, dout, dh, dg);
}

void LhucForward(const Tensor& h, const Tensor& g, Tensor* out) {
  GateForward("lhuc_forward", h, g, kLhucScale, out);
}

void LhucBackward(const Tensor& h, const Tensor& g, const Tensor& dout, Tensor* dh, Tensor* dg) {
  GateBackward("lhuc_backward", h, g, kLhucScale, dout, dh, dg);
}

// ---- AFM -------------------------------------------------------------------------------------

AfmParams AfmParams::Zeros(int64_t d, int64_t a) {
  return {Tensor::Zeros({d, a}), Tensor::Zeros({a}), Tensor::Zeros({a})};
}

AfmWorkspace AfmWorkspace::Allocate(int64_t b, int64_t f, int64_t d, int64_t a, Device device) {
  const int64_t np = f * (f - 1) / 2, bp = b * np;
  AfmWorkspace ws;
  ws.pairs = Tensor::Empty({bp, d}, device);
  ws.hidden = Tensor::Empty({bp, a}, device);
  ws.attn = Tensor::Empty({b, np}, device);
  ws.d_pairs = Tensor::Empty({bp, d}, device);
  ws.d_hidden = Tensor::Empty({bp, a}, device);
  ws.d_scores = Tensor::Empty({b, np}, device);
  return ws;
}

void AfmForward(const Tensor& v, const AfmParams& params, AfmWorkspace* ws, Tensor* out) {
  ShapeCheck check("afm_forward", v.device());
  const AfmSizes s = CheckAfm(&check, v, params, *ws);
  Dim b("B", s.b), d("d", s.d);
  check.Arg("out", *out, {&b, &d}).Done();
  ATTNPS_RUN_ON_CUDA(v, AfmForward(v, params, ws, out));
  const int64_t f = s.f, dim = s.d, na = s.a, np = s.p;
  const float* vd = v.data();
  float* pairs = ws->pairs.data();
  ParallelFor(s.b, np * dim, [&](int64_t row) {
    float* p = pairs + row * np * dim;
    const float* vb = vd + row * f * dim;
    for (int64_t i = 0; i < f; ++i) {
      for (int64_t j = i + 1; j < f; ++j) {
        for (int64_t c = 0; c < dim; ++c) p[c] = vb[i * dim + c] * vb[j * dim + c];
        p += dim;
      }
    }
  });
  LinearForward(ws->pairs, params.w, params.b, &ws->hidden);
  const float* h = params.h.data();
  float* hidden = ws->hidden.data();
  float* attn = ws->attn.data();
  float* od = out->data();
  ParallelFor(s.b, np * (na + 2 * dim), [&](int64_t row) {
    float* a = attn + row * np;
    float max_score = -INFINITY;
    for (int64_t k = 0; k < np; ++k) {
      float* hk = hidden + (row * np + k) * na;
      ReluInPlace(hk, na);
      a[k] = Dot(h, hk, na);
      max_score = std::max(max_score, a[k]);
    }
    float sum = 0.0f;
    for (int64_t k = 0; k < np; ++k) {
      a[k] = FastExp(a[k] - max_score);
      sum += a[k];
    }
    const float inv = 1.0f / sum;
    float* o = od + row * dim;
    std::fill(o, o + dim, 0.0f);
    for (int64_t k = 0; k < np; ++k) {
      a[k] *= inv;
      const float* p = pairs + (row * np + k) * dim;
      for (int64_t c = 0; c < dim; ++c) o[c] += a[k] * p[c];
    }
  });
}

void AfmBackward(const Tensor& v, const AfmParams& params, const Tensor& dout, AfmWorkspace* ws,
                 Tensor* dv, AfmParams* grads) {
  ShapeCheck check("afm_backward", v.device());
  const AfmSizes s = CheckAfm(&check, v, params, *ws);
  Dim b("B", s.b), d("d", s.d);
  check.Arg("dout", dout, {&b, &d});
  if (dv) check.Like("dv", *dv, v);
  if (grads) {
    check.Like("grads.w", grads->w, params.w).Like("grads.b", grads->b, params.b);
    check.Like("grads.h", grads->h, params.h);
  }
  check.Like("ws.d_pairs", ws->d_pairs, ws->pairs).Like("ws.d_hidden", ws->d_hidden, ws->hidden);
  check.Like("ws.d_scores", ws->d_scores, ws->attn).Done();
  ATTNPS_RUN_ON_CUDA(v, AfmBackward(v, params, dout, ws, dv, grads));
  const int64_t f = s.f, dim = s.d, na = s.a, np = s.p;
  const float* h = params.h.data();
  const float* pairs = ws->pairs.data();
  const float* hidden = ws->hidden.data();
  const float* attn = ws->attn.data();
  const float* dod = dout.data();
  float* ds = ws->d_scores.data();
  float* dhid = ws->d_hidden.data();
  float* dpairs = ws->d_pairs.data();
  // Softmax and pooling: d_scores, d_hidden (through relu and h), and the pooling part of d_pairs.
  ParallelFor(s.b, np * (3 * dim + 2 * na), [&](int64_t row) {
    const float* a = attn + row * np;
    const float* g = dod + row * dim;
    float* dsr = ds + row * np;
    float weighted = 0.0f;
    for (int64_t k = 0; k < np; ++k) {
      const float* p = pairs + (row * np + k) * dim;
      const float dot = Dot(g, p, dim);
      dsr[k] = dot;
      weighted += a[k] * dot;
    }
    for (int64_t k = 0; k < np; ++k) {
      dsr[k] = a[k] * (dsr[k] - weighted);
      const int64_t r = row * np + k;
      for (int64_t c = 0; c < na; ++c) dhid[r * na + c] = dsr[k] * h[c];
      MaskByRelu(hidden + r * na, na, dhid + r * na);
      if (dv) {
        for (int64_t c = 0; c < dim; ++c) dpairs[r * dim + c] = a[k] * g[c];
      }
    }
  });
  if (grads) {  // dh += hidden^T d_scores
    Gemm(true, false, na, 1, s.b * np, 1.0f, hidden, na, ds, 1, 1.0f, grads->h.data(), 1);
  }
  LinearBackward(ws->pairs, params.w, ws->d_hidden, dv ? &ws->d_pairs : nullptr,
                 grads ? &grads->w : nullptr, grads ? &grads->b : nullptr);
  if (!dv) return;
  const float* vd = v.data();
  float* dvd = dv->data();
  ParallelFor(s.b, 4 * np * dim, [&](int64_t row) {
    const float* vb = vd + row * f * dim;
    float* dvb = dvd + row * f * dim;
    const float* g = dpairs + row * np * dim;
    for (int64_t i = 0; i < f; ++i) {
      for (int64_t j = i + 1; j < f; ++j) {
        for (int64_t c = 0; c < dim; ++c) {
          dvb[i * dim + c] += g[c] * vb[j * dim + c];
          dvb[j * dim + c] += g[c] * vb[i * dim + c];
        }
        g += dim;
      }
    }
  });
}

}  // namespace attnps
