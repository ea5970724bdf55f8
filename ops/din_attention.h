// The DIN activation unit (Zhou et al., KDD'18): for every history position t an MLP scores
// [q, k_t, q - k_t, q * k_t] -> H1 -> H2 -> 1; the scores are masked (raw weights, as in the paper)
// or masked-softmax normalized (as in the official code), and pool the history.
//
// Shape letters: B batch, T history length, D item dim, H1/H2 hidden sizes.
// Outputs assigned (=), gradients accumulated (+=).
//
// Algebra: with W1 = [Wq; Wk; Wd; Wp] (four D x H1 blocks for q, k, q-k, q*k),
//   [q, k, q-k, q*k] W1 = q (Wq + Wd) + [k, q*k] [Wk - Wd; Wp],
// so the q terms are one [B, D] x [D, H1] GEMM per batch and the per-position GEMM has K = 2D.
#ifndef ATTNPS_OPS_DIN_ATTENTION_H_
#define ATTNPS_OPS_DIN_ATTENTION_H_

#include <vector>

#include "ops/tensor.h"

namespace attnps {

enum class AttentionNormalization { kNone, kSoftmax };
enum class DinActivation { kSigmoid, kRelu };

// Weights of the unit; the grads struct has the same layout.
struct DinAttentionParams {
  Tensor w1, b1;  // [4D, H1], [H1]  rows ordered q, k, q-k, q*k
  Tensor w2, b2;  // [H1, H2], [H2]
  Tensor w3, b3;  // [H2, 1], [1]

  // Zero-filled tensors for sizes (D, H1, H2): use for gradients.
  static DinAttentionParams Zeros(int64_t d, int64_t h1, int64_t h2);
};

struct DinAttentionOptions {
  AttentionNormalization normalization = AttentionNormalization::kNone;
  DinActivation activation = DinActivation::kSigmoid;
};

// Intermediates written by the forward pass and read by the backward pass, plus scratch.
// Allocate once per (B, T, D, H1, H2) and reuse across steps. The unit runs over blocks of whole
// samples, one block per thread at a time, so that each block's activations stay in cache.
struct DinAttentionWorkspace {
  Tensor folded_q;     // [D, H1]   Wq + Wd
  Tensor folded_kp;    // [2D, H1]  [Wk - Wd; Wp]
  Tensor q_term;       // [B, H1]   q (Wq + Wd) + b1
  Tensor x;            // [B*T, 2D] [k, q*k]
  Tensor a1;           // [B*T, H1] first hidden activations
  Tensor a2;           // [B*T, H2]
  Tensor scores;       // [B*T]     raw MLP output
  Tensor d_a1;         // backward scratch [B*T, H1]
  Tensor d_a2;         // backward scratch [B*T, H2]
  Tensor d_x;          // backward scratch [B*T, 2D]
  Tensor d_scores;     // backward scratch [B*T]
  Tensor d_q_term;     // backward scratch [B, H1]
  Tensor d_folded_q;   // backward scratch [D, H1]
  Tensor block_grads;  // backward scratch: per-block partial weight gradients, sized on use

  // On `device`: the device of the unit's tensors.
  static DinAttentionWorkspace Allocate(int64_t b, int64_t t, int64_t d, int64_t h1, int64_t h2,
                                        Device device = Device::kCPU);
};

// q [B, D], k [B, T, D], mask [B, T] -> weights [B, T] (0 at padding; a fully masked row is all 0)
// and pooled [B, D] = sum_t weights_t k_t.
void DinAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                         const DinAttentionParams& params, const DinAttentionOptions& options,
                         DinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled);

// Given d_weights [B, T] (may be empty: no direct use of the weights) and d_pooled [B, D],
// accumulates into dq, dk (nullable) and every tensor of *grads. Reads the workspace and
// `weights` of the forward call on the same inputs.
void DinAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& mask,
                          const DinAttentionParams& params, const DinAttentionOptions& options,
                          const Tensor& weights, const Tensor& d_weights, const Tensor& d_pooled,
                          DinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                          DinAttentionParams* grads);

}  // namespace attnps

#endif  // ATTNPS_OPS_DIN_ATTENTION_H_
