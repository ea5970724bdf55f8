// Layer normalization and seeded dropout.
// Shape letters: N rows, C features (LayerNorm normalizes over the last dim). Dropout takes x of
// any shape. Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers; a null
// gradient pointer skips that gradient.
#ifndef ATTNPS_OPS_NORM_H_
#define ATTNPS_OPS_NORM_H_

#include <cstdint>

#include "ops/activation.h"  // Mode
#include "ops/tensor.h"

namespace attnps {

constexpr float kLayerNormEps = 1e-5f;

// x [N, C] -> y [N, C] = (x - mean) * rstd * gamma [C] + beta [C], rstd = 1 / sqrt(var + eps),
// the biased variance over each row. Writes mean [N] and rstd [N] for the backward.
void LayerNormForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                      Tensor* y, Tensor* mean, Tensor* rstd);
// Reads mean and rstd of the forward call on the same x.
void LayerNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                       const Tensor& dy, Tensor* dx, Tensor* dgamma, Tensor* dbeta);

// Inverted dropout with drop rate 0 <= rate < 1. kTraining: mask (shaped like x) is set to 0 or
// 1 / (1 - rate) per element from a counter-based hash of (seed, flat index), so the same seed
// gives the same mask whatever the thread count; y = x * mask. kInference: mask = 1, y = x.
// Element e's flat index is first_index + e: a slice of a tensor starting at flat index
// first_index draws the mask the whole tensor would.
void DropoutForward(const Tensor& x, float rate, uint64_t seed, Mode mode, Tensor* mask, Tensor* y,
                    int64_t first_index = 0);
// dx += dy * mask.
void DropoutBackward(const Tensor& mask, const Tensor& dy, Tensor* dx);

}  // namespace attnps

#endif  // ATTNPS_OPS_NORM_H_
