// Shared internals of the CTR models: input checks and the per-kind constructors behind
// MakeCtrModel. Private to worker/models.
#ifndef ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_
#define ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_

#include <cstdint>
#include <memory>

#include "ops/tensor.h"
#include "worker/models/ctr_model.h"

namespace attnps::models {

struct BatchSizes {
  int64_t b = 0;
  int64_t n = 0;  // history positions
};

// CHECK-fails (a caller bug) unless target [B, D], history [N, D] with valid offsets [B + 1]
// (ending at N) and user [B, U] (or empty when U = 0), with D = item_dim + cate_dim; returns B
// and N.
BatchSizes CheckCtrInputs(const CtrInputs& in, const CtrModelDims& dims);

// The kinds of attnps's own registry (worker/models/ctr_model.cc), one per model file.
CtrModelKind BaseModelKind();
CtrModelKind DinModelKind();
CtrModelKind DienModelKind();

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_
