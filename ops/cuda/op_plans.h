// The CUDA ops as plans: which bodies (ops/cuda/kernel_bodies.h) run over how many indices, and
// which GEMMs and reductions, written once over an executor. ops/cuda/device_ops.cu runs them
// with the device executor (grid-stride launches, cuBLAS, CUB); the tests run the same plans
// with a host executor (loops, the CPU GEMM) against the CPU ops, on machines without a GPU.
// An executor provides:
//   template <class Body> void ForEach(int64_t n, const Body& body);   // body(i), i in [0, n)
//   void* Scratch(size_t bytes);        // memory kept until the next Scratch call
//   void Gemm(...), GemmStridedBatched(...);   // row-major, attnps::Gemm's arguments
//   double Sum(const double* values, int64_t n);
// Arguments are validated by the CPU op before it dispatches (ShapeCheck), not here.
// Plain C++ outside nvcc.
#ifndef ATTNPS_OPS_CUDA_OP_PLANS_H_
#define ATTNPS_OPS_CUDA_OP_PLANS_H_

#include <cstdint>

#include "ops/activation.h"
#include "ops/cuda/kernel_bodies.h"
#include "ops/optimizer.h"
#include "ops/tensor.h"

namespace attnps::cuda {

inline float* Ptr(const Tensor& t) { return t.empty() ? nullptr : t.data(); }
inline float* Ptr(const Tensor* t) { return t == nullptr ? nullptr : t->data(); }
inline int64_t Size(const Tensor& t, int i) { return t.shape()[i]; }

template <typename Exec>
class OpPlans {
 public:
  explicit OpPlans(Exec* exec) : ex_(*exec) {}

  void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y) {
    const int64_t rows = Size(x, 0), in = Size(x, 1), out = Size(w, 1);
    if (!b.empty()) ex_.ForEach(y->numel(), BroadcastRowsBody{b.data(), out, y->data()});
    ex_.Gemm(false, false, rows, out, in, 1.0f, x.data(), in, w.data(), out,
             b.empty() ? 0.0f : 1.0f, y->data(), out);
  }
  void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                      Tensor* db) {
    const int64_t rows = Size(x, 0), in = Size(x, 1), out = Size(w, 1);
    if (dx)
      ex_.Gemm(false, true, rows, in, out, 1.0f, dy.data(), out, w.data(), out, 1.0f, dx->data(),
               in);
    if (dw)
      ex_.Gemm(true, false, in, out, rows, 1.0f, x.data(), in, dy.data(), out, 1.0f, dw->data(),
               out);
    if (db) ex_.ForEach(out, ColumnSumBody{dy.data(), rows, out, db->data()});
  }

  template <typename Body>
  void Unary(const Tensor& x, Tensor* y) {
    ex_.ForEach(x.numel(), Body{x.data(), y->data()});
  }
  template <typename Body>
  void UnaryGrad(const Tensor& y, const Tensor& dy, Tensor* dx) {
    if (dx) ex_.ForEach(y.numel(), Body{y.data(), dy.data(), dx->data()});
  }

  void PreluForward(const Tensor& x, const Tensor& alpha, Tensor* y) {
    ex_.ForEach(x.numel(), PreluForwardBody{x.data(), alpha.data(), Size(x, 1), y->data()});
  }
  void PreluBackward(const Tensor& x, const Tensor& alpha, const Tensor& dy, Tensor* dx,
                     Tensor* dalpha) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    if (dx)
      ex_.ForEach(x.numel(),
                  PreluBackwardBody{x.data(), alpha.data(), dy.data(), cols, dx->data()});
    if (dalpha)
      ex_.ForEach(cols, PreluAlphaGradBody{x.data(), dy.data(), rows, cols, dalpha->data()});
  }

  void DiceForward(const Tensor& x, const Tensor& alpha, Mode mode, const DiceOptions& options,
                   Tensor* running_mean, Tensor* running_var, Tensor* y, Tensor* saved_mean,
                   Tensor* saved_rstd) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    if (mode == Mode::kTraining) {
      ex_.ForEach(cols, DiceTrainStatsBody{x.data(), rows, cols, options.momentum, options.eps,
                                           saved_mean->data(), saved_rstd->data(),
                                           running_mean->data(), running_var->data()});
    } else {
      ex_.ForEach(cols,
                  DiceInferenceStatsBody{running_mean->data(), running_var->data(), options.eps,
                                         saved_mean->data(), saved_rstd->data()});
    }
    ex_.ForEach(x.numel(), DiceForwardBody{x.data(), alpha.data(), saved_mean->data(),
                                           saved_rstd->data(), cols, y->data()});
  }
  void DiceBackward(const Tensor& x, const Tensor& alpha, Mode mode, const Tensor& saved_mean,
                    const Tensor& saved_rstd, const Tensor& dy, Tensor* dx, Tensor* dalpha) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    float* means = static_cast<float*>(ex_.Scratch(2 * cols * sizeof(float)));
    ex_.ForEach(cols, DiceGradSumsBody{x.data(), dy.data(), alpha.data(), saved_mean.data(),
                                       saved_rstd.data(), rows, cols, mode == Mode::kTraining,
                                       means, means + cols, Ptr(dalpha)});
    if (dx) {
      ex_.ForEach(x.numel(),
                  DiceBackwardBody{x.data(), dy.data(), alpha.data(), saved_mean.data(),
                                   saved_rstd.data(), means, means + cols, cols, dx->data()});
    }
  }

  void LayerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        Tensor* y, Tensor* mean, Tensor* rstd) {
    ex_.ForEach(Size(x, 0),
                LayerNormForwardBody{x.data(), gamma.data(), beta.data(), eps, Size(x, 1),
                                     y->data(), mean->data(), rstd->data()});
  }
  void LayerNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd, const Tensor& dy, Tensor* dx, Tensor* dgamma,
                         Tensor* dbeta) {
    const int64_t rows = Size(x, 0), cols = Size(x, 1);
    if (dx) {
      ex_.ForEach(rows, LayerNormBackwardBody{x.data(), gamma.data(), mean.data(), rstd.data(),
                                              dy.data(), cols, dx->data()});
    }
    if (dgamma || dbeta) {
      ex_.ForEach(cols, LayerNormParamGradBody{x.data(), mean.data(), rstd.data(), dy.data(), rows,
                                               cols, Ptr(dgamma), Ptr(dbeta)});
    }
  }

  void MaskedSoftmaxForward(const Tensor& x, const Tensor& mask, float scale, Tensor* y) {
    ex_.ForEach(Size(x, 0),
                MaskedSoftmaxForwardBody{x.data(), Ptr(mask), Size(x, 1), scale, y->data()});
  }
  void MaskedSoftmaxBackward(const Tensor& y, const Tensor& dy, float scale, Tensor* dx) {
    if (dx)
      ex_.ForEach(Size(y, 0),
                  MaskedSoftmaxBackwardBody{y.data(), dy.data(), Size(y, 1), scale, dx->data()});
  }

  void MaskedPoolForward(const Tensor& x, const Tensor& mask, bool mean, Tensor* y) {
    ex_.ForEach(y->numel(), MaskedPoolForwardBody{x.data(), mask.data(), Size(x, 1), Size(x, 2),
                                                  mean, y->data()});
  }
  void MaskedPoolBackward(const Tensor& mask, const Tensor& dy, bool mean, Tensor* dx) {
    if (dx)
      ex_.ForEach(dy.numel(), MaskedPoolBackwardBody{mask.data(), dy.data(), Size(mask, 1),
                                                     Size(dy, 1), mean, dx->data()});
  }

  double BceWithLogitsForward(const Tensor& logits, const Tensor& labels, const Tensor& weights) {
    const int64_t n = logits.numel();
    if (n == 0) return 0.0;
    double* terms = static_cast<double*>(ex_.Scratch(n * sizeof(double)));
    ex_.ForEach(n, BceTermsBody{logits.data(), labels.data(), Ptr(weights), terms});
    return ex_.Sum(terms, n) / static_cast<double>(n);
  }
  void BceWithLogitsBackward(const Tensor& logits, const Tensor& labels, const Tensor& weights,
                             float dloss, Tensor* dlogits) {
    const int64_t n = logits.numel();
    if (!dlogits || n == 0) return;
    ex_.ForEach(n, BceBackwardBody{logits.data(), labels.data(), Ptr(weights),
                                   dloss / static_cast<float>(n), dlogits->data()});
  }

  void SgdUpdate(const SgdOptions& o, float lr, const Tensor& grads, Tensor* params,
                 Tensor* momentum) {
    float* buf = o.momentum != 0.0f ? momentum->data() : nullptr;
    ex_.ForEach(grads.numel(),
                SgdBody{lr, o.momentum, o.weight_decay, o.momentum_kind == MomentumKind::kNesterov,
                        grads.data(), params->data(), buf});
  }
  void AdamUpdate(float b1, float b2, float eps, float step_size, float inv_sqrt_bc2, float l2,
                  float shrink, const Tensor& grads, Tensor* params, Tensor* m, Tensor* v) {
    ex_.ForEach(grads.numel(), AdamBody{b1, b2, eps, step_size, inv_sqrt_bc2, l2, shrink,
                                        grads.data(), params->data(), m->data(), v->data()});
  }
  void AdagradUpdate(const AdagradOptions& o, float lr, const Tensor& grads, Tensor* params,
                     Tensor* accumulator) {
    ex_.ForEach(grads.numel(),
                AdagradBody{lr, o.eps, grads.data(), params->data(), accumulator->data()});
  }

  void SumDuplicateRows(const Tensor& grads, const int32_t* order, const int32_t* starts, int64_t u,
                        Tensor* out) {
    const int64_t d = Size(grads, 1);
    ex_.ForEach(u * d, SumDuplicateRowsBody{grads.data(), order, starts, d, out->data()});
  }

 private:
  Exec& ex_;
};

}  // namespace attnps::cuda

#endif  // ATTNPS_OPS_CUDA_OP_PLANS_H_
