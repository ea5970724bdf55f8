// ParamArena: lays out a model's trainable weights in one flat buffer (and their gradients in a
// second one at the same offsets) and its non-trainable state in a third, and initializes them
// deterministically from a seed. Private to worker/models.
//
// Usage: the model declares every tensor (AddParam / AddBuffer), passing pointers to its own
// Tensor members, then calls Allocate(seed) once: the members become views into the flat buffers.
// The arena and the members must outlive no one: the model owns both and is never moved after
// Allocate (it lives behind a unique_ptr). Callers write the flat buffers in place (CopyFrom,
// optimizer steps); reassigning them would detach the views.
#ifndef ATTNPS_WORKER_MODELS_PARAM_ARENA_H_
#define ATTNPS_WORKER_MODELS_PARAM_ARENA_H_

#include <cstdint>
#include <vector>

#include "ops/tensor.h"

namespace attnps::models {

// How a trainable tensor starts.
struct ParamInit {
  enum class Kind { kUniform, kConstant };
  Kind kind = Kind::kConstant;
  float value = 0.0f;  // kUniform: U(-value, value); kConstant: the value

  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch.nn.Linear's default for weights and biases.
  static ParamInit LinearLike(int64_t fan_in);
  static ParamInit Constant(float value) { return {Kind::kConstant, value}; }
};

class ParamArena {
 public:
  // Declares a trainable tensor of `shape`; after Allocate, *value and *grad are views into
  // params() and grads() at the same offset (declaration order). Either pointer may alias
  // nothing else in the arena.
  void AddParam(const Shape& shape, const ParamInit& init, Tensor* value, Tensor* grad);
  // Declares a non-trainable tensor filled with `fill`; after Allocate a view into buffers().
  void AddBuffer(const Shape& shape, float fill, Tensor* value);

  // Allocates the flat buffers, binds the views and initializes: parameter i (declaration
  // order) draws its values from stream StreamKey(seed, kSalt, i), so the init is a pure
  // function of (seed, layout). grads() starts zeroed. Call once.
  void Allocate(uint64_t seed);

  Tensor& params() { return params_; }
  Tensor& grads() { return grads_; }
  Tensor& buffers() { return buffers_; }

 private:
  struct Entry {
    Shape shape;
    ParamInit init;
    Tensor* value;
    Tensor* grad;  // null for buffers
  };

  std::vector<Entry> params_decl_;
  std::vector<Entry> buffers_decl_;
  Tensor params_, grads_, buffers_;
  bool allocated_ = false;
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_PARAM_ARENA_H_
