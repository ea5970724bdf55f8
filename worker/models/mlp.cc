#include "worker/models/mlp.h"

#include <glog/logging.h>

#include <algorithm>

#include "ops/interaction.h"
#include "ops/linear.h"

namespace attnps::models {
namespace {

constexpr float kPreluInitAlpha = 0.25f;  // torch.nn.PReLU
constexpr float kDiceInitAlpha = 0.0f;    // din_torch.py's Dice

void DeclareLinear(int64_t in, int64_t out, ParamArena* arena, Tensor* w, Tensor* b, Tensor* dw,
                   Tensor* db) {
  arena->AddParam({in, out}, ParamInit::LinearLike(in), w, dw);
  arena->AddParam({out}, ParamInit::LinearLike(in), b, db);
}

}  // namespace

MlpTower::MlpTower(int64_t input_dim, const std::vector<int>& hidden, config::Activation activation,
                   float dice_epsilon, float dice_momentum, ParamArena* arena,
                   const std::vector<MlpGate>& gates)
    : input_dim_(input_dim), activation_(activation), gates_(gates) {
  CHECK_GT(input_dim, 0);
  dice_.eps = dice_epsilon;
  dice_.momentum = 1.0f - dice_momentum;  // ops use torch's convention
  // Reserve first: the arena holds pointers into the layers.
  layers_.resize(hidden.size());
  int64_t in = input_dim;
  for (size_t l = 0; l < hidden.size(); ++l) {
    Layer& layer = layers_[l];
    layer.in = in;
    layer.out = hidden[l];
    CHECK_GT(layer.out, 0);
    DeclareLinear(layer.in, layer.out, arena, &layer.w, &layer.b, &layer.dw, &layer.db);
    if (activation == config::PRELU) {
      arena->AddParam({layer.out}, ParamInit::Constant(kPreluInitAlpha), &layer.alpha,
                      &layer.dalpha);
    } else if (activation == config::DICE) {
      arena->AddParam({layer.out}, ParamInit::Constant(kDiceInitAlpha), &layer.alpha,
                      &layer.dalpha);
      arena->AddBuffer({layer.out}, 0.0f, &layer.running_mean);
      arena->AddBuffer({layer.out}, 1.0f, &layer.running_var);
      layer.saved_mean = Tensor::Empty({layer.out});
      layer.saved_rstd = Tensor::Empty({layer.out});
    }
    layer.gates.resize(gates.size());
    for (size_t k = 0; k < gates.size(); ++k) {
      const MlpGate& spec = gates[k];
      CHECK(spec.cols > 0 && spec.hidden > 0 && spec.col_begin >= 0 &&
            spec.col_begin + spec.cols <= input_dim);
      GateState& g = layer.gates[k];
      DeclareLinear(spec.cols, spec.hidden, arena, &g.w1, &g.b1, &g.dw1, &g.db1);
      arena->AddParam({spec.hidden, layer.out}, ParamInit::LinearLike(spec.hidden), &g.w2, &g.dw2);
      arena->AddParam({layer.out}, ParamInit::Constant(0.0f), &g.b2, &g.db2);
    }
    in = layer.out;
  }
  out_.in = in;
  out_.out = 1;
  DeclareLinear(out_.in, 1, arena, &out_.w, &out_.b, &out_.dw, &out_.db);
}

void MlpTower::Resize(int64_t batch) {
  if (batch == batch_) return;
  batch_ = batch;
  for (Layer& layer : layers_) {
    layer.z = Tensor::Empty({batch, layer.out});
    layer.a = Tensor::Empty({batch, layer.out});
    layer.dz = Tensor::Empty({batch, layer.out});
    layer.da = Tensor::Empty({batch, layer.out});
    for (size_t k = 0; k < layer.gates.size(); ++k) {
      GateState& g = layer.gates[k];
      for (Tensor* t : {&g.pre, &g.hidden, &g.d_hidden, &g.d_pre}) {
        *t = Tensor::Empty({batch, gates_[k].hidden});
      }
      for (Tensor* t : {&g.g, &g.y, &g.dg, &g.dy}) *t = Tensor::Empty({batch, layer.out});
    }
  }
  gate_in_.resize(gates_.size());
  d_gate_in_.resize(gates_.size());
  for (size_t k = 0; k < gates_.size(); ++k) {
    gate_in_[k] = Tensor::Empty({batch, gates_[k].cols});
    d_gate_in_[k] = Tensor::Empty({batch, gates_[k].cols});
  }
  out_.dz = Tensor::Empty({batch, 1});
}

void MlpTower::Activate(Layer* layer, bool training) {
  switch (activation_) {
    case config::DICE:
      DiceForward(layer->z, layer->alpha, training ? Mode::kTraining : Mode::kInference, dice_,
                  &layer->running_mean, &layer->running_var, &layer->a, &layer->saved_mean,
                  &layer->saved_rstd);
      break;
    case config::PRELU:
      PreluForward(layer->z, layer->alpha, &layer->a);
      break;
    case config::RELU:
      ReluForward(layer->z, &layer->a);
      break;
    case config::SIGMOID:
      SigmoidForward(layer->z, &layer->a);
      break;
    default:
      LOG(FATAL) << "unsupported MLP activation " << activation_;
  }
}

void MlpTower::ActivationBackward(Layer* layer) {
  layer->dz.SetZero();
  switch (activation_) {
    case config::DICE:
      DiceBackward(layer->z, layer->alpha, Mode::kTraining, layer->saved_mean, layer->saved_rstd,
                   layer->da, &layer->dz, &layer->dalpha);
      break;
    case config::PRELU:
      PreluBackward(layer->z, layer->alpha, layer->da, &layer->dz, &layer->dalpha);
      break;
    case config::RELU:
      ReluBackward(layer->a, layer->da, &layer->dz);
      break;
    case config::SIGMOID:
      SigmoidBackward(layer->a, layer->da, &layer->dz);
      break;
    default:
      LOG(FATAL) << "unsupported MLP activation " << activation_;
  }
}

void MlpTower::GatesForward(Layer* layer) {
  const Tensor* h = &layer->a;
  for (size_t k = 0; k < layer->gates.size(); ++k) {
    GateState& g = layer->gates[k];
    LinearForward(gate_in_[k], g.w1, g.b1, &g.pre);
    ReluForward(g.pre, &g.hidden);
    LinearForward(g.hidden, g.w2, g.b2, &g.g);
    ScaledSigmoidGateForward(*h, g.g, gates_[k].scale, &g.y);
    h = &g.y;
  }
}

// From the last gate's dy down to layer->da (assigned), and += into d_gate_in_.
void MlpTower::GatesBackward(Layer* layer) {
  for (size_t k = layer->gates.size(); k-- > 0;) {
    GateState& g = layer->gates[k];
    const Tensor& h = k == 0 ? layer->a : layer->gates[k - 1].y;
    Tensor& dh = k == 0 ? layer->da : layer->gates[k - 1].dy;
    dh.SetZero();
    g.dg.SetZero();
    ScaledSigmoidGateBackward(h, g.g, gates_[k].scale, g.dy, &dh, &g.dg);
    g.d_hidden.SetZero();
    LinearBackward(g.hidden, g.w2, g.dg, &g.d_hidden, &g.dw2, &g.db2);
    g.d_pre.SetZero();
    ReluBackward(g.hidden, g.d_hidden, &g.d_pre);
    LinearBackward(gate_in_[k], g.w1, g.d_pre, &d_gate_in_[k], &g.dw1, &g.db1);
  }
}

void MlpTower::Forward(const Tensor& x, bool training, Tensor* logits) {
  CHECK_EQ(x.ndim(), 2);
  CHECK_EQ(x.dim(1), input_dim_);
  const int64_t batch = x.dim(0);
  Resize(batch);
  for (size_t k = 0; k < gates_.size(); ++k) {  // the gates' input columns
    for (int64_t r = 0; r < batch; ++r) {
      std::copy_n(x.data() + r * input_dim_ + gates_[k].col_begin, gates_[k].cols,
                  gate_in_[k].data() + r * gates_[k].cols);
    }
  }
  const Tensor* in = &x;
  for (Layer& layer : layers_) {
    LinearForward(*in, layer.w, layer.b, &layer.z);
    Activate(&layer, training);
    GatesForward(&layer);
    in = &Output(layer);
  }
  Tensor out = logits->Reshaped({batch, 1});
  LinearForward(*in, out_.w, out_.b, &out);
}

void MlpTower::Backward(const Tensor& x, const Tensor& dlogits, Tensor* dx) {
  const int64_t batch = x.dim(0);
  CHECK_EQ(batch, batch_) << "Backward without a matching Forward";
  for (Tensor& t : d_gate_in_) t.SetZero();
  out_.dz.CopyFrom(dlogits);
  const Tensor* dy = &out_.dz;
  Layer* upper = &out_;
  for (size_t l = layers_.size(); l-- > 0;) {
    Layer& layer = layers_[l];
    Tensor& d_out = OutputGrad(layer);
    d_out.SetZero();
    LinearBackward(Output(layer), upper->w, *dy, &d_out, &upper->dw, &upper->db);
    GatesBackward(&layer);
    ActivationBackward(&layer);
    dy = &layer.dz;
    upper = &layer;
  }
  LinearBackward(x, upper->w, *dy, dx, &upper->dw, &upper->db);
  if (dx == nullptr) return;
  for (size_t k = 0; k < gates_.size(); ++k) {
    for (int64_t r = 0; r < batch; ++r) {
      const float* g = d_gate_in_[k].data() + r * gates_[k].cols;
      float* out = dx->data() + r * input_dim_ + gates_[k].col_begin;
      for (int64_t j = 0; j < gates_[k].cols; ++j) out[j] += g[j];
    }
  }
}

}  // namespace attnps::models
