// CUDA twins of the CPU ops: the plans of ops/cuda/op_plans.h run by the device executor
// (grid-stride launches of the kernel bodies, GEMMs through cuBLAS, sums through CUB).
#include <cub/device/device_reduce.cuh>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cuda/check.cuh"
#include "ops/cuda/device_ops.h"
#include "ops/cuda/op_plans.h"
#include "ops/cuda_runtime_api.h"

namespace attnps::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kDefaultMaxBlocks = 4096;
int max_blocks = kDefaultMaxBlocks;
MathMode math_mode = MathMode::kFp32;

template <typename Body>
__global__ void ForEachKernel(int64_t n, Body body) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    body(i);
  }
}

// body(i) for i in [0, n) on the device.
template <typename Body>
void ForEach(int64_t n, const Body& body) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, max_blocks);
  ForEachKernel<<<static_cast<int>(blocks), kThreads>>>(n, body);
  ATTNPS_CUDA_CHECK(cudaGetLastError());
}

cublasHandle_t Handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h;
    ATTNPS_CUBLAS_CHECK(cublasCreate(&h));
    return h;
  }();
  return handle;
}

cublasComputeType_t ComputeType() {
  switch (math_mode) {
    case MathMode::kTf32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    case MathMode::kBf16:
      return CUBLAS_COMPUTE_32F_FAST_16BF;
    case MathMode::kFp32:
      break;
  }
  return CUBLAS_COMPUTE_32F;
}

cublasOperation_t Op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

// Row-major leading dimension of op(X) stored [rows, cols] (cols when not transposed).
int64_t Ld(bool trans, int64_t rows_op, int64_t cols_op) { return trans ? rows_op : cols_op; }

// Device scratch that grows and is kept (one thread drives the device ops).
void* DeviceScratch(size_t bytes) {
  static void* buffer = nullptr;
  static size_t capacity = 0;
  if (bytes > capacity) {
    if (buffer != nullptr) ATTNPS_CUDA_CHECK(cudaFree(buffer));
    ATTNPS_CUDA_CHECK(cudaMalloc(&buffer, bytes));
    capacity = bytes;
  }
  return buffer;
}

}  // namespace

// Tensor::Fill on the device (ops/cuda_runtime_api.h).
void FillFloat(float* dst, size_t count, float value) {
  ForEach(static_cast<int64_t>(count), FillBody{value, dst});
}

// Row-major batched GEMMs with leading dimensions: matrix g of A at a + g * stride_a (etc.).
void GemmBatchedLd(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                   int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                   int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {  // cuBLAS rejects the leading dimensions of empty operands: C = beta C here
    ForEach(batch * m * n, ScaleMatricesBody{beta, m, n, ldc, stride_c, c});
    return;
  }
  ATTNPS_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      Handle(), Op(trans_b), Op(trans_a), static_cast<int>(n), static_cast<int>(m),
      static_cast<int>(k), &alpha, b, CUDA_R_32F, static_cast<int>(ldb), stride_b, a, CUDA_R_32F,
      static_cast<int>(lda), stride_a, &beta, c, CUDA_R_32F, static_cast<int>(ldc), stride_c,
      static_cast<int>(batch), ComputeType(), CUBLAS_GEMM_DEFAULT));
}

void SetMathMode(MathMode mode) { math_mode = mode; }
MathMode GetMathMode() { return math_mode; }
void SetMaxBlocksForTesting(int blocks) { max_blocks = blocks > 0 ? blocks : kDefaultMaxBlocks; }

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    ForEach(m * n, ScaleMatricesBody{beta, m, n, ldc, 0, c});
    return;
  }
  ATTNPS_CUBLAS_CHECK(cublasGemmEx(Handle(), Op(trans_b), Op(trans_a), static_cast<int>(n),
                                   static_cast<int>(m), static_cast<int>(k), &alpha, b, CUDA_R_32F,
                                   static_cast<int>(ldb), a, CUDA_R_32F, static_cast<int>(lda),
                                   &beta, c, CUDA_R_32F, static_cast<int>(ldc), ComputeType(),
                                   CUBLAS_GEMM_DEFAULT));
}

void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t stride_a, const float* b, int64_t stride_b,
                        float beta, float* c, int64_t stride_c, int64_t batch) {
  GemmBatchedLd(trans_a, trans_b, m, n, k, alpha, a, Ld(trans_a, m, k), stride_a, b,
                Ld(trans_b, k, n), stride_b, beta, c, n, stride_c, batch);
}

namespace {

// The executor of OpPlans on the device.
struct DeviceExec {
  template <typename Body>
  void ForEach(int64_t n, const Body& body) {
    attnps::cuda::ForEach(n, body);
  }
  void* Scratch(size_t bytes) { return DeviceScratch(bytes); }
  void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    cuda::Gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void GemmBatched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                   float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
    GemmBatchedLd(ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                  stride_c, batch);
  }
  // The offsets as int64 in device memory (kept until the next call).
  const int64_t* Offsets(const JaggedOffsets& offsets) {
    host_offsets.resize(offsets.batch() + 1);
    for (int64_t i = 0; i <= offsets.batch(); ++i) host_offsets[i] = offsets[i];
    const size_t bytes = host_offsets.size() * sizeof(int64_t);
    if (bytes > offsets_capacity) {
      if (device_offsets != nullptr) ATTNPS_CUDA_CHECK(cudaFree(device_offsets));
      ATTNPS_CUDA_CHECK(cudaMalloc(&device_offsets, bytes));
      offsets_capacity = bytes;
    }
    ATTNPS_CUDA_CHECK(
        cudaMemcpy(device_offsets, host_offsets.data(), bytes, cudaMemcpyHostToDevice));
    return device_offsets;
  }
  const int64_t* Int64s(const int64_t* host, int64_t n, int slot) {
    const size_t bytes = std::max<int64_t>(n, 1) * sizeof(int64_t);
    if (bytes > ids_capacity[slot]) {
      if (ids[slot] != nullptr) ATTNPS_CUDA_CHECK(cudaFree(ids[slot]));
      ATTNPS_CUDA_CHECK(cudaMalloc(&ids[slot], bytes));
      ids_capacity[slot] = bytes;
    }
    if (n > 0)
      ATTNPS_CUDA_CHECK(cudaMemcpy(ids[slot], host, n * sizeof(int64_t), cudaMemcpyHostToDevice));
    return ids[slot];
  }
  int64_t* ids[2] = {nullptr, nullptr};
  size_t ids_capacity[2] = {0, 0};
  std::vector<int64_t> host_offsets;
  int64_t* device_offsets = nullptr;
  size_t offsets_capacity = 0;

  // Sums on the device (CUB, in chunks below 2^31 values: its counts are int) into a slot
  // beside CUB's temporary storage, then copies each chunk's double back.
  double Sum(const double* values, int64_t n) {
    constexpr int64_t kChunk = int64_t{1} << 30;
    size_t temp_bytes = 0;
    double* out = nullptr;
    const int first = static_cast<int>(std::min(n, kChunk));
    ATTNPS_CUDA_CHECK(cub::DeviceReduce::Sum(nullptr, temp_bytes, values, out, first));
    if (temp_bytes + sizeof(double) > sum_capacity) {
      if (sum_temp != nullptr) ATTNPS_CUDA_CHECK(cudaFree(sum_temp));
      ATTNPS_CUDA_CHECK(cudaMalloc(&sum_temp, temp_bytes + sizeof(double)));
      sum_capacity = temp_bytes + sizeof(double);
    }
    void* temp = sum_temp;
    out = static_cast<double*>(temp);
    double sum = 0.0;
    for (int64_t begin = 0; begin < n; begin += kChunk) {
      const int count = static_cast<int>(std::min(n - begin, kChunk));
      ATTNPS_CUDA_CHECK(cub::DeviceReduce::Sum(static_cast<char*>(temp) + sizeof(double),
                                               temp_bytes, values + begin, out, count));
      double part = 0.0;
      ATTNPS_CUDA_CHECK(cudaMemcpy(&part, out, sizeof(double), cudaMemcpyDeviceToHost));
      sum += part;
    }
    return sum;
  }
  void* sum_temp = nullptr;  // CUB's temporary storage and the result, kept between calls
  size_t sum_capacity = 0;
};

OpPlans<DeviceExec> Plans() {
  static DeviceExec exec;
  return OpPlans<DeviceExec>(&exec);
}

}  // namespace

void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y) {
  Plans().LinearForward(x, w, b, y);
}
void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                    Tensor* db) {
  Plans().LinearBackward(x, w, dy, dx, dw, db);
}
void ReluForward(const Tensor& x, Tensor* y) { Plans().Unary<ReluForwardBody>(x, y); }
void ReluBackward(const Tensor& y, const Tensor& dy, Tensor* dx) {
  Plans().UnaryGrad<ReluBackwardBody>(y, dy, dx);
}
void SigmoidForward(const Tensor& x, Tensor* y) { Plans().Unary<SigmoidForwardBody>(x, y); }
void SigmoidBackward(const Tensor& y, const Tensor& dy, Tensor* dx) {
  Plans().UnaryGrad<SigmoidBackwardBody>(y, dy, dx);
}
void TanhForward(const Tensor& x, Tensor* y) { Plans().Unary<TanhForwardBody>(x, y); }
void TanhBackward(const Tensor& y, const Tensor& dy, Tensor* dx) {
  Plans().UnaryGrad<TanhBackwardBody>(y, dy, dx);
}
void PreluForward(const Tensor& x, const Tensor& alpha, Tensor* y) {
  Plans().PreluForward(x, alpha, y);
}
void PreluBackward(const Tensor& x, const Tensor& alpha, const Tensor& dy, Tensor* dx,
                   Tensor* dalpha) {
  Plans().PreluBackward(x, alpha, dy, dx, dalpha);
}
void DiceForward(const Tensor& x, const Tensor& alpha, Mode mode, const DiceOptions& options,
                 Tensor* running_mean, Tensor* running_var, Tensor* y, Tensor* saved_mean,
                 Tensor* saved_rstd) {
  Plans().DiceForward(x, alpha, mode, options, running_mean, running_var, y, saved_mean,
                      saved_rstd);
}
void DiceBackward(const Tensor& x, const Tensor& alpha, Mode mode, const Tensor& saved_mean,
                  const Tensor& saved_rstd, const Tensor& dy, Tensor* dx, Tensor* dalpha) {
  Plans().DiceBackward(x, alpha, mode, saved_mean, saved_rstd, dy, dx, dalpha);
}
void LayerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                      Tensor* y, Tensor* mean, Tensor* rstd) {
  Plans().LayerNormForward(x, gamma, beta, eps, y, mean, rstd);
}
void LayerNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                       const Tensor& dy, Tensor* dx, Tensor* dgamma, Tensor* dbeta) {
  Plans().LayerNormBackward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
}
void MaskedSoftmaxForward(const Tensor& x, const Tensor& mask, float scale, Tensor* y) {
  Plans().MaskedSoftmaxForward(x, mask, scale, y);
}
void MaskedSoftmaxBackward(const Tensor& y, const Tensor& dy, float scale, Tensor* dx) {
  Plans().MaskedSoftmaxBackward(y, dy, scale, dx);
}
void MaskedPoolForward(const Tensor& x, const Tensor& mask, bool mean, Tensor* y) {
  Plans().MaskedPoolForward(x, mask, mean, y);
}
void MaskedPoolBackward(const Tensor& mask, const Tensor& dy, bool mean, Tensor* dx) {
  Plans().MaskedPoolBackward(mask, dy, mean, dx);
}
double BceWithLogitsForward(const Tensor& logits, const Tensor& labels, const Tensor& weights) {
  return Plans().BceWithLogitsForward(logits, labels, weights);
}
void BceWithLogitsBackward(const Tensor& logits, const Tensor& labels, const Tensor& weights,
                           float dloss, Tensor* dlogits) {
  Plans().BceWithLogitsBackward(logits, labels, weights, dloss, dlogits);
}
void SgdUpdate(const SgdOptions& options, float lr, const Tensor& grads, Tensor* params,
               Tensor* momentum) {
  Plans().SgdUpdate(options, lr, grads, params, momentum);
}
void AdamUpdate(float b1, float b2, float eps, float step_size, float inv_sqrt_bc2, float l2,
                float shrink, const Tensor& grads, Tensor* params, Tensor* m, Tensor* v) {
  Plans().AdamUpdate(b1, b2, eps, step_size, inv_sqrt_bc2, l2, shrink, grads, params, m, v);
}
void AdagradUpdate(const AdagradOptions& options, float lr, const Tensor& grads, Tensor* params,
                   Tensor* accumulator) {
  Plans().AdagradUpdate(options, lr, grads, params, accumulator);
}
void DinAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                         const DinAttentionParams& params, const DinAttentionOptions& options,
                         DinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled) {
  Plans().DinAttentionForward(q, k, mask, params, options, ws, weights, pooled);
}
void DinAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& mask,
                          const DinAttentionParams& params, const DinAttentionOptions& options,
                          const Tensor& weights, const Tensor& d_weights, const Tensor& d_pooled,
                          DinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                          DinAttentionParams* grads) {
  Plans().DinAttentionBackward(q, k, mask, params, options, weights, d_weights, d_pooled, ws, dq,
                               dk, grads);
}
void GruForward(GruGate gate, const Tensor& x, const Tensor& mask, const Tensor& attention,
                const Tensor& h0, const GruParams& params, GruWorkspace* ws, Tensor* states) {
  Plans().GruForward(gate, x, mask, attention, h0, params, ws, states);
}
void GruBackward(GruGate gate, const Tensor& x, const Tensor& mask, const Tensor& attention,
                 const Tensor& h0, const GruParams& params, const Tensor& d_states,
                 GruWorkspace* ws, Tensor* dx, Tensor* dh0, Tensor* d_attention, GruParams* grads) {
  Plans().GruBackward(gate, x, mask, attention, h0, params, d_states, ws, dx, dh0, d_attention,
                      grads);
}
void AttentionCoreForward(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v,
                          const float* mask, int64_t batch, bool causal, float* p,
                          const HeadLayout& out) {
  Plans().AttentionCoreForward(q, k, v, mask, batch, causal, p, out);
}
void AttentionCoreBackward(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v,
                           const float* p, const HeadLayout& d_out, int64_t batch, float* d_scores,
                           const HeadLayout& dq, const HeadLayout& dk, const HeadLayout& dv) {
  Plans().AttentionCoreBackward(q, k, v, p, d_out, batch, d_scores, dq, dk, dv);
}
void CopyColumns(const float* src, int64_t rows, int64_t src_cols, int64_t src_col0, float* dst,
                 int64_t dst_cols, int64_t dst_col0, int64_t width, bool accumulate) {
  Plans().CopyColumns(src, rows, src_cols, src_col0, dst, dst_cols, dst_col0, width, accumulate);
}
void DropoutForward(const Tensor& x, float rate, uint64_t seed, Mode mode, Tensor* mask, Tensor* y,
                    int64_t first_index) {
  Plans().DropoutForward(x, rate, seed, mode, mask, y, first_index);
}
void DropoutBackward(const Tensor& mask, const Tensor& dy, Tensor* dx) {
  Plans().DropoutBackward(mask, dy, dx);
}
double SumOfSquares(const Tensor& x) { return Plans().SumOfSquares(x); }
void Scale(Tensor* x, float factor) { Plans().Scale(x, factor); }
void SegmentSumPoolForward(const Tensor& x, const JaggedOffsets& offsets, Tensor* y) {
  Plans().SegmentSumPoolForward(x, offsets, y);
}
void SegmentSumPoolBackward(const JaggedOffsets& offsets, const Tensor& dy, Tensor* dx) {
  Plans().SegmentSumPoolBackward(offsets, dy, dx);
}
void JaggedToPadded(const Tensor& x, const JaggedOffsets& offsets, Tensor* padded, Tensor* mask) {
  Plans().JaggedToPadded(x, offsets, padded, mask);
}
void PaddedToJaggedAdd(const Tensor& dpadded, const JaggedOffsets& offsets, Tensor* dx) {
  Plans().PaddedToJaggedAdd(dpadded, offsets, dx);
}
void SigmoidProbabilities(const Tensor& logits, Tensor* probs) {
  Plans().SigmoidProbabilities(logits, probs);
}
double SampledSoftmaxForward(const Tensor& u, const Tensor& pos, const Tensor& neg,
                             const Tensor& log_q_pos, const Tensor& log_q_neg,
                             const SampledSoftmaxOptions& options, SampledSoftmaxWorkspace* ws) {
  return Plans().SampledSoftmaxForward(u, pos, neg, log_q_pos, log_q_neg, options, ws);
}
void SampledSoftmaxBackward(const Tensor& u, const Tensor& pos, const Tensor& neg, float dloss,
                            SampledSoftmaxWorkspace* ws, Tensor* du, Tensor* dpos, Tensor* dneg) {
  Plans().SampledSoftmaxBackward(u, pos, neg, dloss, ws, du, dpos, dneg);
}
double DienAuxLossForward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                          const Tensor& mask) {
  return Plans().DienAuxLossForward(h, e_pos, e_neg, mask);
}
void DienAuxLossBackward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                         const Tensor& mask, float dloss, Tensor* dh, Tensor* de_pos,
                         Tensor* de_neg) {
  Plans().DienAuxLossBackward(h, e_pos, e_neg, mask, dloss, dh, de_pos, de_neg);
}
void SenetForward(const Tensor& e, const SenetParams& params, SenetWorkspace* ws, Tensor* out) {
  Plans().SenetForward(e, params, ws, out);
}
void SenetBackward(const Tensor& e, const SenetParams& params, const Tensor& dout,
                   SenetWorkspace* ws, Tensor* de, SenetParams* grads) {
  Plans().SenetBackward(e, params, dout, ws, de, grads);
}
void GateForward(const Tensor& h, const Tensor& g, float scale, Tensor* out) {
  Plans().GateForward(h, g, scale, out);
}
void GateBackward(const Tensor& h, const Tensor& g, float scale, const Tensor& dout, Tensor* dh,
                  Tensor* dg) {
  Plans().GateBackward(h, g, scale, dout, dh, dg);
}
void AfmForward(const Tensor& v, const AfmParams& params, AfmWorkspace* ws, Tensor* out) {
  Plans().AfmForward(v, params, ws, out);
}
void AfmBackward(const Tensor& v, const AfmParams& params, const Tensor& dout, AfmWorkspace* ws,
                 Tensor* dv, AfmParams* grads) {
  Plans().AfmBackward(v, params, dout, ws, dv, grads);
}
void ComiRecSaForward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                      ComiRecSaWorkspace* ws, Tensor* interests) {
  Plans().ComiRecSaForward(h, mask, params, ws, interests);
}
void ComiRecSaBackward(const Tensor& h, const Tensor& mask, const ComiRecSaParams& params,
                       const Tensor& d_interests, ComiRecSaWorkspace* ws, Tensor* dh,
                       ComiRecSaParams* grads) {
  Plans().ComiRecSaBackward(h, mask, params, d_interests, ws, dh, grads);
}
void BilinearCapsuleMapForward(const Tensor& e, const Tensor& w, Tensor* u_hat) {
  Plans().BilinearCapsuleMapForward(e, w, u_hat);
}
void BilinearCapsuleMapBackward(const Tensor& e, const Tensor& w, const Tensor& d_u_hat, Tensor* de,
                                Tensor* dw) {
  Plans().BilinearCapsuleMapBackward(e, w, d_u_hat, de, dw);
}
void DynamicRoutingCoefficients(const Tensor& u_hat, const Tensor& mask, int iterations,
                                Tensor* coupling) {
  Plans().DynamicRoutingCoefficients(u_hat, mask, iterations, coupling);
}
void RoutedCapsulesForward(const Tensor& u_hat, const Tensor& coupling, Tensor* s, Tensor* v) {
  Plans().RoutedCapsulesForward(u_hat, coupling, s, v);
}
void RoutedCapsulesBackward(const Tensor& u_hat, const Tensor& coupling, const Tensor& s,
                            const Tensor& dv, Tensor* d_u_hat) {
  Plans().RoutedCapsulesBackward(u_hat, coupling, s, dv, d_u_hat);
}
void AdditiveAttentionForward(const Tensor& q, const Tensor& k, const Tensor& mask,
                              const AdditiveAttentionParams& params, AdditiveAttentionWorkspace* ws,
                              Tensor* weights, Tensor* pooled) {
  Plans().AdditiveAttentionForward(q, k, mask, params, ws, weights, pooled);
}
void AdditiveAttentionBackward(const Tensor& q, const Tensor& k,
                               const AdditiveAttentionParams& params, const Tensor& weights,
                               const Tensor& d_weights, const Tensor& d_pooled,
                               AdditiveAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                               AdditiveAttentionParams* grads) {
  Plans().AdditiveAttentionBackward(q, k, params, weights, d_weights, d_pooled, ws, dq, dk, grads);
}
void JaggedDinAttentionForward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                               const DinAttentionParams& params, const DinAttentionOptions& options,
                               JaggedDinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled) {
  Plans().JaggedDinAttentionForward(q, k, offsets, params, options, ws, weights, pooled);
}
void JaggedDinAttentionBackward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                                const DinAttentionParams& params,
                                const DinAttentionOptions& options, const Tensor& weights,
                                const Tensor& d_weights, const Tensor& d_pooled,
                                JaggedDinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                                DinAttentionParams* grads) {
  Plans().JaggedDinAttentionBackward(q, k, offsets, params, options, weights, d_weights, d_pooled,
                                     ws, dq, dk, grads);
}
void SumDuplicateRows(const Tensor& grads, const int32_t* order, const int32_t* starts, int64_t u,
                      Tensor* out) {
  Plans().SumDuplicateRows(grads, order, starts, u, out);
}

}  // namespace attnps::cuda
