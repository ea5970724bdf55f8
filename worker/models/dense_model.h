// DenseModel: the dense part of a model, the part every worker holds a replica of and the
// allreduce averages. Flavours: CtrModel (a logit per sample, worker/models/ctr_model.h) and
// RetrievalModel (K interest vectors per sample, worker/models/retrieval_model.h).
//
// Every trainable dense weight is a view into one flat buffer, params(), and its gradient a view
// into grads() at the same offset: the allreduce and the dense optimizer work on the flat
// buffers. buffers() holds non-trainable state (Dice moving averages), checkpointed with them.
// Gradients are accumulated (+=): the training loop zeroes grads() before each step.
// Thread-safety: one caller at a time. Initialization is a pure function of the seed.
#ifndef ATTNPS_WORKER_MODELS_DENSE_MODEL_H_
#define ATTNPS_WORKER_MODELS_DENSE_MODEL_H_

#include <cstdint>
#include <vector>

#include "ops/tensor.h"

namespace attnps::models {

class DenseModel {
 public:
  virtual ~DenseModel() = default;
  virtual Tensor& params() = 0;   // [P]
  virtual Tensor& grads() = 0;    // [P]
  virtual Tensor& buffers() = 0;  // [Q], Q may be 0
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_DENSE_MODEL_H_
