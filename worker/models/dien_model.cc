// DIEN (Zhou et al., AAAI'19), paper form. Over the padded history E [B, T, D]:
//   S = GRU(E)                      interest extractor, hidden size D
//   a = softmax_valid(unit(q', S))  the DIN activation unit of the target over the states, with
//                                   q' = PReLU(q Wp + bp) (query_projection, the official code's)
//                                   or q
//   F = AUGRU(S, a) | GRU(a * S) (AIGRU) | AGRU(S, a) | the authors' code's AUGRU,
//   final state f = F[:, T-1]
//   logit = MLP([user, sum_t E_t, q, q * sum_t E_t, f])            or, with
//   logit = MLP([user, sum_t E_t, q, q * sum_t E_t, f, S_T, q * S_T])  mlp_reads_extractor_state
// and in training L = BCE(logit) + alpha * L_aux, with
//   L_aux = mean over pairs (b, t < len_b - 1) of softplus(-S_t . E_{t+1}) + softplus(S_t .
//   N_{t+1})
// where N is the negative item drawn for each position (CtrInputs::negatives).
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "ops/activation.h"
#include "ops/din_attention.h"
#include "ops/fast_math.h"
#include "ops/jagged.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/rnn.h"
#include "worker/config/job_config.h"
#include "worker/models/ctr_head.h"
#include "worker/models/models_internal.h"
#include "worker/models/param_arena.h"
#include "worker/models/target_scorer.h"

namespace attnps::models {
namespace {

float Softplus(float x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

constexpr float kPreluInitAlpha = 0.25f;  // torch.nn.PReLU

// The DIN unit of model.dien (softmax over valid positions), or model.blocks.scorer.
ScorerSpec DienScorer(const config::ModelConfig& config) {
  ScorerSpec spec;
  spec.din_hidden = config::AttentionHidden(config.dien());
  spec.din_options =
      DinUnitOptions(config.dien().attention_activation(), AttentionNormalization::kSoftmax);
  return ScorerOf(config, spec);
}

class DienCtrModel final : public CtrModel {
 public:
  DienCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed)
      : dims_(dims),
        d_(dims.item_dim + dims.cate_dim),
        evolution_(config.dien().evolution()),
        alpha_(config.dien().aux_loss_weight()),
        project_query_(config.dien().query_projection()),
        reads_state_(config.dien().mlp_reads_extractor_state()) {
    DeclareGru(&extractor_, &extractor_grad_);
    scorer_ = std::make_unique<TargetScorer>(DienScorer(config), d_, &arena_);
    if (project_query_) DeclareQueryProjection();
    DeclareGru(&evolver_, &evolver_grad_);
    head_ = std::make_unique<CtrHead>(config, dims, /*extra_dim=*/ExtraDim(), &arena_);
    arena_.Allocate(seed);
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }
  bool wants_negatives() const override { return alpha_ > 0; }

  void Forward(const CtrInputs& in, bool training, Tensor* logits) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    const JaggedOffsets offsets(in.history_offsets);
    Resize(s.b, std::max<int64_t>(1, offsets.MaxLength()));
    JaggedToPadded(in.history, offsets, &emb_, &mask_);
    GruForward(emb_, mask_, Tensor(), extractor_, &extractor_ws_, &states_);
    scorer_->Forward(Query(in), states_, mask_, &weights_, &att_pooled_);
    EvolveForward();
    AssembleExtra(in.target);
    SegmentSumPoolForward(in.history, offsets, &pooled_);
    head_->Forward(in.user, pooled_, in.target, final_, training, logits);
    trained_batch_ = training ? s.b : -1;
  }

  double TrainStep(const CtrInputs& in, const Tensor& labels, float loss_scale, Tensor* logits,
                   CtrInputGrads* dinputs) override {
    Forward(in, /*training=*/true, logits);
    double loss = BceWithLogitsForward(*logits, labels, Tensor());
    if (alpha_ > 0) {
      const int64_t pairs = AuxForward(in);
      if (pairs > 0) {
        loss += alpha_ * aux_loss_;
        aux_scale_ = loss_scale * alpha_ / static_cast<float>(pairs);
      }
    }
    if (!std::isfinite(loss)) {
      aux_scale_ = 0.0f;
      return loss;
    }
    dlogits_.EnsureShape(logits->shape());
    dlogits_.SetZero();
    BceWithLogitsBackward(*logits, labels, Tensor(), loss_scale, &dlogits_);
    Backward(in, dlogits_, dinputs);
    aux_scale_ = 0.0f;
    return loss;
  }

  void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    CHECK_EQ(trained_batch_, s.b) << "Backward needs Forward(training = true) on the same batch";
    const JaggedOffsets offsets(in.history_offsets);
    d_pooled_.SetZero();
    d_final_.SetZero();
    Tensor* dq = dinputs->target.empty() ? nullptr : &dinputs->target;
    head_->Backward(dlogits, &dinputs->user, &d_pooled_, dq, &d_final_);
    d_evolved_.SetZero();
    d_states_.SetZero();
    d_weights_.SetZero();
    ScatterExtraGrad(in.target, dq);
    EvolveBackward();
    d_emb_.SetZero();
    d_neg_.SetZero();
    if (aux_scale_ != 0.0f) AuxBackward(offsets);
    d_att_pooled_.SetZero();
    if (project_query_) {
      d_query_.SetZero();
      scorer_->Backward(query_, states_, mask_, weights_, d_weights_, d_att_pooled_, &d_query_,
                        &d_states_);
      d_query_pre_.SetZero();
      PreluBackward(query_pre_, qp_alpha_, d_query_, &d_query_pre_, &qp_grad_alpha_);
      LinearBackward(in.target, qp_w_, d_query_pre_, dq, &qp_grad_w_, &qp_grad_b_);
    } else {
      scorer_->Backward(in.target, states_, mask_, weights_, d_weights_, d_att_pooled_, dq,
                        &d_states_);
    }
    GruBackward(emb_, mask_, Tensor(), extractor_, d_states_, &extractor_ws_, &d_emb_, nullptr,
                &extractor_grad_);
    if (!dinputs->history.empty()) {
      PaddedToJaggedAdd(d_emb_, offsets, &dinputs->history);
      SegmentSumPoolBackward(offsets, d_pooled_, &dinputs->history);
    }
    if (aux_scale_ != 0.0f && !dinputs->negatives.empty()) {
      PaddedToJaggedAdd(d_neg_, offsets, &dinputs->negatives);
    }
  }

 private:
  int64_t ExtraDim() const { return reads_state_ ? 3 * d_ : d_; }

  // final_ [B, E] = [F_T] or [F_T, S_T, q * S_T], the rows' last (frozen) states.
  void AssembleExtra(const Tensor& q) {
    const int64_t b = mask_.dim(0), t = mask_.dim(1), e = ExtraDim();
    for (int64_t r = 0; r < b; ++r) {
      const int64_t last = (r * t + t - 1) * d_;
      float* out = final_.data() + r * e;
      std::copy_n(evolved_.data() + last, d_, out);
      if (!reads_state_) continue;
      const float* st = states_.data() + last;
      const float* qr = q.data() + r * d_;
      for (int64_t j = 0; j < d_; ++j) {
        out[d_ + j] = st[j];
        out[2 * d_ + j] = qr[j] * st[j];
      }
    }
  }

  // d_final_ into d_evolved_ and d_states_ at the last position (+=), and into dq (if present).
  void ScatterExtraGrad(const Tensor& q, Tensor* dq) {
    const int64_t b = mask_.dim(0), t = mask_.dim(1), e = ExtraDim();
    for (int64_t r = 0; r < b; ++r) {
      const int64_t last = (r * t + t - 1) * d_;
      const float* g = d_final_.data() + r * e;
      std::copy_n(g, d_, d_evolved_.data() + last);
      if (!reads_state_) continue;
      const float* st = states_.data() + last;
      const float* qr = q.data() + r * d_;
      float* ds = d_states_.data() + last;
      for (int64_t j = 0; j < d_; ++j) {
        ds[j] += g[d_ + j] + g[2 * d_ + j] * qr[j];
        if (dq) (*dq)[r * d_ + j] += g[2 * d_ + j] * st[j];
      }
    }
  }

  // W_x [D, 3D], W_h [D, 3D], b [3D]: torch's GRU init, U(-1/sqrt(H), 1/sqrt(H)).
  void DeclareGru(GruParams* p, GruParams* g) {
    const ParamInit init = ParamInit::LinearLike(d_);
    arena_.AddParam({d_, 3 * d_}, init, &p->wx, &g->wx);
    arena_.AddParam({d_, 3 * d_}, init, &p->wh, &g->wh);
    arena_.AddParam({3 * d_}, init, &p->b, &g->b);
  }

  // Wp [D, D], bp [D] (torch's Linear init), the PReLU's alpha [D] (torch's 0.25).
  void DeclareQueryProjection() {
    arena_.AddParam({d_, d_}, ParamInit::LinearLike(d_), &qp_w_, &qp_grad_w_);
    arena_.AddParam({d_}, ParamInit::LinearLike(d_), &qp_b_, &qp_grad_b_);
    arena_.AddParam({d_}, ParamInit::Constant(kPreluInitAlpha), &qp_alpha_, &qp_grad_alpha_);
  }

  // The unit's query: q' = PReLU(q Wp + bp) into query_, or the target itself.
  const Tensor& Query(const CtrInputs& in) {
    if (!project_query_) return in.target;
    LinearForward(in.target, qp_w_, qp_b_, &query_pre_);
    PreluForward(query_pre_, qp_alpha_, &query_);
    return query_;
  }

  void EvolveForward() {
    switch (evolution_) {
      case config::DienModel::AIGRU:
        ScaleByWeights(states_, &scaled_);
        GruForward(scaled_, mask_, Tensor(), evolver_, &evolver_ws_, &evolved_);
        break;
      case config::DienModel::AGRU:
        AgruForward(states_, mask_, weights_, Tensor(), evolver_, &evolver_ws_, &evolved_);
        break;
      case config::DienModel::AUGRU_OFFICIAL:
        AugruOfficialForward(states_, mask_, weights_, Tensor(), evolver_, &evolver_ws_, &evolved_);
        break;
      default:
        AugruForward(states_, mask_, weights_, Tensor(), evolver_, &evolver_ws_, &evolved_);
    }
  }

  // From d_evolved_: the evolver's weight gradients, d_states_ and d_weights_ (+=).
  void EvolveBackward() {
    switch (evolution_) {
      case config::DienModel::AIGRU: {
        d_scaled_.SetZero();
        GruBackward(scaled_, mask_, Tensor(), evolver_, d_evolved_, &evolver_ws_, &d_scaled_,
                    nullptr, &evolver_grad_);
        const int64_t rows = weights_.numel();
        for (int64_t i = 0; i < rows; ++i) {
          const float a = weights_[i];
          const float* g = d_scaled_.data() + i * d_;
          const float* h = states_.data() + i * d_;
          float* dh = d_states_.data() + i * d_;
          float da = 0.0f;
          for (int64_t j = 0; j < d_; ++j) {
            dh[j] += a * g[j];
            da += g[j] * h[j];
          }
          d_weights_[i] += da;
        }
        break;
      }
      case config::DienModel::AGRU:
        AgruBackward(states_, mask_, weights_, Tensor(), evolver_, d_evolved_, &evolver_ws_,
                     &d_states_, nullptr, &d_weights_, &evolver_grad_);
        break;
      case config::DienModel::AUGRU_OFFICIAL:
        AugruOfficialBackward(states_, mask_, weights_, Tensor(), evolver_, d_evolved_,
                              &evolver_ws_, &d_states_, nullptr, &d_weights_, &evolver_grad_);
        break;
      default:
        AugruBackward(states_, mask_, weights_, Tensor(), evolver_, d_evolved_, &evolver_ws_,
                      &d_states_, nullptr, &d_weights_, &evolver_grad_);
    }
  }

  // out [B, T, D] = weights_ [B, T] (broadcast over D) * x.
  void ScaleByWeights(const Tensor& x, Tensor* out) const {
    for (int64_t i = 0; i < weights_.numel(); ++i) {
      for (int64_t j = 0; j < d_; ++j) (*out)[i * d_ + j] = weights_[i] * x[i * d_ + j];
    }
  }

  // aux_loss_ = the mean over the batch's pairs; keeps the pair logits; returns the pair count.
  int64_t AuxForward(const CtrInputs& in) {
    if (in.history.numel() == 0) return 0;  // no positions: the batcher drew no negatives
    CHECK(in.negatives.shape() == in.history.shape())
        << "DIEN's auxiliary loss needs negatives [N, D] like the history, got "
        << in.negatives.ShapeString();
    const JaggedOffsets offsets(in.history_offsets);
    JaggedToPadded(in.negatives, offsets, &neg_, &mask_);
    const int64_t b = mask_.dim(0), t = mask_.dim(1);
    double sum = 0.0;
    int64_t pairs = 0;
    for (int64_t r = 0; r < b; ++r) {
      const int64_t len = offsets.length(r);
      for (int64_t p = 0; p + 1 < len; ++p) {
        const float* h = states_.data() + (r * t + p) * d_;
        const float pos = Dot(h, emb_.data() + (r * t + p + 1) * d_, d_);
        const float neg = Dot(h, neg_.data() + (r * t + p + 1) * d_, d_);
        pos_logit_[r * t + p] = pos;
        neg_logit_[r * t + p] = neg;
        sum += Softplus(-pos) + Softplus(neg);
        ++pairs;
      }
    }
    aux_loss_ = pairs > 0 ? sum / static_cast<double>(pairs) : 0.0;
    return pairs;
  }

  // The auxiliary loss's gradients (scaled by aux_scale_) into d_states_, d_emb_ and d_neg_.
  void AuxBackward(const JaggedOffsets& offsets) {
    const int64_t b = mask_.dim(0), t = mask_.dim(1);
    for (int64_t r = 0; r < b; ++r) {
      for (int64_t p = 0; p + 1 < offsets.length(r); ++p) {
        const float gp = aux_scale_ * (Sigmoid(pos_logit_[r * t + p]) - 1.0f);
        const float gn = aux_scale_ * Sigmoid(neg_logit_[r * t + p]);
        const int64_t at = (r * t + p) * d_, next = (r * t + p + 1) * d_;
        const float* h = states_.data() + at;
        for (int64_t j = 0; j < d_; ++j) {
          d_states_[at + j] += gp * emb_[next + j] + gn * neg_[next + j];
          d_emb_[next + j] += gp * h[j];
          d_neg_[next + j] += gn * h[j];
        }
      }
    }
  }

  // Per-batch tensors: reallocated when B or the batch's longest history T changes.
  void Resize(int64_t b, int64_t t) {
    if (b == ws_b_ && t == ws_t_) return;
    ws_b_ = b;
    ws_t_ = t;
    extractor_ws_ = GruWorkspace::Allocate(b, t, d_, d_);
    evolver_ws_ = GruWorkspace::Allocate(b, t, d_, d_);
    for (Tensor* x : {&emb_, &d_emb_, &neg_, &d_neg_, &states_, &d_states_, &evolved_, &d_evolved_,
                      &scaled_, &d_scaled_}) {
      *x = Tensor::Empty({b, t, d_});
    }
    for (Tensor* x : {&mask_, &weights_, &d_weights_, &pos_logit_, &neg_logit_}) {
      *x = Tensor::Empty({b, t});
    }
    for (Tensor* x : {&att_pooled_, &d_att_pooled_, &pooled_, &d_pooled_, &query_pre_, &query_,
                      &d_query_pre_, &d_query_}) {
      *x = Tensor::Empty({b, d_});
    }
    final_ = Tensor::Empty({b, ExtraDim()});
    d_final_ = Tensor::Empty({b, ExtraDim()});
  }

  const CtrModelDims dims_;
  const int64_t d_;
  const config::DienModel::Evolution evolution_;
  const float alpha_;
  const bool project_query_;
  const bool reads_state_;  // model.dien.mlp_reads_extractor_state

  ParamArena arena_;
  GruParams extractor_, extractor_grad_, evolver_, evolver_grad_;  // views into the arena
  std::unique_ptr<TargetScorer> scorer_;  // the target's attention over the states
  Tensor qp_w_, qp_b_, qp_alpha_, qp_grad_w_, qp_grad_b_, qp_grad_alpha_;  // query projection
  std::unique_ptr<CtrHead> head_;

  // Per-batch workspace.
  int64_t ws_b_ = -1, ws_t_ = -1;
  int64_t trained_batch_ = -1;  // B of the last training forward, -1 after inference
  GruWorkspace extractor_ws_, evolver_ws_;
  Tensor emb_, d_emb_, neg_, d_neg_, mask_;           // padded history and negatives [B, T, D]
  Tensor states_, d_states_, evolved_, d_evolved_;    // [B, T, D]
  Tensor scaled_, d_scaled_;                          // AIGRU's input a * S [B, T, D]
  Tensor weights_, d_weights_;                        // attention [B, T]
  Tensor pos_logit_, neg_logit_;                      // auxiliary pairs [B, T]
  Tensor query_pre_, query_, d_query_pre_, d_query_;  // q Wp + bp and q' [B, D]
  Tensor att_pooled_, d_att_pooled_;  // the unit's pooled output: unused, its gradient 0
  Tensor pooled_, d_pooled_;          // [B, D]
  Tensor final_, d_final_;            // the head's extra input [B, E]
  Tensor dlogits_;
  double aux_loss_ = 0.0;
  float aux_scale_ = 0.0f;  // d(scaled loss) / d(sum of pair losses), set for one TrainStep
};

constexpr double kMaxAuxLossWeight = 1000;  // model.dien.aux_loss_weight

void CheckDien(const config::ModelConfig& config, const CtrModelDims& dims, config::Problems* p,
               CtrModelSizes* sizes) {
  const config::DienModel& dien = config.dien();
  const size_t before = p->size();
  CheckDinUnit("model.dien", dien, p);
  CheckScorer(config, dims, /*per_position_weights=*/true, "DIEN's evolution GRU", p);
  const std::vector<int> hidden = config::AttentionHidden(dien);
  if (!config::DienModel::Evolution_IsValid(dien.evolution())) {
    p->Add("model.dien.evolution", "unsupported value " + std::to_string(dien.evolution()));
  }
  p->NonNegativeAtMost("model.dien.aux_loss_weight", dien.aux_loss_weight(), kMaxAuxLossWeight);
  const int64_t d = dims.item_dim > 0 && dims.cate_dim > 0 ? dims.item_dim + dims.cate_dim : 0;
  if (p->size() != before || d == 0) return;
  sizes->weights.push_back({"model.dien (interest extractor GRU)", d, 3 * d});
  sizes->weights.push_back({"model.dien (interest evolution GRU)", d, 3 * d});
  if (dien.query_projection()) sizes->weights.push_back({"model.dien.query_projection", d, d});
  sizes->weights.push_back({"model.dien.attention_hidden[0]", 4 * d, hidden[0]});
  sizes->weights.push_back({"model.dien.attention_hidden[1]", hidden[0], hidden[1]});
  // [user, pooled, q, pooled * q, final state (, S_T, q * S_T)]
  sizes->mlp_input = dims.user_dim + (dien.mlp_reads_extractor_state() ? 6 : 4) * d;
  sizes->per_position = std::max<int64_t>(3 * d, std::max(hidden[0], hidden[1]));
}

}  // namespace

CtrModelKind DienModelKind() {
  auto make = [](const config::ModelConfig& config, const CtrModelDims& dims,
                 uint64_t seed) -> std::unique_ptr<CtrModel> {
    return std::make_unique<DienCtrModel>(config, dims, seed);
  };
  return {"dien", CheckDien, make};
}

}  // namespace attnps::models
