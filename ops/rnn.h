// GRU, AUGRU and AGRU over a padded sequence (DIEN, Zhou et al. AAAI'19, paper form).
//
// Shape letters: B batch, T sequence length (padded, with a mask), I input size, H hidden size.
// Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers; a null gradient
// pointer skips that gradient (a null GruParams* grads skips all weight gradients).
//
// Cell (gate column blocks of Wx, Wh and b in the order u, r, c):
//   u_t = sigmoid(x_t Wxu + h_{t-1} Whu + bu)      r_t = sigmoid(x_t Wxr + h_{t-1} Whr + br)
//   c_t = tanh(x_t Wxc + r_t * (h_{t-1} Whc) + bc)
//   u'_t = a_t * u_t (AUGRU), u'_t = a_t (AGRU), u'_t = u_t (GRU)
//   h~_t = (1 - u'_t) * h_{t-1} + u'_t * c_t
//   h_t = m_t * h~_t + (1 - m_t) * h_{t-1}          (the state is frozen at padded positions)
// The outputs are all states [B, T, H]; at padded positions the frozen state, so states[:, T-1] is
// the final state of every row and a fully masked row keeps h0.
//
// Errors: shape mismatches CHECK-fail naming the op ("gru_forward", "augru_backward", ...).
// Thread-safety: calls on distinct workspaces and outputs may run concurrently.
#ifndef ATTNPS_OPS_RNN_H_
#define ATTNPS_OPS_RNN_H_

#include <cstdint>

#include "ops/tensor.h"

namespace attnps {

// Weights of the cell; the gradient struct has the same layout.
struct GruParams {
  Tensor wx;  // [I, 3H]
  Tensor wh;  // [H, 3H]
  Tensor b;   // [3H]

  // Zero-filled tensors for sizes (I, H): use for gradients.
  static GruParams Zeros(int64_t input_size, int64_t hidden_size);
};

// Intermediates written by the forward pass and read by the backward pass (back-propagation
// through time), plus backward scratch. Allocate once per (B, T, I, H) and reuse.
struct GruWorkspace {
  Tensor x_proj;    // [B, T, 3H]  x Wx + b (one GEMM over all positions)
  Tensor h_proj;    // [B, T, 3H]  h_{t-1} Wh
  Tensor h_prev;    // [B, T, H]   h_{t-1} (h0 or zeros at t = 0)
  Tensor gates;     // [B, T, 3H]  u, r, c (u before the attention scaling)
  Tensor d_x_proj;  // backward scratch [B, T, 3H]: gradient of the x-side pre-activations
  Tensor d_h_proj;  // backward scratch [B, T, 3H]: gradient of h_{t-1} Wh
  Tensor d_state;   // backward scratch [B, H]: gradient flowing into h_{t-1}

  // On `device`: the device of the cell's tensors.
  static GruWorkspace Allocate(int64_t b, int64_t t, int64_t input_size, int64_t hidden_size,
                               Device device = Device::kCPU);
};

// x [B, T, I], mask [B, T], h0 [B, H] (empty: zeros) -> states [B, T, H].
void GruForward(const Tensor& x, const Tensor& mask, const Tensor& h0, const GruParams& params,
                GruWorkspace* ws, Tensor* states);

// Given d_states [B, T, H] (the gradient of every output state), accumulates into dx [B, T, I],
// dh0 [B, H] (ignored when h0 is empty) and *grads. Reads the workspace of the forward call on the
// same inputs.
void GruBackward(const Tensor& x, const Tensor& mask, const Tensor& h0, const GruParams& params,
                 const Tensor& d_states, GruWorkspace* ws, Tensor* dx, Tensor* dh0,
                 GruParams* grads);

// AUGRU: the GRU above with the update gate scaled by attention [B, T] (u' = a * u).
void AugruForward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                  const GruParams& params, GruWorkspace* ws, Tensor* states);

// As GruBackward, plus the gradient of the attention scores d_attention [B, T] (nullable).
void AugruBackward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                   const GruParams& params, const Tensor& d_states, GruWorkspace* ws, Tensor* dx,
                   Tensor* dh0, Tensor* d_attention, GruParams* grads);

// AGRU: the attention replaces the update gate (u' = a; u is computed but gets no gradient). The
// arguments are as AUGRU's.
void AgruForward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                 const GruParams& params, GruWorkspace* ws, Tensor* states);
void AgruBackward(const Tensor& x, const Tensor& mask, const Tensor& attention, const Tensor& h0,
                  const GruParams& params, const Tensor& d_states, GruWorkspace* ws, Tensor* dx,
                  Tensor* dh0, Tensor* d_attention, GruParams* grads);

// AUGRU as the DIEN authors' code has it (VecAttGRUCell): the attention raises the update gate,
// u' = u + a (1 - u) = 1 - (1 - a)(1 - u), so a = 0 is a plain GRU and a = 1 replaces the state
// by the candidate. The arguments are as AUGRU's.
void AugruOfficialForward(const Tensor& x, const Tensor& mask, const Tensor& attention,
                          const Tensor& h0, const GruParams& params, GruWorkspace* ws,
                          Tensor* states);
void AugruOfficialBackward(const Tensor& x, const Tensor& mask, const Tensor& attention,
                           const Tensor& h0, const GruParams& params, const Tensor& d_states,
                           GruWorkspace* ws, Tensor* dx, Tensor* dh0, Tensor* d_attention,
                           GruParams* grads);

}  // namespace attnps

#endif  // ATTNPS_OPS_RNN_H_
