#include "worker/models/mlp.h"

#include <glog/logging.h>

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
                   float dice_epsilon, float dice_momentum, ParamArena* arena)
    : input_dim_(input_dim), activation_(activation) {
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

void MlpTower::Forward(const Tensor& x, bool training, Tensor* logits) {
  CHECK_EQ(x.ndim(), 2);
  CHECK_EQ(x.dim(1), input_dim_);
  const int64_t batch = x.dim(0);
  Resize(batch);
  const Tensor* in = &x;
  for (Layer& layer : layers_) {
    LinearForward(*in, layer.w, layer.b, &layer.z);
    Activate(&layer, training);
    in = &layer.a;
  }
  Tensor out = logits->Reshaped({batch, 1});
  LinearForward(*in, out_.w, out_.b, &out);
}

void MlpTower::Backward(const Tensor& x, const Tensor& dlogits, Tensor* dx) {
  const int64_t batch = x.dim(0);
  CHECK_EQ(batch, batch_) << "Backward without a matching Forward";
  out_.dz.CopyFrom(dlogits);
  const Tensor* dy = &out_.dz;
  Layer* upper = &out_;
  for (size_t l = layers_.size(); l-- > 0;) {
    Layer& layer = layers_[l];
    layer.da.SetZero();
    LinearBackward(layer.a, upper->w, *dy, &layer.da, &upper->dw, &upper->db);
    ActivationBackward(&layer);
    dy = &layer.dz;
    upper = &layer;
  }
  LinearBackward(x, upper->w, *dy, dx, &upper->dw, &upper->db);
}

}  // namespace attnps::models
