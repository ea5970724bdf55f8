// Sparse optimizers, applied on the server to one row at a time when its gradient is pushed.
// A row is [embedding (dim) | optimizer state (StateWidth floats)]. The gradient of duplicate keys
// is summed by the worker before the push, so each row gets one update per push.
//
//   SGD      w -= lr g
//   Adagrad  a += g^2; w -= lr g / (sqrt(a) + eps)                   state a (initial_accumulator)
//   Adam     lazy (rows not pushed keep m, v); bias-corrected by the     state m, v, t
//            global step + 1 or the row's update count t (the config's adam_bias_correction)
//   FTRL     FTRL-Proximal (McMahan et al. 2013) per coordinate        state z, n
// Thread-safety: pure functions of their arguments.
#ifndef ATTNPS_PS_SPARSE_OPTIMIZER_H_
#define ATTNPS_PS_SPARSE_OPTIMIZER_H_

#include <cstdint>

#include "ps/table_config.h"

namespace attnps::ps {

// Floats of optimizer state per row.
int StateWidth(SparseOptimizerKind kind, int dim);

// Initial optimizer state of a new row (state has StateWidth floats).
void InitOptimizerState(const SparseOptimizerConfig& config, int dim, float* state);

// What an update needs that depends only on the config and the global step: computed once per
// push, not per row (unused under ROW_STEP, which corrects by each row's own count).
struct SparseStep {
  float adam_step_size = 0;    // lr / (1 - beta1^t)
  float adam_inv_sqrt_c2 = 0;  // 1 / sqrt(1 - beta2^t)
};
// `step` is the push's global step, 0 for the first (so t = step + 1).
SparseStep PrepareSparseStep(const SparseOptimizerConfig& config, uint64_t step);

// Applies one update with gradient grad[0, dim) to embedding[0, dim) and its state.
void ApplySparseUpdate(const SparseOptimizerConfig& config, const SparseStep& at, int dim,
                       const float* grad, float* embedding, float* state);

}  // namespace attnps::ps

#endif  // ATTNPS_PS_SPARSE_OPTIMIZER_H_
