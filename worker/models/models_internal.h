// Shared internals of the CTR models: input checks and the per-kind constructors behind
// MakeCtrModel. Private to worker/models.
#ifndef ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_
#define ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_

#include <cstdint>
#include <memory>

#include "ops/din_attention.h"
#include "ops/tensor.h"
#include "worker/models/ctr_model.h"
#include "worker/models/param_arena.h"

namespace attnps::models {

struct BatchSizes {
  int64_t b = 0;
  int64_t n = 0;  // history positions
};

// CHECK-fails (a caller bug) unless target [B, D], history [N, D] with valid offsets [B + 1]
// (ending at N) and user [B, U] (or empty when U = 0), with D = item_dim + cate_dim; returns B
// and N.
BatchSizes CheckCtrInputs(const CtrInputs& in, const CtrModelDims& dims);

// Declares the DIN activation unit's weights in `arena` for item dim d and hidden sizes h1, h2:
// w1 [4D, H1], b1 [H1], w2 [H1, H2], b2 [H2], w3 [H2, 1], b3 [1], in that order, torch's Linear
// init; *p and *g become views of the values and gradients once the arena is allocated.
void DeclareDinUnit(int64_t d, int64_t h1, int64_t h2, ParamArena* arena, DinAttentionParams* p,
                    DinAttentionParams* g);

// The kinds of attnps's own registry (worker/models/ctr_model.cc), one per model file.
CtrModelKind BaseModelKind();
CtrModelKind DinModelKind();
CtrModelKind DienModelKind();

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_
