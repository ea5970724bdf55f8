// DIN (Zhou et al., KDD'18): the activation unit (or model.blocks.scorer's scorer) pools the
// history for the target, optionally beside multi-head target attention; the head (MLP on
// [user, pooled, q, pooled * q, mha] and the blocks). See docs/models.md for the exact definition.
#include <glog/logging.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "ops/attention.h"
#include "ops/din_attention.h"
#include "ops/jagged.h"
#include "worker/config/job_config.h"
#include "worker/models/ctr_head.h"
#include "worker/models/models_internal.h"
#include "worker/models/param_arena.h"
#include "worker/models/target_scorer.h"

namespace attnps::models {
namespace {

DinAttentionOptions AttentionOptions(const config::DinModel& din) {
  return DinUnitOptions(din.attention_activation(),
                        din.attention_normalization() == config::DinModel::SOFTMAX
                            ? AttentionNormalization::kSoftmax
                            : AttentionNormalization::kNone);
}

// True when model.blocks.scorer replaces the DIN unit (any scorer but DIN_UNIT).
bool OtherScorer(const config::ModelConfig& config) {
  return config.blocks().has_scorer() &&
         config.blocks().scorer().kind() != config::TargetScorerConfig::DIN_UNIT;
}

class DinCtrModel final : public CtrModel {
 public:
  DinCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed)
      : dims_(dims),
        d_(dims.item_dim + dims.cate_dim),
        options_(AttentionOptions(config.din())),
        score_scale_(options_.normalization == AttentionNormalization::kSoftmax
                         ? config.din().softmax_scale()
                         : 1.0f),
        heads_(config.din().multi_head_target_attention().heads()) {
    if (OtherScorer(config)) {
      scorer_ = std::make_unique<TargetScorer>(ScorerOf(config, ScorerSpec()), d_, &arena_);
    } else {
      DeclareAttention(config::AttentionHidden(config.din()));
    }
    if (heads_ > 0) DeclareMultiHeadAttention(d_, &arena_, &mha_, &mha_grad_);
    head_ = std::make_unique<CtrHead>(config, dims, heads_ > 0 ? d_ : 0, &arena_);
    arena_.Allocate(seed);
    if (!scorer_) BindScaledScores();
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }

  void Forward(const CtrInputs& in, bool training, Tensor* logits) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    const JaggedOffsets offsets(in.history_offsets);
    Resize(s, offsets);
    if (heads_ > 0 || scorer_) {  // multi-head attention and the scorers take the padded layout
      JaggedToPadded(in.history, offsets, &padded_history_, &padded_mask_);
    }
    if (scorer_) {
      padded_weights_.EnsureShape(padded_mask_.shape());
      scorer_->Forward(in.target, padded_history_, padded_mask_, &padded_weights_, &pooled_);
    } else {
      if (score_scale_ != 1.0f) {
        for (int64_t j = 0; j < att_.w3.numel(); ++j) att_op_.w3[j] = score_scale_ * att_.w3[j];
        att_op_.b3[0] = score_scale_ * att_.b3[0];
      }
      JaggedDinAttentionForward(in.target, in.history, offsets, att_op_, options_, &att_ws_,
                                &weights_, &pooled_);
    }
    if (heads_ > 0) {
      Tensor out = mha_out_.Reshaped({s.b, 1, d_});
      MultiHeadAttentionForward(in.target.Reshaped({s.b, 1, d_}), padded_history_, padded_mask_,
                                mha_, MhaOptions(), &mha_ws_, &out);
    }
    head_->Forward(in.user, pooled_, in.target, mha_out_, training, logits);
    trained_batch_ = training ? s.b : -1;
  }

  void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    CHECK_EQ(trained_batch_, s.b) << "Backward needs Forward(training = true) on the same batch";
    const JaggedOffsets offsets(in.history_offsets);
    Tensor* dq = dinputs->target.empty() ? nullptr : &dinputs->target;
    Tensor* dk = dinputs->history.empty() ? nullptr : &dinputs->history;
    if (heads_ > 0) d_mha_out_.SetZero();
    d_pooled_.SetZero();
    head_->Backward(dlogits, &dinputs->user, &d_pooled_, dq, &d_mha_out_);
    if ((heads_ > 0 || scorer_) && dk) d_padded_history_.SetZero();
    Tensor* d_padded = dk ? &d_padded_history_ : nullptr;
    if (heads_ > 0) {
      Tensor dq3 = dq ? dq->Reshaped({s.b, 1, d_}) : Tensor();
      MultiHeadAttentionBackward(in.target.Reshaped({s.b, 1, d_}), padded_history_, padded_mask_,
                                 mha_, MhaOptions(), d_mha_out_.Reshaped({s.b, 1, d_}), &mha_ws_,
                                 dq ? &dq3 : nullptr, d_padded, &mha_grad_);
    }
    if (scorer_) {
      scorer_->Backward(in.target, padded_history_, padded_mask_, padded_weights_, Tensor(),
                        d_pooled_, dq, d_padded);
    }
    if ((heads_ > 0 || scorer_) && dk) PaddedToJaggedAdd(d_padded_history_, offsets, dk);
    if (scorer_) return;
    if (score_scale_ != 1.0f) {
      att_op_grad_.w3.SetZero();
      att_op_grad_.b3.SetZero();
    }
    JaggedDinAttentionBackward(in.target, in.history, offsets, att_op_, options_, weights_,
                               Tensor(), d_pooled_, &att_ws_, dq, dk, &att_op_grad_);
    if (score_scale_ != 1.0f) {  // scores = scale * (a2 w3 + b3)
      for (int64_t j = 0; j < att_grad_.w3.numel(); ++j)
        att_grad_.w3[j] += score_scale_ * att_op_grad_.w3[j];
      att_grad_.b3[0] += score_scale_ * att_op_grad_.b3[0];
    }
  }

 private:
  void DeclareAttention(const std::vector<int>& hidden) {
    CHECK_EQ(hidden.size(), 2u);
    h1_ = hidden[0];
    h2_ = hidden[1];
    DeclareDinUnit(d_, h1_, h2_, &arena_, &att_, &att_grad_);
  }

  // The op's view of the unit: the arena's weights, except that with a softmax scale s != 1
  // w3 and b3 are scaled copies (softmax(s * score) = softmax of the scaled output layer) and
  // their gradients land in scratch tensors, scaled back into grads() after the backward.
  void BindScaledScores() {
    att_op_ = att_;
    att_op_grad_ = att_grad_;
    if (score_scale_ == 1.0f) return;
    att_op_.w3 = Tensor::Empty({h2_, 1});
    att_op_.b3 = Tensor::Empty({1});
    att_op_grad_.w3 = Tensor::Empty({h2_, 1});
    att_op_grad_.b3 = Tensor::Empty({1});
  }

  MultiHeadAttentionOptions MhaOptions() const {
    MultiHeadAttentionOptions o;
    o.heads = heads_;
    return o;
  }

  // Per-batch workspaces: the [N]-sized ones keep their buffers while they fit; the [B]-sized
  // ones are reallocated when B changes (and the padded copy for multi-head attention when the
  // longest history T does).
  void Resize(const BatchSizes& s, const JaggedOffsets& offsets) {
    weights_.EnsureCapacity({s.n});
    const int64_t t = std::max<int64_t>(1, offsets.MaxLength());
    if ((heads_ > 0 || scorer_) && (s.b != ws_b_ || t != ws_t_)) {
      if (heads_ > 0) {
        const int64_t head_dim = d_ / heads_;
        mha_ws_ = MultiHeadAttentionWorkspace::Allocate(s.b, 1, t, heads_, head_dim, head_dim);
      }
      padded_history_ = Tensor::Empty({s.b, t, d_});
      d_padded_history_ = Tensor::Empty({s.b, t, d_});
      padded_mask_ = Tensor::Empty({s.b, t});
      ws_t_ = t;
    }
    if (s.b == ws_b_) return;
    ws_b_ = s.b;
    pooled_ = Tensor::Empty({s.b, d_});
    d_pooled_ = Tensor::Empty({s.b, d_});
    if (heads_ > 0) {
      mha_out_ = Tensor::Empty({s.b, d_});
      d_mha_out_ = Tensor::Empty({s.b, d_});
    }
  }

  const CtrModelDims dims_;
  const int64_t d_;
  const DinAttentionOptions options_;
  const float score_scale_;  // softmax_scale under SOFTMAX, else 1
  const int64_t heads_;      // 0: no multi-head target attention
  int64_t h1_ = 0, h2_ = 0;

  ParamArena arena_;
  std::unique_ptr<TargetScorer> scorer_;     // model.blocks.scorer other than DIN_UNIT, or null
  DinAttentionParams att_, att_grad_;        // views into the arena (without scorer_)
  DinAttentionParams att_op_, att_op_grad_;  // what the op sees (see BindScaledScores)
  MultiHeadAttentionParams mha_, mha_grad_;
  std::unique_ptr<CtrHead> head_;

  // Per-batch workspace.
  int64_t ws_b_ = -1, ws_t_ = -1;
  int64_t trained_batch_ = -1;  // B of the last training forward, -1 after inference
  JaggedDinAttentionWorkspace att_ws_;
  MultiHeadAttentionWorkspace mha_ws_;
  Tensor weights_, pooled_, d_pooled_;        // [N], [B, D], [B, D]
  Tensor mha_out_, d_mha_out_;                // [B, D] (empty without heads)
  Tensor padded_history_, d_padded_history_;  // [B, T, D] (with heads or scorer_)
  Tensor padded_mask_, padded_weights_;       // [B, T] (with heads or scorer_)
};

constexpr int kMaxHeads = 256;             // model.din.multi_head_target_attention.heads
constexpr double kMaxSoftmaxScale = 1000;  // model.din.softmax_scale

void CheckDin(const config::ModelConfig& config, const CtrModelDims& dims, config::Problems* p,
              CtrModelSizes* sizes) {
  const config::DinModel& din = config.din();
  const size_t before = p->size();
  CheckDinUnit("model.din", din, p);
  const std::vector<int> hidden = config::AttentionHidden(din);
  if (din.attention_normalization() == config::DinModel::SOFTMAX) {
    p->PositiveAtMost("model.din.softmax_scale", din.softmax_scale(), kMaxSoftmaxScale);
  }
  const int heads = din.multi_head_target_attention().heads();
  const std::string heads_path = "model.din.multi_head_target_attention.heads";
  p->NonNegativeAtMost(heads_path, heads, kMaxHeads);
  if (heads > 0) CheckHeadsDivideItemDim(heads_path, heads, dims, p);
  CheckScorer(config, dims, /*per_position_weights=*/false, "din", p);
  const int64_t d = dims.item_dim > 0 && dims.cate_dim > 0 ? dims.item_dim + dims.cate_dim : 0;
  if (p->size() != before || d == 0) return;
  sizes->weights.push_back({"model.din.attention_hidden[0]", 4 * d, hidden[0]});
  for (size_t l = 1; l < hidden.size(); ++l) {
    sizes->weights.push_back(
        {"model.din.attention_hidden[" + std::to_string(l) + "]", hidden[l - 1], hidden[l]});
  }
  sizes->mlp_input = dims.user_dim + 3 * d;  // [user, pooled, q, pooled * q]
  if (heads > 0) {
    sizes->weights.insert(sizes->weights.end(), 4, {heads_path, d, d});
    sizes->mlp_input += d;
  }
  sizes->per_position = std::max<int64_t>(2 * d, *std::max_element(hidden.begin(), hidden.end()));
}

}  // namespace

void DeclareDinUnit(int64_t d, int64_t h1, int64_t h2, ParamArena* arena, DinAttentionParams* p,
                    DinAttentionParams* g) {
  const struct {
    Shape shape;
    int64_t fan_in;
    Tensor *value, *grad;
  } decl[] = {{{4 * d, h1}, 4 * d, &p->w1, &g->w1}, {{h1}, 4 * d, &p->b1, &g->b1},
              {{h1, h2}, h1, &p->w2, &g->w2},       {{h2}, h1, &p->b2, &g->b2},
              {{h2, 1}, h2, &p->w3, &g->w3},        {{1}, h2, &p->b3, &g->b3}};
  for (const auto& e : decl) {
    arena->AddParam(e.shape, ParamInit::LinearLike(e.fan_in), e.value, e.grad);
  }
}

void CheckHeadsDivideItemDim(const std::string& path, int64_t heads, const CtrModelDims& dims,
                             config::Problems* p) {
  const int64_t d = dims.item_dim > 0 && dims.cate_dim > 0 ? dims.item_dim + dims.cate_dim : 0;
  if (heads <= 0 || d == 0 || d % heads == 0) return;
  p->Add(path, std::to_string(heads) + " does not divide the item dim " + std::to_string(d) +
                   (dims.d_source.empty() ? "" : " (" + dims.d_source + ")"));
}

void DeclareMultiHeadAttention(int64_t d, ParamArena* arena, MultiHeadAttentionParams* p,
                               MultiHeadAttentionParams* g) {
  Tensor* pairs[][2] = {{&p->wq, &g->wq}, {&p->bq, &g->bq}, {&p->wk, &g->wk}, {&p->bk, &g->bk},
                        {&p->wv, &g->wv}, {&p->bv, &g->bv}, {&p->wo, &g->wo}, {&p->bo, &g->bo}};
  for (int i = 0; i < 8; ++i) {
    arena->AddParam(i % 2 == 0 ? Shape{d, d} : Shape{d}, ParamInit::LinearLike(d), pairs[i][0],
                    pairs[i][1]);
  }
}

CtrModelKind DinModelKind() {
  auto make = [](const config::ModelConfig& config, const CtrModelDims& dims,
                 uint64_t seed) -> std::unique_ptr<CtrModel> {
    return std::make_unique<DinCtrModel>(config, dims, seed);
  };
  return {"din", CheckDin, make};
}

}  // namespace attnps::models
