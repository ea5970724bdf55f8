// Dense optimizers over a flat parameter buffer, and global-norm gradient clipping.
//
// Shape letters: P parameters. params, grads and every state tensor are [P].
// The update functions modify params and their state in place (params -= ...); grads are read
// only. Update rules (g = grads, t = 1-based step, lr = learning rate, wd = weight decay):
//   SGD:     g += wd p; buf = momentum buf + g; p -= lr (nesterov ? g + momentum buf : buf)
//            (with momentum 0 no buffer is used: p -= lr g).
//   Adam:    kL2: g += wd p; kDecoupled (AdamW): p -= lr wd p first;
//            m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//            p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
//   Adagrad: acc += g^2; p -= lr g / (sqrt(acc) + eps); acc starts at initial_accumulator_value.
// Thread-safety: a DenseOptimizer is not thread-safe; the update loops run in parallel inside.
// Errors: mismatched shapes and invalid hyper-parameters CHECK-fail naming the op.
#ifndef ATTNPS_OPS_OPTIMIZER_H_
#define ATTNPS_OPS_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/tensor.h"

namespace attnps {

enum class DenseOptimizerKind { kSgd, kAdam, kAdagrad };
enum class MomentumKind { kClassic, kNesterov };
enum class WeightDecayKind {
  kL2,         // added to the gradient (Adam with L2 regularization)
  kDecoupled,  // applied to the parameters directly (AdamW)
};

struct SgdOptions {
  float momentum = 0.0f;
  MomentumKind momentum_kind = MomentumKind::kClassic;
  float weight_decay = 0.0f;  // L2, added to the gradient
};

struct AdamOptions {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  WeightDecayKind weight_decay_kind = WeightDecayKind::kL2;
};

struct AdagradOptions {
  float initial_accumulator_value = 0.1f;
  float eps = 1e-10f;
};

struct DenseOptimizerOptions {
  DenseOptimizerKind kind = DenseOptimizerKind::kAdam;
  float learning_rate = 1e-3f;
  SgdOptions sgd;          // read when kind == kSgd
  AdamOptions adam;        // read when kind == kAdam
  AdagradOptions adagrad;  // read when kind == kAdagrad
};

// ---- Update functions over caller-owned state ------------------------------------------------

// momentum: [P] buffer, or an empty Tensor when sgd.momentum == 0.
void SgdUpdate(const SgdOptions& options, float lr, const Tensor& grads, Tensor* params,
               Tensor* momentum);
// step: the 1-based index of this update (for bias correction).
void AdamUpdate(const AdamOptions& options, float lr, int64_t step, const Tensor& grads,
                Tensor* params, Tensor* m, Tensor* v);
void AdagradUpdate(const AdagradOptions& options, float lr, const Tensor& grads, Tensor* params,
                   Tensor* accumulator);

// ---- Optimizer objects owning their state ----------------------------------------------------

// One optimizer state tensor, for checkpointing: `tensor` shares the optimizer's buffer, so
// writing into it (CopyFrom) restores the state.
struct OptimizerSlot {
  std::string name;  // "momentum", "m", "v", "accumulator"
  Tensor tensor;     // [P]
};

class DenseOptimizer {
 public:
  virtual ~DenseOptimizer() = default;
  DenseOptimizer(const DenseOptimizer&) = delete;
  DenseOptimizer& operator=(const DenseOptimizer&) = delete;

  // One update of params [P] with grads [P]; increments step_count() first.
  virtual void Step(const Tensor& grads, Tensor* params) = 0;
  // The state tensors in a fixed order (empty for plain SGD without momentum).
  virtual std::vector<OptimizerSlot> Slots() const = 0;

  int64_t num_params() const { return num_params_; }
  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t step) { step_count_ = step; }  // when restoring a checkpoint
  const DenseOptimizerOptions& options() const { return options_; }
  void set_learning_rate(float lr) { options_.learning_rate = lr; }  // for schedules

 protected:
  DenseOptimizer(const DenseOptimizerOptions& options, int64_t num_params)
      : options_(options), num_params_(num_params) {}

  DenseOptimizerOptions options_;
  int64_t num_params_;
  int64_t step_count_ = 0;
};

// An optimizer of options.kind for `num_params` parameters, with its state initialized on
// `device` (where the parameters live: Step takes params and grads there). CHECK-fails on
// invalid hyper-parameters.
std::unique_ptr<DenseOptimizer> MakeDenseOptimizer(const DenseOptimizerOptions& options,
                                                   int64_t num_params,
                                                   Device device = Device::kCPU);

// ---- Clipping --------------------------------------------------------------------------------

// Returns the global L2 norm of all gradients before clipping; when it exceeds max_norm (> 0),
// scales every gradient in place by max_norm / norm.
float ClipByGlobalNorm(const std::vector<Tensor*>& grads, float max_norm);
float ClipByGlobalNorm(Tensor* grads, float max_norm);

}  // namespace attnps

#endif  // ATTNPS_OPS_OPTIMIZER_H_
