// Masked pooling over the history axis.
// Shape letters: B batch, T history length, D feature dim. mask [B, T] is 1 at valid positions
// and 0 at padding. Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers;
// a null gradient pointer skips that gradient.
#ifndef ATTNPS_OPS_POOLING_H_
#define ATTNPS_OPS_POOLING_H_

#include "ops/tensor.h"

namespace attnps {

// y [B, D] = sum_t mask[b, t] * x[b, t, :], x [B, T, D]. A fully masked row gives 0.
void MaskedSumPoolForward(const Tensor& x, const Tensor& mask, Tensor* y);
// dx [B, T, D] += mask[b, t] * dy[b, :].
void MaskedSumPoolBackward(const Tensor& mask, const Tensor& dy, Tensor* dx);

// y [B, D] = sum_t mask[b, t] * x[b, t, :] / sum_t mask[b, t]; a fully masked row gives 0.
void MaskedMeanPoolForward(const Tensor& x, const Tensor& mask, Tensor* y);
// dx [B, T, D] += mask[b, t] * dy[b, :] / sum_t mask[b, t] (0 for a fully masked row).
void MaskedMeanPoolBackward(const Tensor& mask, const Tensor& dy, Tensor* dx);

}  // namespace attnps

#endif  // ATTNPS_OPS_POOLING_H_
