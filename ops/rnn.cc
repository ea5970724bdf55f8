#include "ops/rnn.h"

#include <algorithm>

#include "ops/blas.h"
#include "ops/cuda/kernel_bodies.h"
#include "ops/device_dispatch.h"
#include "ops/fast_math.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"

namespace attnps {
namespace {

using Gate = cuda::GruGate;  // the gate kinds and their mix, shared with the CUDA cells
using cuda::GateMix;
using cuda::MixGate;

struct Sizes {
  int64_t b, t, in, h;
  int64_t h3() const { return 3 * h; }
};

// Validates the arguments shared by forward and backward. `attention` is null for the GRU.
Sizes CheckArgs(ShapeCheck* check, const Tensor& x, const Tensor& mask, const Tensor* attention,
                const Tensor& h0, const GruParams& p, const GruWorkspace& ws,
                const char* states_name, const Tensor& states) {
  Dim b("B"), t("T"), in("I"), h("H"), h3("3H");
  check->Arg("x", x, {&b, &t, &in}).Arg("mask", mask, {&b, &t});
  if (attention) check->Arg("attention", *attention, {&b, &t});
  check->Arg("wx", p.wx, {&in, &h3}).Arg("wh", p.wh, {&h, &h3}).Arg("b", p.b, {&h3});
  check->Require(h3.value() == 3 * h.value(), "wx and wh columns = 3 * H (gates u, r, c)");
  check->Optional("h0", h0, {&b, &h});
  check->Arg("ws.x_proj", ws.x_proj, {&b, &t, &h3}).Arg("ws.h_proj", ws.h_proj, {&b, &t, &h3});
  check->Arg("ws.h_prev", ws.h_prev, {&b, &t, &h}).Arg("ws.gates", ws.gates, {&b, &t, &h3});
  check->Arg(states_name, states, {&b, &t, &h});
  return {b.value(), t.value(), in.value(), h.value()};
}

// One cell step for row `r` at position `s`: gates, state, and h_prev of the next position.
void CellForward(const Sizes& z, Gate gate, int64_t r, int64_t s, const Tensor& mask,
                 const Tensor& attention, GruWorkspace* ws, Tensor* states) {
  const int64_t h = z.h, idx = r * z.t + s;
  const float* xp = ws->x_proj.data() + idx * z.h3();
  const float* hp = ws->h_proj.data() + idx * z.h3();
  const float* prev = ws->h_prev.data() + idx * h;
  float* g = ws->gates.data() + idx * z.h3();
  float* out = states->data() + idx * h;
  const float m = mask[idx];
  const float a = attention.empty() ? 1.0f : attention[idx];
  for (int64_t j = 0; j < h; ++j) {
    const float u = FastSigmoid(xp[j] + hp[j]);
    const float rr = FastSigmoid(xp[h + j] + hp[h + j]);
    const float c = FastTanh(xp[2 * h + j] + rr * hp[2 * h + j]);
    const float ua = MixGate(gate, u, a).ua;
    const float candidate = prev[j] + ua * (c - prev[j]);
    g[j] = u;
    g[h + j] = rr;
    g[2 * h + j] = c;
    out[j] = prev[j] + m * (candidate - prev[j]);
  }
  if (s + 1 < z.t) std::copy(out, out + h, ws->h_prev.data() + (idx + 1) * h);
}

void ForwardImpl(const Sizes& z, Gate gate, const Tensor& x, const Tensor& mask,
                 const Tensor& attention, const Tensor& h0, const GruParams& p, GruWorkspace* ws,
                 Tensor* states) {
  const int64_t h = z.h, h3 = z.h3(), t = z.t;
  if (z.b == 0 || t == 0) return;
  ATTNPS_RUN_ON_CUDA(x, GruForward(gate, x, mask, attention, h0, p, ws, states));
  Tensor xp = ws->x_proj.Reshaped({z.b * t, h3});
  LinearForward(x.Reshaped({z.b * t, z.in}), p.wx, p.b, &xp);
  float* prev0 = ws->h_prev.data();
  for (int64_t r = 0; r < z.b; ++r) {
    float* dst = prev0 + r * t * h;
    if (h0.empty()) {
      std::fill(dst, dst + h, 0.0f);
    } else {
      std::copy(h0.data() + r * h, h0.data() + (r + 1) * h, dst);
    }
  }
  for (int64_t s = 0; s < t; ++s) {
    // h_proj[:, s] = h_prev[:, s] Wh: rows strided by T positions.
    Gemm(false, false, z.b, h3, h, 1.0f, ws->h_prev.data() + s * h, t * h, p.wh.data(), h3, 0.0f,
         ws->h_proj.data() + s * h3, t * h3);
    ParallelFor(z.b, 24 * h,
                [&](int64_t r) { CellForward(z, gate, r, s, mask, attention, ws, states); });
  }
}

// Back-propagates row `r` at position `s` through the cell. On entry ws->d_state row r holds the
// gradient reaching h_s from later positions; on exit it holds the direct part of dL/dh_{s-1}
// (the part through h_proj is added by the caller's GEMM).
void CellBackward(const Sizes& z, Gate gate, int64_t r, int64_t s, const Tensor& mask,
                  const Tensor& attention, const Tensor& d_states, GruWorkspace* ws,
                  Tensor* d_attention) {
  const int64_t h = z.h, idx = r * z.t + s;
  const float* hp = ws->h_proj.data() + idx * z.h3();
  const float* prev = ws->h_prev.data() + idx * h;
  const float* g = ws->gates.data() + idx * z.h3();
  const float* dh = d_states.data() + idx * h;
  float* carry = ws->d_state.data() + r * h;
  float* dxp = ws->d_x_proj.data() + idx * z.h3();
  float* dhp = ws->d_h_proj.data() + idx * z.h3();
  const float m = mask[idx];
  const float a = attention.empty() ? 1.0f : attention[idx];
  float da = 0.0f;
  for (int64_t j = 0; j < h; ++j) {
    const float u = g[j], rr = g[h + j], c = g[2 * h + j];
    const float total = dh[j] + carry[j];
    const float d_candidate = m * total;
    const GateMix mix = MixGate(gate, u, a);
    const float ua = mix.ua;
    const float d_ua = d_candidate * (c - prev[j]);
    da += d_ua * mix.d_a;
    const float dzu = d_ua * mix.d_u * u * (1.0f - u);
    const float dzc = d_candidate * ua * (1.0f - c * c);
    const float dzr = dzc * hp[2 * h + j] * rr * (1.0f - rr);
    dxp[j] = dzu;
    dxp[h + j] = dzr;
    dxp[2 * h + j] = dzc;
    dhp[j] = dzu;
    dhp[h + j] = dzr;
    dhp[2 * h + j] = dzc * rr;
    carry[j] = (1.0f - m) * total + d_candidate * (1.0f - ua);
  }
  if (d_attention) (*d_attention)[idx] += da;
}

void BackwardImpl(const Sizes& z, Gate gate, const Tensor& x, const Tensor& mask,
                  const Tensor& attention, const Tensor& h0, const GruParams& p,
                  const Tensor& d_states, GruWorkspace* ws, Tensor* dx, Tensor* dh0,
                  Tensor* d_attention, GruParams* grads) {
  const int64_t h = z.h, h3 = z.h3(), t = z.t;
  if (z.b == 0 || t == 0) return;
  ATTNPS_RUN_ON_CUDA(
      x, GruBackward(gate, x, mask, attention, h0, p, d_states, ws, dx, dh0, d_attention, grads));
  ws->d_state.SetZero();
  const bool need_dh0 = dh0 != nullptr && !h0.empty();
  for (int64_t s = t - 1; s >= 0; --s) {
    ParallelFor(z.b, 30 * h, [&](int64_t r) {
      CellBackward(z, gate, r, s, mask, attention, d_states, ws, d_attention);
    });
    if (s > 0 || need_dh0) {  // d_state += d_h_proj[:, s] Wh^T
      Gemm(false, true, z.b, h, h3, 1.0f, ws->d_h_proj.data() + s * h3, t * h3, p.wh.data(), h3,
           1.0f, ws->d_state.data(), h);
    }
  }
  if (need_dh0) {
    for (int64_t i = 0; i < dh0->numel(); ++i) (*dh0)[i] += ws->d_state[i];
  }
  const int64_t rows = z.b * t;
  const Tensor dxp = ws->d_x_proj.Reshaped({rows, h3});
  Tensor dx2 = dx ? dx->Reshaped({rows, z.in}) : Tensor();
  if (dx || grads) {
    LinearBackward(x.Reshaped({rows, z.in}), p.wx, dxp, dx ? &dx2 : nullptr,
                   grads ? &grads->wx : nullptr, grads ? &grads->b : nullptr);
  }
  if (grads) {  // dWh = sum over positions of h_prev^T d_h_proj: one GEMM over B*T rows.
    Gemm(true, false, h, h3, rows, 1.0f, ws->h_prev.data(), h, ws->d_h_proj.data(), h3, 1.0f,
         grads->wh.data(), h3);
  }
}

void CheckBackwardArgs(ShapeCheck* check, const Sizes& z, const Tensor& x, const Tensor& h0,
                       const GruParams& p, const GruWorkspace& ws, const Tensor* dx,
                       const Tensor* dh0, const GruParams* grads) {
  Dim b("B", z.b), h("H", z.h);
  check->Like("ws.d_x_proj", ws.d_x_proj, ws.x_proj).Like("ws.d_h_proj", ws.d_h_proj, ws.h_proj);
  check->Arg("ws.d_state", ws.d_state, {&b, &h});
  if (dx) check->Like("dx", *dx, x);
  if (dh0 && !h0.empty()) check->Like("dh0", *dh0, h0);
  if (grads) {
    check->Like("grads.wx", grads->wx, p.wx).Like("grads.wh", grads->wh, p.wh);
    check->Like("grads.b", grads->b, p.b);
  }
}

}  // namespace

GruParams GruParams::Zeros(int64_t input_size, int64_t hidden_size) {
  return {Tensor::Zeros({input_size, 3 * hidden_size}),
          Tensor::Zeros({hidden_size, 3 * hidden_size}), Tensor::Zeros({3 * hidden_size})};
}

GruWorkspace GruWorkspace::Allocate(int64_t b, int64_t t, int64_t input_size, int64_t hidden_size,
                                    Device device) {
  const int64_t h = hidden_size;
  GruWorkspace ws;
  ws.x_proj = Tensor::Empty({b, t, 3 * h}, device);
  ws.h_proj = Tensor::Empty({b, t, 3 * h}, device);
  ws.h_prev = Tensor::Empty({b, t, h}, device);
  ws.gates = Tensor::Empty({b, t, 3 * h}, device);
  ws.d_x_proj = Tensor::Empty({b, t, 3 * h}, device);
  ws.d_h_proj = Tensor::Empty({b, t, 3 * h}, device);
  ws.d_state = Tensor::Empty({b, h}, device);
  return ws;
}

void GruForward(const Tensor& x, const Tensor& mask, const Tensor& h0, const GruParams& params,
                GruWorkspace* ws, Tensor* states) {
  ShapeCheck check("gru_forward", x.device());
  const Sizes z = CheckArgs(&check, x, mask, nullptr, h0, params, *ws, "states", *states);
  check.Done();
  ForwardImpl(z, Gate::kGru, x, mask, Tensor(), h0, params, ws, states);
}

void GruBackward(const Tensor& x, const Tensor& mask, const Tensor& h0, const GruParams& params,
                 const Tensor& d_states, GruWorkspace* ws, Tensor* dx, Tensor* dh0,
                 GruParams* grads) {
  ShapeCheck check("gru_backward", x.device());
  const Sizes z = CheckArgs(&check, x, mask, nullptr, h0, params, *ws, "d_states", d_states);
  CheckBackwardArgs(&check, z, x, h0, params, *ws, dx, dh0, grads);
  check.Done();
  BackwardImpl(z, Gate::kGru, x, mask, Tensor(), h0, params, d_states, ws, dx, dh0, nullptr, grads);
}

namespace {

void AttentionalForward(Gate gate, const char* op, const Tensor& x, const Tensor& mask,
                        const Tensor& attention, const Tensor& h0, const GruParams& params,
                        GruWorkspace* ws, Tensor* states) {
  ShapeCheck check(op, x.device());
  const Sizes z = CheckArgs(&check, x, mask, &attention, h0, params, *ws, "states", *states);
  check.Done();
  ForwardImpl(z, gate, x, mask, attention, h0, params, ws, states);
}

void AttentionalBackward(Gate gate, const char* op, const Tensor& x, const Tensor& mask,
                         const Tensor& attention, const Tensor& h0, const GruParams& params,
                         const Tensor& d_states, GruWorkspace* ws, Tensor* dx, Tensor* dh0,
                         Tensor* d_attention, GruParams* grads) {
  ShapeCheck check(op, x.device());
  const Sizes z = CheckArgs(&check, x, mask, &attention, h0, params, *ws, "d_states", d_states);
  CheckBackwardArgs(&check, z, x, h0, params, *ws, dx, dh0, grads);
  if (d_attention) check.Like("d_attention", *d_attention, attention);
  check.Done();
  BackwardImpl(z, gate, x, mask, attention, h0, params, d_states, ws, dx, dh0, d_attention, grads);
}

}  // namespace

void AugruForward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                  const GruParams& params, GruWorkspace* ws, Tensor* states) {
  AttentionalForward(Gate::kAugru, "augru_forward", x, mask, attention, h0, params, ws, states);
}

void AugruBackward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                   const GruParams& params, const Tensor& d_states, GruWorkspace* ws, Tensor* dx,
                   Tensor* dh0, Tensor* d_attention, GruParams* grads) {
  AttentionalBackward(Gate::kAugru, "augru_backward", x, mask, attention, h0, params, d_states, ws,
                      dx, dh0, d_attention, grads);
}

void AgruForward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                 const GruParams& params, GruWorkspace* ws, Tensor* states) {
  AttentionalForward(Gate::kAgru, "agru_forward", x, mask, attention, h0, params, ws, states);
}

void AgruBackward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                  const GruParams& params, const Tensor& d_states, GruWorkspace* ws, Tensor* dx,
                  Tensor* dh0, Tensor* d_attention, GruParams* grads) {
  AttentionalBackward(Gate::kAgru, "agru_backward", x, mask, attention, h0, params, d_states, ws,
                      dx, dh0, d_attention, grads);
}

void AugruOfficialForward(const Tensor& x, const Tensor& mask, const Tensor& attention,
                          const Tensor& h0, const GruParams& params, GruWorkspace* ws,
                          Tensor* states) {
  AttentionalForward(Gate::kAugruOfficial, "augru_official_forward", x, mask, attention, h0, params,
                     ws, states);
}

void AugruOfficialBackward(const Tensor& x, const Tensor& mask, const Tensor& attention,
                           const Tensor& h0, const GruParams& params, const Tensor& d_states,
                           GruWorkspace* ws, Tensor* dx, Tensor* dh0, Tensor* d_attention,
                           GruParams* grads) {
  AttentionalBackward(Gate::kAugruOfficial, "augru_official_backward", x, mask, attention, h0,
                      params, d_states, ws, dx, dh0, d_attention, grads);
}

}  // namespace attnps
