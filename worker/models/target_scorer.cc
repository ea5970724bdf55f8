#include "worker/models/target_scorer.h"

#include <glog/logging.h>

#include <cmath>
#include <string>

#include "worker/models/models_internal.h"

namespace attnps::models {
namespace {

using Scorer = config::TargetScorerConfig;

constexpr int kMaxScorerHeads = 256;  // model.blocks.scorer.heads

}  // namespace

ScorerSpec ScorerOf(const config::ModelConfig& config, const ScorerSpec& kind_default) {
  if (!config.blocks().has_scorer()) return kind_default;
  const Scorer& s = config.blocks().scorer();
  ScorerSpec spec = kind_default;
  spec.kind = s.kind();
  spec.additive_hidden = s.hidden();
  spec.heads = s.heads();
  return spec;
}

void CheckScorer(const config::ModelConfig& config, const CtrModelDims& dims,
                 bool per_position_weights, const std::string& kind_name, config::Problems* p) {
  if (!config.blocks().has_scorer()) return;
  const Scorer& s = config.blocks().scorer();
  if (!Scorer::Kind_IsValid(s.kind())) {
    p->Add("model.blocks.scorer.kind", "unsupported value " + std::to_string(s.kind()));
    return;
  }
  if (s.kind() == Scorer::ADDITIVE) {
    p->NonNegativeAtMost("model.blocks.scorer.hidden", s.hidden(), config::kMaxLayerSize);
  }
  if (s.kind() == Scorer::MULTI_HEAD) {
    p->PositiveAtMost("model.blocks.scorer.heads", s.heads(), kMaxScorerHeads);
    CheckHeadsDivideItemDim("model.blocks.scorer.heads", s.heads(), dims, p);
    if (per_position_weights) {
      p->Add("model.blocks.scorer.kind",
             "MULTI_HEAD has one weight per head and position, but " + kind_name +
                 " needs one per position (DIN_UNIT, ADDITIVE or SCALED_DOT_PRODUCT)");
    }
  }
}

TargetScorer::TargetScorer(const ScorerSpec& spec, int64_t d, ParamArena* arena)
    : spec_(spec), d_(d) {
  switch (spec.kind) {
    case Scorer::DIN_UNIT:
      CHECK_EQ(spec.din_hidden.size(), 2u);
      DeclareDinUnit(d, spec.din_hidden[0], spec.din_hidden[1], arena, &din_, &din_grad_);
      break;
    case Scorer::ADDITIVE: {
      const int64_t a = spec.additive_hidden > 0 ? spec.additive_hidden : d;
      arena->AddParam({d, a}, ParamInit::LinearLike(d), &add_.wq, &add_grad_.wq);
      arena->AddParam({d, a}, ParamInit::LinearLike(d), &add_.wk, &add_grad_.wk);
      arena->AddParam({a}, ParamInit::Constant(0.0f), &add_.b, &add_grad_.b);
      arena->AddParam({a}, ParamInit::LinearLike(a), &add_.v, &add_grad_.v);
      break;
    }
    case Scorer::SCALED_DOT_PRODUCT:
      break;
    case Scorer::MULTI_HEAD:
      CHECK(spec.heads > 0 && d % spec.heads == 0);
      DeclareMultiHeadAttention(d, arena, &mha_, &mha_grad_);
      break;
    default:
      LOG(FATAL) << "unsupported scorer " << spec.kind;
  }
}

void TargetScorer::Resize(int64_t b, int64_t t) {
  if (b == ws_b_ && t == ws_t_) return;
  ws_b_ = b;
  ws_t_ = t;
  switch (spec_.kind) {
    case Scorer::DIN_UNIT:
      din_ws_ = DinAttentionWorkspace::Allocate(b, t, d_, spec_.din_hidden[0], spec_.din_hidden[1]);
      break;
    case Scorer::ADDITIVE:
      add_ws_ = AdditiveAttentionWorkspace::Allocate(b, t, add_.v.dim(0));
      break;
    case Scorer::SCALED_DOT_PRODUCT:
      d_scores_ = Tensor::Empty({b, t});
      break;
    default: {
      const int64_t head_dim = d_ / spec_.heads;
      mha_ws_ = MultiHeadAttentionWorkspace::Allocate(b, 1, t, spec_.heads, head_dim, head_dim);
    }
  }
}

void TargetScorer::Forward(const Tensor& q, const Tensor& keys, const Tensor& mask, Tensor* weights,
                           Tensor* pooled) {
  const int64_t b = keys.dim(0), t = keys.dim(1);
  Resize(b, t);
  switch (spec_.kind) {
    case Scorer::DIN_UNIT:
      DinAttentionForward(q, keys, mask, din_, spec_.din_options, &din_ws_, weights, pooled);
      break;
    case Scorer::ADDITIVE:
      AdditiveAttentionForward(q, keys, mask, add_, &add_ws_, weights, pooled);
      break;
    case Scorer::SCALED_DOT_PRODUCT: {
      Tensor p3 = weights->Reshaped({b, 1, t}), out3 = pooled->Reshaped({b, 1, d_});
      ScaledDotProductAttentionForward(q.Reshaped({b, 1, d_}), keys, keys, mask, false, &p3, &out3);
      break;
    }
    default: {
      MultiHeadAttentionOptions o;
      o.heads = spec_.heads;
      Tensor out3 = pooled->Reshaped({b, 1, d_});
      MultiHeadAttentionForward(q.Reshaped({b, 1, d_}), keys, mask, mha_, o, &mha_ws_, &out3);
    }
  }
}

void TargetScorer::Backward(const Tensor& q, const Tensor& keys, const Tensor& mask,
                            const Tensor& weights, const Tensor& d_weights, const Tensor& d_pooled,
                            Tensor* dq, Tensor* dkeys) {
  const int64_t b = keys.dim(0), t = keys.dim(1);
  CHECK(b == ws_b_ && t == ws_t_) << "Backward without a matching Forward";
  Tensor dq3 = dq ? dq->Reshaped({b, 1, d_}) : Tensor();
  switch (spec_.kind) {
    case Scorer::DIN_UNIT:
      DinAttentionBackward(q, keys, mask, din_, spec_.din_options, weights, d_weights, d_pooled,
                           &din_ws_, dq, dkeys, &din_grad_);
      break;
    case Scorer::ADDITIVE:
      AdditiveAttentionBackward(q, keys, mask, add_, weights, d_weights, d_pooled, &add_ws_, dq,
                                dkeys, &add_grad_);
      break;
    case Scorer::SCALED_DOT_PRODUCT:
      ScaledDotProductAttentionBackward(q.Reshaped({b, 1, d_}), keys, keys,
                                        weights.Reshaped({b, 1, t}), d_pooled.Reshaped({b, 1, d_}),
                                        dq ? &dq3 : nullptr, dkeys, dkeys);
      if (!d_weights.empty()) SdpWeightsBackward(q, keys, weights, d_weights, dq, dkeys);
      break;
    default: {
      MultiHeadAttentionOptions o;
      o.heads = spec_.heads;
      MultiHeadAttentionBackward(q.Reshaped({b, 1, d_}), keys, mask, mha_, o,
                                 d_pooled.Reshaped({b, 1, d_}), &mha_ws_, dq ? &dq3 : nullptr,
                                 dkeys, &mha_grad_);
    }
  }
}

// weights = softmax(s * q . k_t) with s = 1 / sqrt(D): d_scores = s * w (dw - sum(dw * w)), then
// dq += sum_t d_scores_t k_t and dk_t += d_scores_t q.
void TargetScorer::SdpWeightsBackward(const Tensor& q, const Tensor& keys, const Tensor& weights,
                                      const Tensor& d_weights, Tensor* dq, Tensor* dkeys) {
  const int64_t b = keys.dim(0), t = keys.dim(1);
  d_scores_.SetZero();
  MaskedSoftmaxBackward(weights, d_weights, 1.0f / std::sqrt(static_cast<float>(d_)), &d_scores_);
  for (int64_t r = 0; r < b; ++r) {
    const float* qr = q.data() + r * d_;
    for (int64_t i = 0; i < t; ++i) {
      const float g = d_scores_[r * t + i];
      if (g == 0.0f) continue;
      const int64_t at = (r * t + i) * d_;
      if (dq) {
        for (int64_t j = 0; j < d_; ++j) (*dq)[r * d_ + j] += g * keys[at + j];
      }
      if (dkeys) {
        for (int64_t j = 0; j < d_; ++j) (*dkeys)[at + j] += g * qr[j];
      }
    }
  }
}

}  // namespace attnps::models
