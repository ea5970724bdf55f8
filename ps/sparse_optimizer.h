// Sparse optimizers, applied on the server to one row at a time when its gradient is pushed.
// A row is [embedding (dim) | optimizer state (StateWidth floats)]. The gradient of duplicate keys
// is summed by the worker before the push, so each row gets one update per push.
//
//   SGD      w -= lr g
//   Adagrad  a += g^2; w -= lr g / (sqrt(a) + eps)                   state a (initial_accumulator)
//   Adam     lazy: per-row step count t; m, v moments; bias-corrected   state m, v, t
//   FTRL     FTRL-Proximal (McMahan et al. 2013) per coordinate        state z, n
// Thread-safety: pure functions of their arguments.
#ifndef ATTNPS_PS_SPARSE_OPTIMIZER_H_
#define ATTNPS_PS_SPARSE_OPTIMIZER_H_

#include "ps/table_config.h"

namespace attnps::ps {

// Floats of optimizer state per row.
int StateWidth(SparseOptimizerKind kind, int dim);

// Initial optimizer state of a new row (state has StateWidth floats).
void InitOptimizerState(const SparseOptimizerConfig& config, int dim, float* state);

// Applies one update with gradient grad[0, dim) to embedding[0, dim) and its state.
void ApplySparseUpdate(const SparseOptimizerConfig& config, int dim, const float* grad,
                       float* embedding, float* state);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_SPARSE_OPTIMIZER_H_
