// Multi-interest extraction of ComiRec (Cen et al., KDD'20): self-attentive (ComiRec-SA) and
// capsule dynamic routing (ComiRec-DR).
//
// Shape letters: B batch, T history length (padded, with a mask [B, T]: 1 valid, 0 padding),
// D item dim, Da attention hidden size, K interests, Dc capsule dim.
// Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers; a null gradient
// pointer skips that gradient (a null ComiRecSaParams* grads skips all weight gradients).
// Errors: shape mismatches and bad hyper-parameters CHECK-fail naming the op.
// Thread-safety: calls on distinct outputs and workspaces may run concurrently.
#ifndef ATTNPS_OPS_MULTI_INTEREST_H_
#define ATTNPS_OPS_MULTI_INTEREST_H_

#include <cstdint>

#include "ops/tensor.h"

namespace attnps {

// ---- ComiRec-SA --------------------------------------------------------------------------------
//   A = masked softmax over T of (tanh((H + P) W1) W2)^T   [B, K, T]
//   V = A H                                                 [B, K, D]  (H without P)
// A fully masked row gives A = 0 and zero interests.

// Weights; the gradient struct has the same layout.
struct ComiRecSaParams {
  Tensor position;  // [T, D] position embeddings, added for the attention input only
  Tensor w1;        // [D, Da]
  Tensor w2;        // [Da, K]

  static ComiRecSaParams Zeros(int64_t t, int64_t d, int64_t da, int64_t k);
};

// Intermediates written by the forward pass and read by the backward pass, plus scratch.
struct ComiRecSaWorkspace {
  Tensor input;        // [B, T, D]  H + P
  Tensor hidden;       // [B, T, Da] tanh((H + P) W1)
  Tensor scores;       // [B, T, K]  hidden W2
  Tensor attention;    // [B, K, T]  A (callers may read it after the forward pass)
  Tensor d_attention;  // backward scratch [B, K, T]
  Tensor d_scores;     // backward scratch [B, T, K]
  Tensor d_hidden;     // backward scratch [B, T, Da]
  Tensor d_input;      // backward scratch [B, T, D]

  static ComiRecSaWorkspace Allocate(int64_t b, int64_t t, int64_t d, int64_t da, int64_t k,
                                     Device device = Device::kCPU);
};

// h [B, T, D], mask [B, T] -> interests [B, K, D].
void ComiRecSaForward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                      ComiRecSaWorkspace* ws, Tensor* interests);
// Given d_interests [B, K, D], accumulates into dh [B, T, D] and *grads. Reads the workspace of
// the forward call on the same inputs.
void ComiRecSaBackward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                       const Tensor& d_interests, ComiRecSaWorkspace* ws, Tensor* dh,
                       ComiRecSaParams* grads);

// ---- ComiRec-DR: capsule dynamic routing, as three ops --------------------------------------
// Pipeline: u_hat = BilinearCapsuleMap(e, W); c = DynamicRoutingCoefficients(u_hat, mask);
// v = RoutedCapsules(u_hat, c). As in the ComiRec code, which routes on stop_gradient(u_hat), the
// coupling coefficients c are constants for back-propagation: gradients reach u_hat (and so e and
// W) only through the final weighted sum of RoutedCapsules.
// squash(s) = |s|^2 / (1 + |s|^2) * s / |s|, and squash(0) = 0.

// u_hat[b, t, k] = W[t, k] e[b, t]: e [B, T, D], w [T, K, Dc, D] -> u_hat [B, T, K, Dc].
void BilinearCapsuleMapForward(const Tensor& e, const Tensor& w, Tensor* u_hat);
// Given d_u_hat [B, T, K, Dc], accumulates into de [B, T, D] and dw [T, K, Dc, D].
void BilinearCapsuleMapBackward(const Tensor& e, const Tensor& w, const Tensor& d_u_hat, Tensor* de,
                                Tensor* dw);

// Routing by agreement (no backward: the result is a constant, see above). u_hat [B, T, K, Dc],
// mask [B, T] -> coupling [B, K, T]. Logits b_kt start at 0; each of `iterations` (>= 1) rounds
// sets c[:, t] = softmax over K of b[:, t] at valid positions (0 at padding),
// v_k = squash(sum_t c_kt u_hat_tk) and, except in the last round, b_kt += u_hat_tk . v_k.
void DynamicRoutingCoefficients(const Tensor& u_hat, const Tensor& mask, int iterations,
                                Tensor* coupling);

// s [B, K, Dc] = sum_t c_kt u_hat_tk (saved for the backward pass), v [B, K, Dc] = squash(s).
void RoutedCapsulesForward(const Tensor& u_hat, const Tensor& coupling, Tensor* s, Tensor* v);
// Given dv [B, K, Dc], accumulates into d_u_hat [B, T, K, Dc]; the coupling is a constant.
void RoutedCapsulesBackward(const Tensor& u_hat, const Tensor& coupling, const Tensor& s,
                            const Tensor& dv, Tensor* d_u_hat);

}  // namespace attnps

#endif  // ATTNPS_OPS_MULTI_INTEREST_H_
