// Feature-interaction blocks: SENet field re-weighting (FiBiNET form), the scaled sigmoid gate of
// POSO and LHUC, and AFM attentional pooling of pairwise interactions.
//
// Shape letters: B batch, F fields, d per-field embedding dim, R SENet hidden size
// (R = ceil(F / r) for reduction ratio r, chosen by the caller through the weight shapes),
// N rows, C channels, P = F (F - 1) / 2 field pairs, A AFM attention size.
// Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers; a null gradient
// pointer skips that gradient. Workspaces are caller-owned: the forward call fills them and the
// backward call on the same inputs reads them (and uses their scratch tensors).
#ifndef ATTNPS_OPS_INTERACTION_H_
#define ATTNPS_OPS_INTERACTION_H_

#include <cstdint>

#include "ops/tensor.h"

namespace attnps {

// ---- SENet ---------------------------------------------------------------------------------
// z = mean_d e [B, F]; a = relu(relu(z w1 + b1) w2 + b2) [B, F]; out[b, f, :] = a[b, f] e[b, f, :].

// ceil(fields / ratio), the hidden size R for reduction ratio `ratio` (>= 1).
int64_t SenetHiddenSize(int64_t fields, int64_t ratio);

// Weights; the grads struct has the same layout.
struct SenetParams {
  Tensor w1, b1;  // [F, R], [R]
  Tensor w2, b2;  // [R, F], [F]

  static SenetParams Zeros(int64_t f, int64_t r);
};

struct SenetWorkspace {
  Tensor z;         // [B, F] field means
  Tensor hidden;    // [B, R] relu(z w1 + b1)
  Tensor a;         // [B, F] field weights
  Tensor d_a;       // backward scratch [B, F]
  Tensor d_hidden;  // backward scratch [B, R]
  Tensor d_z;       // backward scratch [B, F]

  static SenetWorkspace Allocate(int64_t b, int64_t f, int64_t r, Device device = Device::kCPU);
};

// e [B, F, d] -> out [B, F, d]; fills ws->z, hidden, a.
void SenetForward(const Tensor& e, const SenetParams& params, SenetWorkspace* ws, Tensor* out);
// Given dout [B, F, d], accumulates into de (nullable) and every tensor of *grads (nullable).
void SenetBackward(const Tensor& e, const SenetParams& params, const Tensor& dout,
                   SenetWorkspace* ws, Tensor* de, SenetParams* grads);

// ---- Scaled sigmoid gate (POSO, LHUC) -------------------------------------------------------
// out = scale * sigmoid(g) * h, h and g [N, C]; g are gate logits from the caller's small MLP.

void ScaledSigmoidGateForward(const Tensor& h, const Tensor& g, float scale, Tensor* out);
// Given dout [N, C], accumulates into dh and dg (each nullable).
void ScaledSigmoidGateBackward(const Tensor& h, const Tensor& g, float scale, const Tensor& dout,
                               Tensor* dh, Tensor* dg);

constexpr float kPosoDefaultScale = 2.0f;
constexpr float kLhucScale = 2.0f;

// POSO: out = C * sigmoid(g) * h with C = `scale`.
void PosoGateForward(const Tensor& h, const Tensor& g, Tensor* out,
                     float scale = kPosoDefaultScale);
void PosoGateBackward(const Tensor& h, const Tensor& g, const Tensor& dout, Tensor* dh, Tensor* dg,
                      float scale = kPosoDefaultScale);

// LHUC: out = 2 * sigmoid(g) * h.
void LhucForward(const Tensor& h, const Tensor& g, Tensor* out);
void LhucBackward(const Tensor& h, const Tensor& g, const Tensor& dout, Tensor* dh, Tensor* dg);

// ---- AFM -------------------------------------------------------------------------------------
// p_ij = v_i * v_j for fields i < j (pair k in row-major (i, j) order); score_ij = h^T relu(w^T
// p_ij + b); a = softmax over the P pairs of a sample; out [B, d] = sum_ij a_ij p_ij. Needs F >= 2.

// Weights; the grads struct has the same layout.
struct AfmParams {
  Tensor w;  // [d, A]
  Tensor b;  // [A]
  Tensor h;  // [A]

  static AfmParams Zeros(int64_t d, int64_t a);
};

struct AfmWorkspace {
  Tensor pairs;     // [B*P, d] pairwise products
  Tensor hidden;    // [B*P, A] relu(pairs w + b)
  Tensor attn;      // [B, P]   softmax weights
  Tensor d_pairs;   // backward scratch [B*P, d]
  Tensor d_hidden;  // backward scratch [B*P, A]
  Tensor d_scores;  // backward scratch [B, P]

  static AfmWorkspace Allocate(int64_t b, int64_t f, int64_t d, int64_t a,
                               Device device = Device::kCPU);
};

// v [B, F, d] -> out [B, d]; fills ws->pairs, hidden, attn.
void AfmForward(const Tensor& v, const AfmParams& params, AfmWorkspace* ws, Tensor* out);
// Given dout [B, d], accumulates into dv (nullable) and every tensor of *grads (nullable).
void AfmBackward(const Tensor& v, const AfmParams& params, const Tensor& dout, AfmWorkspace* ws,
                 Tensor* dv, AfmParams* grads);

}  // namespace attnps

#endif  // ATTNPS_OPS_INTERACTION_H_
