// The CUDA twins of the CPU ops: the same signatures and contracts as ops/*.h, over tensors in
// device memory. Callers do not include this: the CPU op dispatches here when its first tensor
// is on Device::kCUDA (after its ShapeCheck, which requires every argument on that device), so
// models call one function on either device. Declared only in builds with CUDA.
//
// Launches go on the default stream, in order; results are ready for the next op, and for the
// host after cuda::Synchronize() (ops/cuda_runtime_api.h). GEMMs go through cuBLAS in FP32 unless
// SetMathMode says otherwise. Errors: a failing CUDA or cuBLAS call CHECK-fails naming it.
// Thread-safety: one thread drives the device ops of a process (the worker's trainer thread).
#ifndef ATTNPS_OPS_CUDA_DEVICE_OPS_H_
#define ATTNPS_OPS_CUDA_DEVICE_OPS_H_

#include <cstdint>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cuda/kernel_bodies.h"
#include "ops/din_attention.h"
#include "ops/interaction.h"
#include "ops/jagged.h"
#include "ops/loss.h"
#include "ops/multi_interest.h"
#include "ops/optimizer.h"
#include "ops/rnn.h"
#include "ops/tensor.h"

namespace attnps::cuda {

// GEMM arithmetic: FP32 (default, matches the CPU twins), TF32 tensor cores, or BF16 inputs
// with FP32 accumulation.
enum class MathMode { kFp32, kTf32, kBf16 };
void SetMathMode(MathMode mode);
MathMode GetMathMode();

// Grid size cap of the element and row launches (default 4096 blocks of 256 threads). Tests
// lower it to drive the grid-stride loops; 0 restores the default.
void SetMaxBlocksForTesting(int blocks);

// Row-major GEMMs on device pointers, the arguments of attnps::Gemm / GemmStridedBatched.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t stride_a, const float* b, int64_t stride_b,
                        float beta, float* c, int64_t stride_c, int64_t batch);

// As GemmStridedBatched, with leading dimensions (matrix g of A at a + g * stride_a, ...).
void GemmBatchedLd(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                   int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                   int64_t batch);

// ops/linear.h
void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y);
void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                    Tensor* db);

// ops/activation.h
void ReluForward(const Tensor& x, Tensor* y);
void ReluBackward(const Tensor& y, const Tensor& dy, Tensor* dx);
void SigmoidForward(const Tensor& x, Tensor* y);
void SigmoidBackward(const Tensor& y, const Tensor& dy, Tensor* dx);
void TanhForward(const Tensor& x, Tensor* y);
void TanhBackward(const Tensor& y, const Tensor& dy, Tensor* dx);
void PreluForward(const Tensor& x, const Tensor& alpha, Tensor* y);
void PreluBackward(const Tensor& x, const Tensor& alpha, const Tensor& dy, Tensor* dx,
                   Tensor* dalpha);
void DiceForward(const Tensor& x, const Tensor& alpha, Mode mode, const DiceOptions& options,
                 Tensor* running_mean, Tensor* running_var, Tensor* y, Tensor* saved_mean,
                 Tensor* saved_rstd);
void DiceBackward(const Tensor& x, const Tensor& alpha, Mode mode, const Tensor& saved_mean,
                  const Tensor& saved_rstd, const Tensor& dy, Tensor* dx, Tensor* dalpha);

// ops/norm.h
void LayerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                      Tensor* y, Tensor* mean, Tensor* rstd);
void LayerNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                       const Tensor& dy, Tensor* dx, Tensor* dgamma, Tensor* dbeta);

// ops/attention.h
void MaskedSoftmaxForward(const Tensor& x, const Tensor& mask, float scale, Tensor* y);
void MaskedSoftmaxBackward(const Tensor& y, const Tensor& dy, float scale, Tensor* dx);

// ops/pooling.h (mean: MaskedMeanPool, else MaskedSumPool)
void MaskedPoolForward(const Tensor& x, const Tensor& mask, bool mean, Tensor* y);
void MaskedPoolBackward(const Tensor& mask, const Tensor& dy, bool mean, Tensor* dx);

// ops/din_attention.h
void DinAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                         const DinAttentionParams& params, const DinAttentionOptions& options,
                         DinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled);
void DinAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& mask,
                          const DinAttentionParams& params, const DinAttentionOptions& options,
                          const Tensor& weights, const Tensor& d_weights, const Tensor& d_pooled,
                          DinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                          DinAttentionParams* grads);

// ops/rnn.h, every gate kind
void GruForward(GruGate gate, const Tensor& x, const Tensor& mask, const Tensor& attention,
                const Tensor& h0, const GruParams& params, GruWorkspace* ws, Tensor* states);
void GruBackward(GruGate gate, const Tensor& x, const Tensor& mask, const Tensor& attention,
                 const Tensor& h0, const GruParams& params, const Tensor& d_states,
                 GruWorkspace* ws, Tensor* dx, Tensor* dh0, Tensor* d_attention, GruParams* grads);

// ops/attention.h: the attention core over in-place head matrices (device pointers); and
// ops/linear.h's CopyColumns on device pointers.
void AttentionCoreForward(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v,
                          const float* mask, int64_t batch, bool causal, float* p,
                          const HeadLayout& out);
void AttentionCoreBackward(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v,
                           const float* p, const HeadLayout& d_out, int64_t batch, float* d_scores,
                           const HeadLayout& dq, const HeadLayout& dk, const HeadLayout& dv);
void AdditiveAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                              const AdditiveAttentionParams& params, AdditiveAttentionWorkspace* ws,
                              Tensor* weights, Tensor* pooled);
void AdditiveAttentionBackward(const Tensor& q, const Tensor& k,
                               const AdditiveAttentionParams& params, const Tensor& weights,
                               const Tensor& d_weights, const Tensor& d_pooled,
                               AdditiveAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                               AdditiveAttentionParams* grads);
// dst[r, dst_col0 + c] (+)= src[r, src_col0 + c] for r < rows, c < width.
void CopyColumns(const float* src, int64_t rows, int64_t src_cols, int64_t src_col0, float* dst,
                 int64_t dst_cols, int64_t dst_col0, int64_t width, bool accumulate);

// ops/norm.h: dropout (the CPU twin's mask, bit for bit)
void DropoutForward(const Tensor& x, float rate, uint64_t seed, Mode mode, Tensor* mask, Tensor* y,
                    int64_t first_index);
void DropoutBackward(const Tensor& mask, const Tensor& dy, Tensor* dx);

// ClipByGlobalNorm's parts: sum of x^2 (in double) and x *= factor.
double SumOfSquares(const Tensor& x);
void Scale(Tensor* x, float factor);

// ops/jagged.h (the offsets in host memory, as the CPU ops take them: uploaded per call)
void JaggedDinAttentionForward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                               const DinAttentionParams& params, const DinAttentionOptions& options,
                               JaggedDinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled);
void JaggedDinAttentionBackward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                                const DinAttentionParams& params,
                                const DinAttentionOptions& options, const Tensor& weights,
                                const Tensor& d_weights, const Tensor& d_pooled,
                                JaggedDinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                                DinAttentionParams* grads);
void SegmentSumPoolForward(const Tensor& x, const JaggedOffsets& offsets, Tensor* y);
void SegmentSumPoolBackward(const JaggedOffsets& offsets, const Tensor& dy, Tensor* dx);
void JaggedToPadded(const Tensor& x, const JaggedOffsets& offsets, Tensor* padded, Tensor* mask);
void PaddedToJaggedAdd(const Tensor& dpadded, const JaggedOffsets& offsets, Tensor* dx);

// ops/interaction.h (GateForward/Backward serve POSO, LHUC and the scaled sigmoid gate)
void SenetForward(const Tensor& e, const SenetParams& params, SenetWorkspace* ws, Tensor* out);
void SenetBackward(const Tensor& e, const SenetParams& params, const Tensor& dout,
                   SenetWorkspace* ws, Tensor* de, SenetParams* grads);
void GateForward(const Tensor& h, const Tensor& g, float scale, Tensor* out);
void GateBackward(const Tensor& h, const Tensor& g, float scale, const Tensor& dout, Tensor* dh,
                  Tensor* dg);
void AfmForward(const Tensor& v, const AfmParams& params, AfmWorkspace* ws, Tensor* out);
void AfmBackward(const Tensor& v, const AfmParams& params, const Tensor& dout, AfmWorkspace* ws,
                 Tensor* dv, AfmParams* grads);

// ops/multi_interest.h
void ComiRecSaForward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                      ComiRecSaWorkspace* ws, Tensor* interests);
void ComiRecSaBackward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                       const Tensor& d_interests, ComiRecSaWorkspace* ws, Tensor* dh,
                       ComiRecSaParams* grads);
void BilinearCapsuleMapForward(const Tensor& e, const Tensor& w, Tensor* u_hat);
void BilinearCapsuleMapBackward(const Tensor& e, const Tensor& w, const Tensor& d_u_hat, Tensor* de,
                                Tensor* dw);
void DynamicRoutingCoefficients(const Tensor& u_hat, const Tensor& mask, int iterations,
                                Tensor* coupling);
void RoutedCapsulesForward(const Tensor& u_hat, const Tensor& coupling, Tensor* s, Tensor* v);
void RoutedCapsulesBackward(const Tensor& u_hat, const Tensor& coupling, const Tensor& s,
                            const Tensor& dv, Tensor* d_u_hat);

// ops/loss.h
double BceWithLogitsForward(const Tensor& logits, const Tensor& labels, const Tensor& weights);
void SigmoidProbabilities(const Tensor& logits, Tensor* probs);
// pos_ids / neg_ids (kRemove) in host memory, uploaded per call.
double SampledSoftmaxForward(const Tensor& u, const Tensor& pos, const Tensor& neg,
                             const Tensor& log_q_pos, const Tensor& log_q_neg,
                             const SampledSoftmaxOptions& options, SampledSoftmaxWorkspace* ws);
void SampledSoftmaxBackward(const Tensor& u, const Tensor& pos, const Tensor& neg, float dloss,
                            SampledSoftmaxWorkspace* ws, Tensor* du, Tensor* dpos, Tensor* dneg);
double DienAuxLossForward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                          const Tensor& mask);
void DienAuxLossBackward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                         const Tensor& mask, float dloss, Tensor* dh, Tensor* de_pos,
                         Tensor* de_neg);
void BceWithLogitsBackward(const Tensor& logits, const Tensor& labels, const Tensor& weights,
                           float dloss, Tensor* dlogits);

// ops/optimizer.h (the coefficients computed by the CPU twin)
void SgdUpdate(const SgdOptions& options, float lr, const Tensor& grads, Tensor* params,
               Tensor* momentum);
void AdamUpdate(float b1, float b2, float eps, float step_size, float inv_sqrt_bc2, float l2,
                float shrink, const Tensor& grads, Tensor* params, Tensor* m, Tensor* v);
void AdagradUpdate(const AdagradOptions& options, float lr, const Tensor& grads, Tensor* params,
                   Tensor* accumulator);

// The GPU worker's duplicate-key sum: grads [L, D] of L lookups, order [L] and starts [U + 1]
// (int32, device memory) grouping the lookups by key -> out [U, D].
void SumDuplicateRows(const Tensor& grads, const int32_t* order, const int32_t* starts, int64_t u,
                      Tensor* out);

}  // namespace attnps::cuda

#endif  // ATTNPS_OPS_CUDA_DEVICE_OPS_H_
