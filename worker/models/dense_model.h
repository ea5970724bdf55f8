// DenseModel: the dense part of a model, the part every worker holds a replica of and the
// allreduce averages. Flavours: CtrModel (a logit per sample, worker/models/ctr_model.h) and
// RetrievalModel (K interest vectors per sample, below).
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

// Retrieval models (ComiRec, the self-attention encoder, YouTube-DNN): the user's history in,
// K interest vectors [B, K, D] out; the retrieval task scores them against item rows pulled from
// the servers (sampled softmax). Shapes: B batch, N the batch's history positions (jagged, as the
// CTR inputs: ops/jagged.h; a model whose ops take the padded layout pads internally with
// JaggedToPadded), D item dim.
struct RetrievalInputs {
  Tensor history;                        // [N, D]
  std::vector<int32_t> history_offsets;  // [B + 1]: sample b's positions, oldest first
  Tensor user;                           // [B, U], or empty
};

class RetrievalModel : public DenseModel {
 public:
  // interests: [B, K, D]. `training` keeps what Backward needs.
  virtual void Forward(const RetrievalInputs& in, bool training, Tensor* interests) = 0;
  // After Forward(in, true): accumulates d(loss)/d(params) into grads() and d(loss)/d(history)
  // into *dhistory (same shape as in.history, +=), given dinterests [B, K, D].
  virtual void Backward(const RetrievalInputs& in, const Tensor& dinterests, Tensor* dhistory) = 0;
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_DENSE_MODEL_H_
