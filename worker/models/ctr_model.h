// CtrModel: the dense part of a CTR model (Base, DIN, ...), on the ops library.
//
// The embeddings come from the parameter servers: the trainer gathers the pulled rows into
// CtrInputs, runs Forward/Backward, and scatters the input gradients back to the unique keys.
// Shapes: B batch, T history length (padded; mask 1 = valid, 0 = padding), D = item_dim +
// cate_dim (a position is [item row | cate row]), U = user_dim (0: no user feature).
//
// Every trainable dense weight is a view into one flat buffer, params(), and its gradient a view
// into grads() at the same offset: the allreduce and the dense optimizer work on the flat
// buffers. buffers() holds non-trainable state (Dice moving averages), checkpointed with them.
// Gradients are accumulated (+=): the trainer zeroes grads() before each step.
// Thread-safety: one caller at a time. Initialization is a pure function of the seed.
#ifndef ATTNPS_WORKER_MODELS_CTR_MODEL_H_
#define ATTNPS_WORKER_MODELS_CTR_MODEL_H_

#include <cstdint>
#include <memory>

#include "ops/status.h"
#include "ops/tensor.h"
#include "proto/job_config.pb.h"

namespace attnps::models {

struct CtrInputs {
  Tensor target;   // [B, D]
  Tensor history;  // [B, T, D]
  Tensor mask;     // [B, T]
  Tensor user;     // [B, U], or empty
};

// Gradients w.r.t. the inputs, same shapes; accumulated (+=). An empty field is skipped.
struct CtrInputGrads {
  Tensor target;
  Tensor history;
  Tensor user;
};

struct CtrModelDims {
  int item_dim = 0;
  int cate_dim = 0;
  int user_dim = 0;  // 0: no user feature
  int max_history = 0;
};

class CtrModel {
 public:
  virtual ~CtrModel() = default;
  virtual Tensor& params() = 0;   // [P]
  virtual Tensor& grads() = 0;    // [P]
  virtual Tensor& buffers() = 0;  // [Q], Q may be 0
  // logits: [B]. `training`: batch statistics (Dice) and moving-average updates, and keeps what
  // Backward needs; otherwise the moving averages are used and nothing is updated.
  virtual void Forward(const CtrInputs& in, bool training, Tensor* logits) = 0;
  // After Forward(in, training = true): accumulates d(loss)/d(params) into grads() and the input
  // gradients into *dinputs, given dlogits [B] = d(loss)/d(logits).
  virtual void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) = 0;
};

// The model of config.model (base or din), weights initialized from `seed`. InvalidArgument
// naming the field for a setting the implementation does not support.
Status MakeCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed,
                    std::unique_ptr<CtrModel>* out);

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_CTR_MODEL_H_
