// MlpTower: the CTR head shared by every model: hidden Linear layers, each followed by the
// configured activation (Dice, PReLU, ReLU or sigmoid), then a Linear layer to one logit.
// Private to worker/models.
//
// Per hidden layer l (width H_l): w_l [in, H_l], b_l [H_l], and for PReLU / Dice alpha_l [H_l]
// (trainable; PReLU starts at 0.25, Dice at 0 as din_torch.py); Dice also keeps running_mean_l
// (starts 0) and running_var_l (starts 1) in the arena's buffers. Output layer: w_out [H_L, 1],
// b_out [1]. Weights and biases start U(+-1/sqrt(fan_in)).
// Layer gates (LHUC, POSO): after each hidden layer's activation h, out = scale * sigmoid(g) * h
// with g = relu(x_g w1 + b1) w2 + b2 from the gate's columns x_g of the tower's input, per layer
// w1 [cols, G], b1 [G] (Linear init), w2 [G, H_l] (Linear init), b2 [H_l] = 0, declared after the
// layer's own; several gates apply in order.
// Workspaces are members, resized only when the batch size changes. One caller at a time.
#ifndef ATTNPS_WORKER_MODELS_MLP_H_
#define ATTNPS_WORKER_MODELS_MLP_H_

#include <cstdint>
#include <vector>

#include "ops/activation.h"
#include "ops/tensor.h"
#include "proto/job_config.pb.h"
#include "worker/config/job_config.h"
#include "worker/models/param_arena.h"

namespace attnps::models {

// A gate on every hidden layer, fed by columns [col_begin, col_begin + cols) of the input.
struct MlpGate {
  int64_t col_begin = 0, cols = 0;
  int64_t hidden = 0;  // G
  float scale = 2.0f;
};

class MlpTower {
 public:
  // Declares the tower's tensors in `arena` (input width `input_dim`). `hidden` may be empty
  // (then it is a single Linear layer). dice_momentum follows the config: running = momentum *
  // running + (1 - momentum) * batch.
  MlpTower(int64_t input_dim, const std::vector<int>& hidden, config::Activation activation,
           float dice_epsilon, float dice_momentum, ParamArena* arena,
           const std::vector<MlpGate>& gates = {});
  // The same, with the hidden sizes, activation and Dice settings of `mlp` (model.mlp).
  MlpTower(int64_t input_dim, const config::MlpConfig& mlp, ParamArena* arena,
           const std::vector<MlpGate>& gates = {})
      : MlpTower(input_dim, config::MlpHidden(mlp), mlp.activation(), mlp.dice_epsilon(),
                 mlp.dice_momentum(), arena, gates) {}
  // The arena holds pointers into the tower: never copied or moved.
  MlpTower(const MlpTower&) = delete;
  MlpTower& operator=(const MlpTower&) = delete;

  // x [B, input_dim] -> logits [B] (a view that may alias nothing the tower owns). `training`
  // selects Dice batch statistics (and updates the running ones) and keeps what Backward reads.
  void Forward(const Tensor& x, bool training, Tensor* logits);
  // After Forward(x, training = true) on the same x: accumulates the weight gradients and, when
  // dx is non-null, dx [B, input_dim] += d(loss)/dx, given dlogits [B].
  void Backward(const Tensor& x, const Tensor& dlogits, Tensor* dx);

  int64_t input_dim() const { return input_dim_; }

 private:
  struct GateState {  // one gate of one layer
    Tensor w1, b1, w2, b2, dw1, db1, dw2, db2;
    Tensor pre, hidden, g, y;        // [B, G], [B, G], [B, H], [B, H]
    Tensor d_hidden, d_pre, dg, dy;  // backward scratch
  };
  struct Layer {
    int64_t in = 0, out = 0;
    std::vector<GateState> gates;      // one per MlpGate
    Tensor w, b, alpha;                // params (alpha empty for ReLU / sigmoid)
    Tensor dw, db, dalpha;             // grads
    Tensor running_mean, running_var;  // Dice only (buffers)
    // Workspace [B, out]: pre-activation, activation, and their gradients; Dice saved stats.
    Tensor z, a, dz, da, saved_mean, saved_rstd;
  };

  void Resize(int64_t batch);
  // The layer's output (its activation, or its last gate's) and that output's gradient buffer.
  static Tensor& Output(Layer& layer) {
    return layer.gates.empty() ? layer.a : layer.gates.back().y;
  }
  static Tensor& OutputGrad(Layer& layer) {
    return layer.gates.empty() ? layer.da : layer.gates.back().dy;
  }
  void GatesForward(Layer* layer);
  void GatesBackward(Layer* layer);
  void Activate(Layer* layer, bool training);
  void ActivationBackward(Layer* layer);

  int64_t input_dim_;
  config::Activation activation_;
  DiceOptions dice_;
  std::vector<Layer> layers_;  // hidden layers
  std::vector<MlpGate> gates_;
  std::vector<Tensor> gate_in_, d_gate_in_;  // per gate: its input columns [B, cols]
  Layer out_;                                // [H_L, 1], no activation
  int64_t batch_ = -1;
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_MLP_H_
