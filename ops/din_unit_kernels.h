// Row kernels of the DIN activation unit shared by its padded (ops/din_attention.cc) and jagged
// (ops/jagged.cc) forms; private to those two files. `Sizes` is either file's size struct and
// `Workspace` either workspace: both have d, h1, h2 and folded_q, folded_kp, block_grads (the
// per-block partial gradients).
#ifndef ATTNPS_OPS_DIN_UNIT_KERNELS_H_
#define ATTNPS_OPS_DIN_UNIT_KERNELS_H_

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "ops/blas.h"

#include "ops/din_attention.h"
#include "ops/fast_math.h"
#include "ops/parallel.h"
#include "ops/tensor.h"

namespace attnps::din_unit {

// a = act(a + bias_row) in place over `cols` columns; bias_row may be null. The loops are kept
// free of branches so that they vectorize.
inline void BiasActivate(float* __restrict a, const float* __restrict bias_row, int64_t cols,
                         DinActivation act) {
  if (bias_row != nullptr) {
    for (int64_t j = 0; j < cols; ++j) a[j] += bias_row[j];
  }
  if (act == DinActivation::kSigmoid) {
    for (int64_t j = 0; j < cols; ++j) a[j] = FastSigmoid(a[j]);
  } else {
    for (int64_t j = 0; j < cols; ++j) a[j] = a[j] > 0.0f ? a[j] : 0.0f;
  }
}

// g *= act'(z) expressed through the activation a = act(z).
inline void TimesActivationGrad(float* g, const float* a, int64_t cols, DinActivation act) {
  if (act == DinActivation::kSigmoid) {
    for (int64_t j = 0; j < cols; ++j) g[j] *= a[j] * (1.0f - a[j]);
  } else {
    for (int64_t j = 0; j < cols; ++j) g[j] = a[j] > 0.0f ? g[j] : 0.0f;
  }
}

// folded_q = Wq + Wd, folded_kp = [Wk - Wd; Wp] (see din_attention.h).
template <typename Sizes, typename Workspace>
void FoldFirstLayer(const Tensor& w1, const Sizes& s, Workspace* ws) {
  const int64_t dh = s.d * s.h1;
  const float* wq = w1.data();
  const float* wk = wq + dh;
  const float* wd = wk + dh;
  const float* wp = wd + dh;
  float* fq = ws->folded_q.data();
  float* fk = ws->folded_kp.data();
  for (int64_t i = 0; i < dh; ++i) {
    fq[i] = wq[i] + wd[i];
    fk[i] = wk[i] - wd[i];
    fk[dh + i] = wp[i];
  }
}

// Adds column sums of m [rows, cols] to out [cols].
inline void AddColumnSums(const float* m, int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) out[j] += m[r * cols + j];
}

// One block's partial weight gradients, packed: [d folded_kp | d w2 | d b2 | d w3 | d b3].
struct PartialGrads {
  float* kp;
  float* w2;
  float* b2;
  float* w3;
  float* b3;
  template <typename Sizes>
  static int64_t Size(const Sizes& s) {
    return 2 * s.d * s.h1 + s.h1 * s.h2 + 2 * s.h2 + 1;
  }
  template <typename Sizes>
  static PartialGrads At(float* base, const Sizes& s) {
    PartialGrads p;
    p.kp = base;
    p.w2 = p.kp + 2 * s.d * s.h1;
    p.b2 = p.w2 + s.h1 * s.h2;
    p.w3 = p.b2 + s.h2;
    p.b3 = p.w3 + s.h2;
    return p;
  }
};

// Partial gradient slots, one per block of rows (reallocated only to grow); every block zeroes
// its own (ZeroedSlot) before anything else, so that all are summed. Summed in block order, the
// weight gradients do not depend on which thread ran which block.
template <typename Sizes, typename Workspace>
float* BlockGradSlots(const Sizes& s, int64_t blocks, Workspace* ws) {
  ws->block_grads.EnsureCapacity({blocks, PartialGrads::Size(s)});
  return ws->block_grads.data();
}

// Block `block`'s slot of `slots`, zeroed.
template <typename Sizes>
PartialGrads ZeroedSlot(float* slots, const Sizes& s, int64_t block) {
  const int64_t size = PartialGrads::Size(s);
  float* slot = slots + block * size;
  std::fill(slot, slot + size, 0.0f);
  return PartialGrads::At(slot, s);
}

// Sums the block slots, in order, into slot 0 (over the threads, by chunks of elements) and adds
// the MLP's weight gradients to *grads.
template <typename Sizes, typename Workspace>
PartialGrads ReduceBlockGrads(const Sizes& s, Workspace* ws, DinAttentionParams* grads) {
  const int64_t size = PartialGrads::Size(s), blocks = ws->block_grads.dim(0);
  constexpr int64_t kChunk = 1024;
  float* base = ws->block_grads.data();
  ParallelFor((size + kChunk - 1) / kChunk, kChunk * blocks, [&](int64_t c) {
    const int64_t i0 = c * kChunk, i1 = std::min(size, i0 + kChunk);
    for (int64_t th = 1; th < blocks; ++th)
      for (int64_t i = i0; i < i1; ++i) base[i] += base[th * size + i];
  });
  PartialGrads sum = PartialGrads::At(base, s);
  auto add = [](const float* src, Tensor* dst) {
    for (int64_t i = 0; i < dst->numel(); ++i) (*dst)[i] += src[i];
  };
  add(sum.w2, &grads->w2);
  add(sum.b2, &grads->b2);
  add(sum.w3, &grads->w3);
  add(sum.b3, &grads->b3);
  return sum;
}

// One block of n rows, above the first layer: a2 = act(a1 w2 + b2), scores = a2 w3 + b3, given
// a1 [n, H1] (already activated). Writes a2 [n, H2] and scores [n].
template <typename Sizes>
void UpperLayersForward(const float* a1, int64_t n, const DinAttentionParams& params,
                        const Sizes& s, DinActivation act, float* a2, float* scores) {
  const int64_t h1 = s.h1, h2 = s.h2;
  Gemm(false, false, n, h2, h1, 1.0f, a1, h1, params.w2.data(), h2, 0.0f, a2, h2);
  for (int64_t r = 0; r < n; ++r) BiasActivate(a2 + r * h2, params.b2.data(), h2, act);
  std::fill(scores, scores + n, params.b3[0]);
  Gemm(false, false, n, 1, h2, 1.0f, a2, h2, params.w3.data(), 1, 1.0f, scores, 1);
}

// The block's backward from d_scores ds [n] down to the folded first layer: adds the output,
// second and first layers' weight gradients to *part; writes dz2 [n, H2] and dz1 [n, H1] (the
// gradient at the first layer's pre-activation), from the forward's x [n, 2D], a1 and a2. With x
// null the first layer's weight gradient is left to the caller.
template <typename Sizes>
void LayersBackward(const float* ds, const float* x, const float* a1, const float* a2, int64_t n,
                    const DinAttentionParams& params, const Sizes& s, DinActivation act,
                    const PartialGrads& part, float* dz2, float* dz1) {
  const int64_t d2 = 2 * s.d, h1 = s.h1, h2 = s.h2;
  // Output layer: scores = a2 w3 + b3.
  for (int64_t r = 0; r < n; ++r) part.b3[0] += ds[r];
  Gemm(true, false, h2, 1, n, 1.0f, a2, h2, ds, 1, 1.0f, part.w3, 1);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < h2; ++j) dz2[r * h2 + j] = ds[r] * params.w3[j];
    TimesActivationGrad(dz2 + r * h2, a2 + r * h2, h2, act);
  }
  // Second layer: a2 = act(a1 w2 + b2).
  Gemm(true, false, h1, h2, n, 1.0f, a1, h1, dz2, h2, 1.0f, part.w2, h2);
  AddColumnSums(dz2, n, h2, part.b2);
  Gemm(false, true, n, h1, h2, 1.0f, dz2, h2, params.w2.data(), h2, 0.0f, dz1, h1);
  for (int64_t r = 0; r < n; ++r) TimesActivationGrad(dz1 + r * h1, a1 + r * h1, h1, act);
  // First layer (folded): z1 = x folded_kp + q_term[b].
  if (x != nullptr) Gemm(true, false, d2, h1, n, 1.0f, x, d2, dz1, h1, 1.0f, part.kp, h1);
}

// dW1 += the gradient of the folded first layer, unfolded into its q, k, q-k, q*k blocks.
template <typename Sizes>
void UnfoldFirstLayerGrad(const float* d_folded_q, const float* d_folded_kp, const Sizes& s,
                          Tensor* dw1) {
  const int64_t dh = s.d * s.h1;
  float* out = dw1->data();
  for (int64_t i = 0; i < dh; ++i) {
    out[i] += d_folded_q[i];                            // Wq
    out[dh + i] += d_folded_kp[i];                      // Wk
    out[2 * dh + i] += d_folded_q[i] - d_folded_kp[i];  // Wd
    out[3 * dh + i] += d_folded_kp[dh + i];             // Wp
  }
}

}  // namespace attnps::din_unit

#endif  // ATTNPS_OPS_DIN_UNIT_KERNELS_H_
