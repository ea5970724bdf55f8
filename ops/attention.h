// Attention ops: masked softmax, scaled dot-product attention, multi-head attention and additive
// (Bahdanau) attention.
//
// Shape letters: N rows, B batch, T key (history) length, Tq query length, D model dim, H heads,
// Dk/Dv per-head query-key / value dims, Pk = H*Dk and Pv = H*Dv projection widths, Dout output
// dim, Dq query dim and A hidden dim of additive attention.
// Masks are float [B, T] (or [N, T]): nonzero = valid key, 0 = padding; an empty Tensor means all
// valid. Masked positions get probability exactly 0; a fully masked row gives all-zero
// probabilities (never NaN) and zero gradients.
// Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers; a null gradient
// pointer skips that gradient. The caller owns every buffer, workspaces included.
#ifndef ATTNPS_OPS_ATTENTION_H_
#define ATTNPS_OPS_ATTENTION_H_

#include <cstdint>

#include "ops/tensor.h"

namespace attnps {

// y[N,T] = softmax over valid positions of scale * x[N,T]; 0 at masked positions.
void MaskedSoftmaxForward(const Tensor& x, const Tensor& mask, float scale, Tensor* y);
// dx[N,T] += scale * y * (dy - sum(dy * y)) per row, given the forward output y.
void MaskedSoftmaxBackward(const Tensor& y, const Tensor& dy, float scale, Tensor* dx);

// q [B,Tq,Dk], k [B,T,Dk], v [B,T,Dv], mask [B,T] (optional) -> p [B,Tq,T] =
// masked softmax(q k^T / sqrt(Dk)) and out [B,Tq,Dv] = p v. With `causal` (requires Tq == T)
// query i sees keys j <= i only.
void ScaledDotProductAttentionForward(const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& mask, bool causal, Tensor* p, Tensor* out);
// Given the forward's p (which carries mask and causality) and d_out [B,Tq,Dv], accumulates into
// dq, dk, dv. Allocates one [B,Tq,T] scratch per call.
void ScaledDotProductAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& p, const Tensor& d_out, Tensor* dq, Tensor* dk,
                                       Tensor* dv);

// Multi-head attention weights (y = x w + b); every bias may be an empty Tensor (no bias). The
// gradients use the same struct, shaped like the weights (empty where the weight is empty).
struct MultiHeadAttentionParams {
  Tensor wq, bq;  // [D, Pk], [Pk]
  Tensor wk, bk;  // [D, Pk], [Pk]
  Tensor wv, bv;  // [D, Pv], [Pv]
  Tensor wo, bo;  // [Pv, Dout], [Dout]

  // Zero-filled tensors shaped like each of `params` (empty stays empty): use for gradients.
  static MultiHeadAttentionParams ZerosLike(const MultiHeadAttentionParams& params);
};

struct MultiHeadAttentionOptions {
  int64_t heads = 1;    // H; must divide Pk and Pv
  bool causal = false;  // requires Tq == T; query i sees keys j <= i
};

// Intermediates written by the forward pass and read by the backward pass, plus backward scratch.
// Allocate once per sizes and reuse across steps. A self-attention workspace (query and keys the
// same tensor) projects q, k and v with one GEMM into qkv and leaves q, k, v (and their
// gradients) empty; any other holds them apart.
struct MultiHeadAttentionWorkspace {
  // Head h of q, k, v and concat is columns [h*Dk, (h+1)*Dk) (Dv for v, concat): the attention
  // runs on them in place, nothing is split or merged.
  Tensor q;       // [B, Tq, Pk]    projected queries
  Tensor k;       // [B, T, Pk]     projected keys
  Tensor v;       // [B, T, Pv]     projected values
  Tensor qkv;     // [B, T, 2Pk + Pv]  self-attention: q, k, v side by side
  Tensor probs;   // [B, H, Tq, T]  per-head attention probabilities
  Tensor concat;  // [B, Tq, Pv]    per-head outputs side by side (the output projection's input)
  // Backward scratch, same shapes as the tensors they differentiate.
  Tensor d_q, d_k, d_v, d_qkv, d_probs, d_concat;

  // On `device`: the device of the attention's tensors.
  static MultiHeadAttentionWorkspace Allocate(int64_t b, int64_t tq, int64_t t, int64_t heads,
                                              int64_t dk, int64_t dv, Device device = Device::kCPU);
  // For self-attention (Tq == T): the packed projections.
  static MultiHeadAttentionWorkspace AllocateSelf(int64_t b, int64_t t, int64_t heads, int64_t dk,
                                                  int64_t dv, Device device = Device::kCPU);
  // Samples [b0, b1) of every tensor: a workspace for that slice of the batch.
  MultiHeadAttentionWorkspace Samples(int64_t b0, int64_t b1) const;
  bool self_attention() const { return !qkv.empty(); }
};

// query [B,Tq,D], keys [B,T,D] (projected to both keys and values), mask [B,T] (optional)
// -> out [B,Tq,Dout]: per head h, softmax(Q_h K_h^T / sqrt(Dk)) V_h, heads concatenated, then
// projected by wo, bo. For self-attention pass the same tensor as query and keys.
void MultiHeadAttentionForward(const Tensor& query, const Tensor& keys, const Tensor& mask,
                               const MultiHeadAttentionParams& params,
                               const MultiHeadAttentionOptions& options,
                               MultiHeadAttentionWorkspace* ws, Tensor* out);
// Given d_out [B,Tq,Dout], accumulates into d_query, d_keys and every tensor of *grads (each
// nullable). Reads the workspace of the forward call on the same inputs. For self-attention pass
// the same buffer as d_query and d_keys: both contributions accumulate (a self-attention
// workspace requires query and keys to be one tensor, and d_query and d_keys one buffer or null).
void MultiHeadAttentionBackward(const Tensor& query, const Tensor& keys, const Tensor& mask,
                                const MultiHeadAttentionParams& params,
                                const MultiHeadAttentionOptions& options, const Tensor& d_out,
                                MultiHeadAttentionWorkspace* ws, Tensor* d_query, Tensor* d_keys,
                                MultiHeadAttentionParams* grads);

// Additive attention weights: score_t = v . tanh(q wq + k_t wk + b).
struct AdditiveAttentionParams {
  Tensor wq;  // [Dq, A]
  Tensor wk;  // [Dk, A]
  Tensor b;   // [A]
  Tensor v;   // [A]

  // Zero-filled tensors for sizes (Dq, Dk, A): use for gradients.
  static AdditiveAttentionParams Zeros(int64_t dq, int64_t dk, int64_t a);
};

struct AdditiveAttentionWorkspace {
  Tensor q_term;     // [B, A]     q wq + b, computed once per sample
  Tensor hidden;     // [B, T, A]  tanh(q_term + k_t wk)
  Tensor d_weights;  // backward scratch [B, T]
  Tensor d_hidden;   // backward scratch [B, T, A] (pre-activation gradient)
  Tensor d_q_term;   // backward scratch [B, A]

  static AdditiveAttentionWorkspace Allocate(int64_t b, int64_t t, int64_t a,
                                             Device device = Device::kCPU);
};

// q [B,Dq], k [B,T,Dk], mask [B,T] (optional) -> weights [B,T] = masked softmax over T of the
// scores and pooled [B,Dk] = sum_t weights_t k_t.
void AdditiveAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                              const AdditiveAttentionParams& params, AdditiveAttentionWorkspace* ws,
                              Tensor* weights, Tensor* pooled);
// Given d_weights [B,T] (may be empty: weights not used directly) and d_pooled [B,Dk], accumulates
// into dq, dk (nullable) and every tensor of *grads (nullable). Reads `weights` and the workspace
// of the forward call on the same inputs.
void AdditiveAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& mask,
                               const AdditiveAttentionParams& params, const Tensor& weights,
                               const Tensor& d_weights, const Tensor& d_pooled,
                               AdditiveAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                               AdditiveAttentionParams* grads);

}  // namespace attnps

#endif  // ATTNPS_OPS_ATTENTION_H_
