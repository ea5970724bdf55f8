// Linear layers and batched matrix products.
// Shape letters: N rows, I input features, O output features, G batch of matrices, M/K/P matrix
// dims. Weights are [I, O] (y = x w + b). Forward outputs are assigned (=); every gradient is
// accumulated (+=) into caller-zeroed buffers, so shared inputs sum their gradients. A null
// gradient pointer skips that gradient.
#ifndef ATTNPS_OPS_LINEAR_H_
#define ATTNPS_OPS_LINEAR_H_

#include "ops/tensor.h"

namespace attnps {

// y[N,O] = x[N,I] w[I,O] + b[O] (b may be an empty Tensor: no bias).
void LinearForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y);
// dx[N,I] += dy w^T, dw[I,O] += x^T dy, db[O] += column sums of dy.
void LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                    Tensor* db);

// c[G,M,P] = op(a) op(b), op(a) [G,M,K] (a stored [G,K,M] when trans_a), op(b) [G,K,P].
void BatchedMatmulForward(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor* c);
// Gradients of the product above given dc[G,M,P]; accumulated into da and db (same layout as a, b).
void BatchedMatmulBackward(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                           const Tensor& dc, Tensor* da, Tensor* db);

// dst[:, dst_col0 : dst_col0 + width] = (or += with `accumulate`) src[:, src_col0 : src_col0 +
// width], src [R, Cs] and dst [R, Cd] on one device: the column blocks of a concatenation (the
// [q, pooled] input of a tower, packed projections) and of its gradient.
void CopyColumns(const Tensor& src, int64_t src_col0, Tensor* dst, int64_t dst_col0, int64_t width,
                 bool accumulate);

}  // namespace attnps

#endif  // ATTNPS_OPS_LINEAR_H_
