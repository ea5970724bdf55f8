// Activations: elementwise ReLU, sigmoid and tanh; per-channel PReLU; Dice (Zhou et al., DIN).
// Shape letters: N rows, C channels. The elementwise ops take x of any shape and y of the same
// shape. Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers; a null
// gradient pointer skips that gradient.
#ifndef ATTNPS_OPS_ACTIVATION_H_
#define ATTNPS_OPS_ACTIVATION_H_

#include "ops/tensor.h"

namespace attnps {

// Ops whose forward differs between training and inference (Dice, dropout).
enum class Mode { kTraining, kInference };

// y = max(x, 0). The backward reads y of the forward (dx += dy where y > 0).
void ReluForward(const Tensor& x, Tensor* y);
void ReluBackward(const Tensor& y, const Tensor& dy, Tensor* dx);

// y = 1 / (1 + exp(-x)); dx += dy * y * (1 - y).
void SigmoidForward(const Tensor& x, Tensor* y);
void SigmoidBackward(const Tensor& y, const Tensor& dy, Tensor* dx);

// y = tanh(x); dx += dy * (1 - y^2).
void TanhForward(const Tensor& x, Tensor* y);
void TanhBackward(const Tensor& y, const Tensor& dy, Tensor* dx);

// x [N, C], alpha [C] -> y [N, C] = x where x > 0, alpha_c * x otherwise.
void PreluForward(const Tensor& x, const Tensor& alpha, Tensor* y);
void PreluBackward(const Tensor& x, const Tensor& alpha, const Tensor& dy, Tensor* dx,
                   Tensor* dalpha);

struct DiceOptions {
  float momentum = 0.1f;  // running = (1 - momentum) * running + momentum * batch
  float eps = 1e-8f;      // added to the variance
};

// Dice over x [N, C] with per-channel alpha [C]:
//   p = sigmoid((x - mean_c) * rstd_c), rstd_c = 1 / sqrt(var_c + eps),
//   y = p * x + (1 - p) * alpha_c * x.
// kTraining: mean_c and var_c are the batch mean and biased variance over the N rows, and the
// caller-owned running_mean [C] / running_var [C] are updated with the momentum (running_var from
// the unbiased batch variance, as torch BatchNorm1d; left unchanged when N = 1). kInference: the
// running statistics are used and not updated. Either way the statistics used are written to
// saved_mean [C] and saved_rstd [C] for the backward.
void DiceForward(const Tensor& x, const Tensor& alpha, Mode mode, const DiceOptions& options,
                 Tensor* running_mean, Tensor* running_var, Tensor* y, Tensor* saved_mean,
                 Tensor* saved_rstd);
// Reads saved_mean / saved_rstd of the forward call in the same mode on the same x. In
// kTraining the gradient flows through the batch mean and variance.
void DiceBackward(const Tensor& x, const Tensor& alpha, Mode mode, const Tensor& saved_mean,
                  const Tensor& saved_rstd, const Tensor& dy, Tensor* dx, Tensor* dalpha);

}  // namespace attnps

#endif  // ATTNPS_OPS_ACTIVATION_H_
