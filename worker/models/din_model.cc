// DIN (Zhou et al., KDD'18): the activation unit pools the history for the target, optionally
// with multi-head target attention and SENet field re-weighting; MLP on
// [user, pooled, q, pooled * q, mha]. See docs/models.md for the exact definition.
#include <glog/logging.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "ops/attention.h"
#include "ops/din_attention.h"
#include "ops/interaction.h"
#include "ops/jagged.h"
#include "worker/config/job_config.h"
#include "worker/models/mlp.h"
#include "worker/models/mlp_input.h"
#include "worker/models/models_internal.h"
#include "worker/models/param_arena.h"

namespace attnps::models {
namespace {

// SENet fields: [pooled item, pooled cate, target item, target cate], each item_dim wide.
constexpr int64_t kSenetFields = 4;
constexpr float kSenetInitGateBias = 1.0f;

DinAttentionOptions AttentionOptions(const config::DinModel& din) {
  return DinUnitOptions(din.attention_activation(),
                        din.attention_normalization() == config::DinModel::SOFTMAX
                            ? AttentionNormalization::kSoftmax
                            : AttentionNormalization::kNone);
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
        heads_(config.din().multi_head_target_attention().heads()),
        senet_ratio_(config.din().senet().reduction_ratio()),
        layout_(dims.user_dim, d_, heads_ > 0 ? d_ : 0) {
    DeclareAttention(config::AttentionHidden(config.din()));
    if (heads_ > 0) DeclareMultiHeadAttention(d_, &arena_, &mha_, &mha_grad_);
    if (senet_ratio_ > 0) DeclareSenet();
    mlp_ = std::make_unique<MlpTower>(layout_.width(), config.mlp(), &arena_);
    arena_.Allocate(seed);
    BindScaledScores();
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }

  void Forward(const CtrInputs& in, bool training, Tensor* logits) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    const JaggedOffsets offsets(in.history_offsets);
    Resize(s, offsets);
    if (score_scale_ != 1.0f) {
      for (int64_t j = 0; j < att_.w3.numel(); ++j) att_op_.w3[j] = score_scale_ * att_.w3[j];
      att_op_.b3[0] = score_scale_ * att_.b3[0];
    }
    JaggedDinAttentionForward(in.target, in.history, offsets, att_op_, options_, &att_ws_,
                              &weights_, &pooled_);
    if (heads_ > 0) {  // multi-head attention takes the padded layout
      JaggedToPadded(in.history, offsets, &padded_history_, &padded_mask_);
      Tensor out = mha_out_.Reshaped({s.b, 1, d_});
      MultiHeadAttentionForward(in.target.Reshaped({s.b, 1, d_}), padded_history_, padded_mask_,
                                mha_, MhaOptions(), &mha_ws_, &out);
    }
    RowBlock pooled = RowBlock::Of(pooled_), q = RowBlock::Of(in.target);
    if (senet_ratio_ > 0) {
      SenetForwardFields(in.target);
      pooled = {se_out_.data(), 2 * d_};
      q = {se_out_.data() + d_, 2 * d_};
    }
    layout_.Assemble(in.user, pooled, q, mha_out_, &x_);
    logits->EnsureShape({s.b});
    mlp_->Forward(x_, training, logits);
    trained_batch_ = training ? s.b : -1;
  }

  void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    CHECK_EQ(trained_batch_, s.b) << "Backward needs Forward(training = true) on the same batch";
    const JaggedOffsets offsets(in.history_offsets);
    Tensor* dq = dinputs->target.empty() ? nullptr : &dinputs->target;
    Tensor* dk = dinputs->history.empty() ? nullptr : &dinputs->history;
    dx_.SetZero();
    mlp_->Backward(x_, dlogits, &dx_);
    if (heads_ > 0) d_mha_out_.SetZero();
    if (senet_ratio_ > 0) {
      d_se_out_.SetZero();
      const RowBlock pooled{se_out_.data(), 2 * d_}, q{se_out_.data() + d_, 2 * d_};
      layout_.Split(dx_, pooled, q, &dinputs->user, {d_se_out_.data(), 2 * d_},
                    {d_se_out_.data() + d_, 2 * d_}, &d_mha_out_);
      SenetBackwardFields(dq);
    } else {
      d_pooled_.SetZero();
      layout_.Split(dx_, RowBlock::Of(pooled_), RowBlock::Of(in.target), &dinputs->user,
                    RowBlock::Of(d_pooled_), dq ? RowBlock::Of(*dq) : RowBlock{}, &d_mha_out_);
    }
    if (heads_ > 0) {
      Tensor dq3 = dq ? dq->Reshaped({s.b, 1, d_}) : Tensor();
      if (dk) d_padded_history_.SetZero();
      MultiHeadAttentionBackward(in.target.Reshaped({s.b, 1, d_}), padded_history_, padded_mask_,
                                 mha_, MhaOptions(), d_mha_out_.Reshaped({s.b, 1, d_}), &mha_ws_,
                                 dq ? &dq3 : nullptr, dk ? &d_padded_history_ : nullptr,
                                 &mha_grad_);
      if (dk) PaddedToJaggedAdd(d_padded_history_, offsets, dk);
    }
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

  // w1 [F, R], b1 [R], w2 [R, F], b2 [F] over the kSenetFields fields. Both SENet layers are
  // ReLU: b2 starts at 1 so that every gate starts open (near the identity re-weighting) rather
  // than possibly dead, and b1 at 0 so that each hidden unit is active for part of the batch.
  void DeclareSenet() {
    const int64_t f = kSenetFields, r = SenetHiddenSize(f, senet_ratio_);
    arena_.AddParam({f, r}, ParamInit::LinearLike(f), &senet_.w1, &senet_grad_.w1);
    arena_.AddParam({r}, ParamInit::Constant(0.0f), &senet_.b1, &senet_grad_.b1);
    arena_.AddParam({r, f}, ParamInit::LinearLike(r), &senet_.w2, &senet_grad_.w2);
    arena_.AddParam({f}, ParamInit::Constant(kSenetInitGateBias), &senet_.b2, &senet_grad_.b2);
    senet_hidden_ = r;
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

  // se_in_ [B, 2D] = [pooled | q] = fields [B, 4, d]; se_out_ the re-weighted fields.
  void SenetForwardFields(const Tensor& target) {
    const int64_t b = target.dim(0);
    for (int64_t r = 0; r < b; ++r) {
      std::copy_n(pooled_.data() + r * d_, d_, se_in_.data() + r * 2 * d_);
      std::copy_n(target.data() + r * d_, d_, se_in_.data() + r * 2 * d_ + d_);
    }
    const int64_t field = dims_.item_dim;
    Tensor out = se_out_.Reshaped({b, kSenetFields, field});
    SenetForward(se_in_.Reshaped({b, kSenetFields, field}), senet_, &senet_ws_, &out);
  }

  // From d_se_out_: SENet weight gradients, d_pooled_ (assigned) and dq (+=, when wanted).
  void SenetBackwardFields(Tensor* dq) {
    const int64_t b = se_in_.dim(0), field = dims_.item_dim;
    d_se_in_.SetZero();
    Tensor de = d_se_in_.Reshaped({b, kSenetFields, field});
    SenetBackward(se_in_.Reshaped({b, kSenetFields, field}), senet_,
                  d_se_out_.Reshaped({b, kSenetFields, field}), &senet_ws_, &de, &senet_grad_);
    for (int64_t r = 0; r < b; ++r) {
      const float* g = d_se_in_.data() + r * 2 * d_;
      std::copy_n(g, d_, d_pooled_.data() + r * d_);
      if (dq) {
        float* out = dq->data() + r * d_;
        for (int64_t j = 0; j < d_; ++j) out[j] += g[d_ + j];
      }
    }
  }

  // Per-batch workspaces: the [N]-sized ones keep their buffers while they fit; the [B]-sized
  // ones are reallocated when B changes (and the padded copy for multi-head attention when the
  // longest history T does).
  void Resize(const BatchSizes& s, const JaggedOffsets& offsets) {
    weights_.EnsureCapacity({s.n});
    if (heads_ > 0) {
      const int64_t t = std::max<int64_t>(1, offsets.MaxLength());
      if (s.b != ws_b_ || t != ws_t_) {
        const int64_t head_dim = d_ / heads_;
        mha_ws_ = MultiHeadAttentionWorkspace::Allocate(s.b, 1, t, heads_, head_dim, head_dim);
        padded_history_ = Tensor::Empty({s.b, t, d_});
        d_padded_history_ = Tensor::Empty({s.b, t, d_});
        padded_mask_ = Tensor::Empty({s.b, t});
        ws_t_ = t;
      }
    }
    if (s.b == ws_b_) return;
    ws_b_ = s.b;
    pooled_ = Tensor::Empty({s.b, d_});
    d_pooled_ = Tensor::Empty({s.b, d_});
    x_ = Tensor::Empty({s.b, layout_.width()});
    dx_ = Tensor::Empty({s.b, layout_.width()});
    if (heads_ > 0) {
      mha_out_ = Tensor::Empty({s.b, d_});
      d_mha_out_ = Tensor::Empty({s.b, d_});
    }
    if (senet_ratio_ > 0) {
      senet_ws_ = SenetWorkspace::Allocate(s.b, kSenetFields, senet_hidden_);
      se_in_ = Tensor::Empty({s.b, 2 * d_});
      se_out_ = Tensor::Empty({s.b, 2 * d_});
      d_se_in_ = Tensor::Empty({s.b, 2 * d_});
      d_se_out_ = Tensor::Empty({s.b, 2 * d_});
    }
  }

  const CtrModelDims dims_;
  const int64_t d_;
  const DinAttentionOptions options_;
  const float score_scale_;    // softmax_scale under SOFTMAX, else 1
  const int64_t heads_;        // 0: no multi-head target attention
  const int64_t senet_ratio_;  // 0: no SENet
  const MlpInputLayout layout_;
  int64_t h1_ = 0, h2_ = 0, senet_hidden_ = 0;

  ParamArena arena_;
  DinAttentionParams att_, att_grad_;        // views into the arena
  DinAttentionParams att_op_, att_op_grad_;  // what the op sees (see BindScaledScores)
  MultiHeadAttentionParams mha_, mha_grad_;
  SenetParams senet_, senet_grad_;
  std::unique_ptr<MlpTower> mlp_;

  // Per-batch workspace.
  int64_t ws_b_ = -1, ws_t_ = -1;
  int64_t trained_batch_ = -1;  // B of the last training forward, -1 after inference
  JaggedDinAttentionWorkspace att_ws_;
  MultiHeadAttentionWorkspace mha_ws_;
  SenetWorkspace senet_ws_;
  Tensor weights_, pooled_, d_pooled_;          // [N], [B, D], [B, D]
  Tensor mha_out_, d_mha_out_;                  // [B, D] (empty without heads)
  Tensor padded_history_, d_padded_history_;    // [B, T, D] (empty without heads)
  Tensor padded_mask_;                          // [B, T] (empty without heads)
  Tensor se_in_, se_out_, d_se_in_, d_se_out_;  // [B, 2D] = [pooled | q] (empty without SENet)
  Tensor x_, dx_;                               // MLP input [B, width]
};

constexpr int kMaxHeads = 256;             // model.din.multi_head_target_attention.heads
constexpr int kMaxSenetRatio = 1024;       // model.din.senet.reduction_ratio
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
  const int64_t d = dims.item_dim > 0 && dims.cate_dim > 0 ? dims.item_dim + dims.cate_dim : 0;
  const int ratio = din.senet().reduction_ratio();
  p->NonNegativeAtMost("model.din.senet.reduction_ratio", ratio, kMaxSenetRatio);
  if (ratio > 0 && d > 0 && dims.item_dim != dims.cate_dim) {
    p->Add("model.din.senet.reduction_ratio", "SENet needs fields of one width: item dim " +
                                                  std::to_string(dims.item_dim) + " != cate dim " +
                                                  std::to_string(dims.cate_dim));
  }
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
