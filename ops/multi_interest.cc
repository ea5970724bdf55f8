#include "ops/multi_interest.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/blas.h"
#include "ops/device_dispatch.h"
#include "ops/fast_math.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

// ---- ComiRec-SA helpers
// ---------------------------------------------------------------------------

struct SaSizes {
  int64_t b, t, d, da, k;
  int64_t rows() const { return b * t; }
};

SaSizes CheckSa(ShapeCheck* check, const Tensor& h, const Tensor& mask, const ComiRecSaParams& p,
                const ComiRecSaWorkspace& ws) {
  Dim b("B"), t("T"), d("D"), da("Da"), k("K");
  check->Arg("h", h, {&b, &t, &d}).Arg("mask", mask, {&b, &t});
  check->Arg("position", p.position, {&t, &d}).Arg("w1", p.w1, {&d, &da});
  check->Arg("w2", p.w2, {&da, &k});
  check->Arg("ws.input", ws.input, {&b, &t, &d}).Arg("ws.hidden", ws.hidden, {&b, &t, &da});
  check->Arg("ws.scores", ws.scores, {&b, &t, &k}).Arg("ws.attention", ws.attention, {&b, &k, &t});
  return {b.value(), t.value(), d.value(), da.value(), k.value()};
}

// attention[k, :] = masked softmax over T of scores[:, k] for one sample (scores [T, K]).
void MaskedSoftmaxOverT(const float* scores, const float* mask, int64_t t, int64_t k,
                        float* attention) {
  for (int64_t j = 0; j < k; ++j) {
    float* a = attention + j * t;
    float max_score = -INFINITY;
    for (int64_t i = 0; i < t; ++i)
      if (mask[i] != 0.0f) max_score = std::max(max_score, scores[i * k + j]);
    if (max_score == -INFINITY) {  // fully masked: zero attention, zero interests
      std::fill(a, a + t, 0.0f);
      continue;
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < t; ++i) {
      a[i] = mask[i] != 0.0f ? FastExp(scores[i * k + j] - max_score) : 0.0f;
      sum += a[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < t; ++i) a[i] *= inv;
  }
}

// d_scores[:, k] = A (dA - <A, dA>) for one sample; zero wherever A is (padding, masked rows).
void SoftmaxOverTBackward(const float* attention, const float* d_attention, int64_t t, int64_t k,
                          float* d_scores) {
  for (int64_t j = 0; j < k; ++j) {
    const float* a = attention + j * t;
    const float* da = d_attention + j * t;
    float dot = 0.0f;
    for (int64_t i = 0; i < t; ++i) dot += a[i] * da[i];
    for (int64_t i = 0; i < t; ++i) d_scores[i * k + j] = a[i] * (da[i] - dot);
  }
}

// ---- capsule helpers --------------------------------------------------------------------------

struct CapsuleSizes {
  int64_t b, t, k, dc;
  int64_t sample() const { return t * k * dc; }  // u_hat elements per sample
};

// s[k] = sum_t c[k, t] u_hat[t, k] for one sample: per-interest weighted sums (K strided
// matrix-vector products of width Dc; memory-bound, so plain loops).
void WeightedCapsuleSum(const float* u_hat, const float* c, const CapsuleSizes& z, float* s) {
  std::fill(s, s + z.k * z.dc, 0.0f);
  for (int64_t i = 0; i < z.t; ++i) {
    for (int64_t j = 0; j < z.k; ++j) {
      const float w = c[j * z.t + i];
      if (w == 0.0f) continue;
      const float* u = u_hat + (i * z.k + j) * z.dc;
      float* sj = s + j * z.dc;
      for (int64_t e = 0; e < z.dc; ++e) sj[e] += w * u[e];
    }
  }
}

// v = squash(s) for one vector of length n; s and v may alias. squash(0) = 0.
void Squash(const float* s, int64_t n, float* v) {
  float norm2 = 0.0f;
  for (int64_t e = 0; e < n; ++e) norm2 += s[e] * s[e];
  const float scale = norm2 > 0.0f ? std::sqrt(norm2) / (1.0f + norm2) : 0.0f;
  for (int64_t e = 0; e < n; ++e) v[e] = scale * s[e];
}

// ds = J_squash(s)^T dv for one vector: with q = |s|^2,
//   ds = sqrt(q)/(1+q) dv + (1-q)/(sqrt(q)(1+q)^2) <s, dv> s, and 0 at s = 0.
void SquashBackward(const float* s, const float* dv, int64_t n, float* ds) {
  float norm2 = 0.0f, dot = 0.0f;
  for (int64_t e = 0; e < n; ++e) {
    norm2 += s[e] * s[e];
    dot += s[e] * dv[e];
  }
  if (!(norm2 > 0.0f)) {
    std::fill(ds, ds + n, 0.0f);
    return;
  }
  const float norm = std::sqrt(norm2), denom = 1.0f + norm2;
  const float f = norm / denom;
  const float g = (1.0f - norm2) / (norm * denom * denom) * dot;
  for (int64_t e = 0; e < n; ++e) ds[e] = f * dv[e] + g * s[e];
}

// Calls body(t) for t in [0, n) on the threads, one small GEMM each (OpenBLAS runs
// single-threaded inside a parallel region, as in GemmStridedBatched).
template <typename Body>
void ForEachPosition(int64_t n, const Body& body) {
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace

// ---- ComiRec-SA ---------------------------------------------------------------------------------

ComiRecSaParams ComiRecSaParams::Zeros(int64_t t, int64_t d, int64_t da, int64_t k) {
  return {Tensor::Zeros({t, d}), Tensor::Zeros({d, da}), Tensor::Zeros({da, k})};
}

ComiRecSaWorkspace ComiRecSaWorkspace::Allocate(int64_t b, int64_t t, int64_t d, int64_t da,
                                                int64_t k, Device device) {
  ComiRecSaWorkspace ws;
  ws.input = Tensor::Empty({b, t, d}, device);
  ws.hidden = Tensor::Empty({b, t, da}, device);
  ws.scores = Tensor::Empty({b, t, k}, device);
  ws.attention = Tensor::Empty({b, k, t}, device);
  ws.d_attention = Tensor::Empty({b, k, t}, device);
  ws.d_scores = Tensor::Empty({b, t, k}, device);
  ws.d_hidden = Tensor::Empty({b, t, da}, device);
  ws.d_input = Tensor::Empty({b, t, d}, device);
  return ws;
}

void ComiRecSaForward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                      ComiRecSaWorkspace* ws, Tensor* interests) {
  ShapeCheck check("comirec_sa_forward", h.device());
  const SaSizes z = CheckSa(&check, h, mask, params, *ws);
  {
    Dim b("B", z.b), k("K", z.k), d("D", z.d);
    check.Arg("interests", *interests, {&b, &k, &d});
  }
  check.Done();
  ATTNPS_RUN_ON_CUDA(h, ComiRecSaForward(h, mask, params, ws, interests));
  const int64_t t = z.t, d = z.d, da = z.da, k = z.k, td = z.t * z.d;
  ParallelFor(z.b, td, [&](int64_t r) {
    const float* hr = h.data() + r * td;
    float* in = ws->input.data() + r * td;
    for (int64_t i = 0; i < td; ++i) in[i] = hr[i] + params.position[i];
  });
  Gemm(false, false, z.rows(), da, d, 1.0f, ws->input.data(), d, params.w1.data(), da, 0.0f,
       ws->hidden.data(), da);
  ParallelFor(z.b, 8 * t * da, [&](int64_t r) {
    float* hid = ws->hidden.data() + r * t * da;
    for (int64_t i = 0; i < t * da; ++i) hid[i] = FastTanh(hid[i]);
  });
  Gemm(false, false, z.rows(), k, da, 1.0f, ws->hidden.data(), da, params.w2.data(), k, 0.0f,
       ws->scores.data(), k);
  ParallelFor(z.b, 10 * t * k, [&](int64_t r) {
    MaskedSoftmaxOverT(ws->scores.data() + r * t * k, mask.data() + r * t, t, k,
                       ws->attention.data() + r * k * t);
  });
  BatchedMatmulForward(ws->attention, false, h, false, interests);
}

void ComiRecSaBackward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                       const Tensor& d_interests, ComiRecSaWorkspace* ws, Tensor* dh,
                       ComiRecSaParams* grads) {
  ShapeCheck check("comirec_sa_backward", h.device());
  const SaSizes z = CheckSa(&check, h, mask, params, *ws);
  {
    Dim b("B", z.b), k("K", z.k), d("D", z.d);
    check.Arg("d_interests", d_interests, {&b, &k, &d});
    check.Like("ws.d_attention", ws->d_attention, ws->attention);
    check.Like("ws.d_scores", ws->d_scores, ws->scores);
    check.Like("ws.d_hidden", ws->d_hidden, ws->hidden);
    check.Like("ws.d_input", ws->d_input, ws->input);
    if (dh) check.Like("dh", *dh, h);
    if (grads) {
      check.Like("grads.position", grads->position, params.position);
      check.Like("grads.w1", grads->w1, params.w1).Like("grads.w2", grads->w2, params.w2);
    }
  }
  check.Done();
  ATTNPS_RUN_ON_CUDA(h, ComiRecSaBackward(h, mask, params, d_interests, ws, dh, grads));
  const int64_t t = z.t, d = z.d, da = z.da, k = z.k, rows = z.rows();
  // V = A H: dA = dV H^T, dH += A^T dV.
  GemmStridedBatched(false, true, k, t, d, 1.0f, d_interests.data(), k * d, h.data(), t * d, 0.0f,
                     ws->d_attention.data(), k * t, z.b);
  if (dh) {
    GemmStridedBatched(true, false, t, d, k, 1.0f, ws->attention.data(), k * t, d_interests.data(),
                       k * d, 1.0f, dh->data(), t * d, z.b);
  }
  if (!dh && !grads) return;
  ParallelFor(z.b, 4 * t * k, [&](int64_t r) {
    SoftmaxOverTBackward(ws->attention.data() + r * k * t, ws->d_attention.data() + r * k * t, t, k,
                         ws->d_scores.data() + r * t * k);
  });
  // scores = hidden W2.
  Gemm(false, true, rows, da, k, 1.0f, ws->d_scores.data(), k, params.w2.data(), k, 0.0f,
       ws->d_hidden.data(), da);
  if (grads) {
    Gemm(true, false, da, k, rows, 1.0f, ws->hidden.data(), da, ws->d_scores.data(), k, 1.0f,
         grads->w2.data(), k);
  }
  // hidden = tanh(input W1).
  ParallelFor(z.b, 3 * t * da, [&](int64_t r) {
    const float* hid = ws->hidden.data() + r * t * da;
    float* g = ws->d_hidden.data() + r * t * da;
    for (int64_t i = 0; i < t * da; ++i) g[i] *= 1.0f - hid[i] * hid[i];
  });
  if (grads) {
    Gemm(true, false, d, da, rows, 1.0f, ws->input.data(), d, ws->d_hidden.data(), da, 1.0f,
         grads->w1.data(), da);
  }
  Gemm(false, true, rows, d, da, 1.0f, ws->d_hidden.data(), da, params.w1.data(), da, 0.0f,
       ws->d_input.data(), d);
  // input = H + P: dH += d_input, dP += sum over the batch of d_input.
  const int64_t td = t * d;
  const float* din = ws->d_input.data();
  if (dh) {
    ParallelFor(z.b, td, [&](int64_t r) {
      float* g = dh->data() + r * td;
      for (int64_t i = 0; i < td; ++i) g[i] += din[r * td + i];
    });
  }
  if (grads) {
    ParallelFor(t, z.b * d, [&](int64_t i) {
      float* g = grads->position.data() + i * d;
      for (int64_t r = 0; r < z.b; ++r)
        for (int64_t j = 0; j < d; ++j) g[j] += din[r * td + i * d + j];
    });
  }
}

// ---- capsules -----------------------------------------------------------------------------------

void BilinearCapsuleMapForward(const Tensor& e, const Tensor& w, Tensor* u_hat) {
  Dim b("B"), t("T"), d("D"), k("K"), dc("Dc");
  ShapeCheck("bilinear_capsule_map_forward", e.device())
      .Arg("e", e, {&b, &t, &d})
      .Arg("w", w, {&t, &k, &dc, &d})
      .Arg("u_hat", *u_hat, {&b, &t, &k, &dc})
      .Done();
  ATTNPS_RUN_ON_CUDA(e, BilinearCapsuleMapForward(e, w, u_hat));
  const int64_t n = t.value(), dim = d.value(), kdc = k.value() * dc.value();
  ForEachPosition(n, [&](int64_t i) {  // u_hat[:, i] = e[:, i] W[i]^T, W[i] viewed [K*Dc, D]
    Gemm(false, true, b.value(), kdc, dim, 1.0f, e.data() + i * dim, n * dim,
         w.data() + i * kdc * dim, dim, 0.0f, u_hat->data() + i * kdc, n * kdc);
  });
}

void BilinearCapsuleMapBackward(const Tensor& e, const Tensor& w, const Tensor& d_u_hat, Tensor* de,
                                Tensor* dw) {
  Dim b("B"), t("T"), d("D"), k("K"), dc("Dc");
  ShapeCheck check("bilinear_capsule_map_backward", e.device());
  check.Arg("e", e, {&b, &t, &d}).Arg("w", w, {&t, &k, &dc, &d});
  check.Arg("d_u_hat", d_u_hat, {&b, &t, &k, &dc});
  if (de) check.Like("de", *de, e);
  if (dw) check.Like("dw", *dw, w);
  check.Done();
  ATTNPS_RUN_ON_CUDA(e, BilinearCapsuleMapBackward(e, w, d_u_hat, de, dw));
  const int64_t n = t.value(), dim = d.value(), kdc = k.value() * dc.value();
  ForEachPosition(n, [&](int64_t i) {
    const float* du = d_u_hat.data() + i * kdc;
    if (de) {  // de[:, i] += du[:, i] W[i]
      Gemm(false, false, b.value(), dim, kdc, 1.0f, du, n * kdc, w.data() + i * kdc * dim, dim,
           1.0f, de->data() + i * dim, n * dim);
    }
    if (dw) {  // dW[i] += du[:, i]^T e[:, i]
      Gemm(true, false, kdc, dim, b.value(), 1.0f, du, n * kdc, e.data() + i * dim, n * dim, 1.0f,
           dw->data() + i * kdc * dim, dim);
    }
  });
}

void DynamicRoutingCoefficients(const Tensor& u_hat, const Tensor& mask, int iterations,
                                Tensor* coupling) {
  Dim b("B"), t("T"), k("K"), dc("Dc");
  ShapeCheck("dynamic_routing_coefficients", u_hat.device())
      .Arg("u_hat", u_hat, {&b, &t, &k, &dc})
      .Arg("mask", mask, {&b, &t})
      .Arg("coupling", *coupling, {&b, &k, &t})
      .Require(iterations >= 1, "iterations >= 1, got " + std::to_string(iterations))
      .Done();
  ATTNPS_RUN_ON_CUDA(u_hat, DynamicRoutingCoefficients(u_hat, mask, iterations, coupling));
  const CapsuleSizes z{b.value(), t.value(), k.value(), dc.value()};
  // Scratch, once per call: routing logits [B, K, T] and capsules [B, K, Dc].
  std::vector<float> logits(z.b * z.k * z.t, 0.0f), caps(z.b * z.k * z.dc);
  ParallelFor(z.b, 4 * iterations * z.sample(), [&](int64_t r) {
    const float* u = u_hat.data() + r * z.sample();
    const float* m = mask.data() + r * z.t;
    float* lg = logits.data() + r * z.k * z.t;
    float* c = coupling->data() + r * z.k * z.t;
    float* v = caps.data() + r * z.k * z.dc;
    for (int it = 0; it < iterations; ++it) {
      for (int64_t i = 0; i < z.t; ++i) {  // softmax over the K interests at position i
        if (m[i] == 0.0f) {
          for (int64_t j = 0; j < z.k; ++j) c[j * z.t + i] = 0.0f;
          continue;
        }
        float max_logit = -INFINITY;
        for (int64_t j = 0; j < z.k; ++j) max_logit = std::max(max_logit, lg[j * z.t + i]);
        float sum = 0.0f;
        for (int64_t j = 0; j < z.k; ++j) {
          c[j * z.t + i] = FastExp(lg[j * z.t + i] - max_logit);
          sum += c[j * z.t + i];
        }
        for (int64_t j = 0; j < z.k; ++j) c[j * z.t + i] /= sum;
      }
      if (it + 1 == iterations) break;  // the last round's capsules and update are not needed
      WeightedCapsuleSum(u, c, z, v);
      for (int64_t j = 0; j < z.k; ++j) Squash(v + j * z.dc, z.dc, v + j * z.dc);
      for (int64_t i = 0; i < z.t; ++i) {
        for (int64_t j = 0; j < z.k; ++j) {
          const float* ui = u + (i * z.k + j) * z.dc;
          const float* vj = v + j * z.dc;
          float dot = 0.0f;
          for (int64_t e = 0; e < z.dc; ++e) dot += ui[e] * vj[e];
          lg[j * z.t + i] += dot;
        }
      }
    }
  });
}

namespace {

CapsuleSizes CheckRouted(ShapeCheck* check, const Tensor& u_hat, const Tensor& coupling,
                         const Tensor& s) {
  Dim b("B"), t("T"), k("K"), dc("Dc");
  check->Arg("u_hat", u_hat, {&b, &t, &k, &dc}).Arg("coupling", coupling, {&b, &k, &t});
  check->Arg("s", s, {&b, &k, &dc});
  return {b.value(), t.value(), k.value(), dc.value()};
}

}  // namespace

void RoutedCapsulesForward(const Tensor& u_hat, const Tensor& coupling, Tensor* s, Tensor* v) {
  ShapeCheck check("routed_capsules_forward", u_hat.device());
  const CapsuleSizes z = CheckRouted(&check, u_hat, coupling, *s);
  check.Like("v", *v, *s).Done();
  ATTNPS_RUN_ON_CUDA(u_hat, RoutedCapsulesForward(u_hat, coupling, s, v));
  const int64_t kdc = z.k * z.dc;
  ParallelFor(z.b, 2 * z.sample(), [&](int64_t r) {
    float* sr = s->data() + r * kdc;
    WeightedCapsuleSum(u_hat.data() + r * z.sample(), coupling.data() + r * z.k * z.t, z, sr);
    for (int64_t j = 0; j < z.k; ++j) Squash(sr + j * z.dc, z.dc, v->data() + r * kdc + j * z.dc);
  });
}

void RoutedCapsulesBackward(const Tensor& u_hat, const Tensor& coupling, const Tensor& s,
                            const Tensor& dv, Tensor* d_u_hat) {
  ShapeCheck check("routed_capsules_backward", u_hat.device());
  const CapsuleSizes z = CheckRouted(&check, u_hat, coupling, s);
  check.Like("dv", dv, s);
  if (d_u_hat) check.Like("d_u_hat", *d_u_hat, u_hat);
  check.Done();
  ATTNPS_RUN_ON_CUDA(u_hat, RoutedCapsulesBackward(u_hat, coupling, s, dv, d_u_hat));
  if (!d_u_hat) return;
  const int64_t kdc = z.k * z.dc;
  std::vector<float> ds_all(z.b * kdc);  // scratch, once per call
  ParallelFor(z.b, 2 * z.sample(), [&](int64_t r) {
    float* ds = ds_all.data() + r * kdc;
    for (int64_t j = 0; j < z.k; ++j) {
      SquashBackward(s.data() + r * kdc + j * z.dc, dv.data() + r * kdc + j * z.dc, z.dc,
                     ds + j * z.dc);
    }
    const float* c = coupling.data() + r * z.k * z.t;
    float* du = d_u_hat->data() + r * z.sample();
    for (int64_t i = 0; i < z.t; ++i) {
      for (int64_t j = 0; j < z.k; ++j) {
        const float w = c[j * z.t + i];
        float* g = du + (i * z.k + j) * z.dc;
        for (int64_t e = 0; e < z.dc; ++e) g[e] += w * ds[j * z.dc + e];
      }
    }
  });
}

}  // namespace attnps
