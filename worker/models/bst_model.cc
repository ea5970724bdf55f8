// BST (Chen et al., DLP-KDD'19) with target attention. Over the sequence X [B, T+1, D] of the
// padded history and the target in the last slot (position by distance from the target: history
// position i of a length-len history is len - i, the target 0):
//   X_0 = [E ; q] + P[pos],  X_k = Block_k(X_{k-1})   post-LN transformer blocks (encoder_block.h)
//   pooled = target attention of q over the history outputs X_N[:, :len]:
//            the DIN unit (softmax), softmax(q . o / sqrt(D)) or model.blocks.scorer's; or,
//            with NONE, the mean of X_N over the valid positions (history and target)
//   logit = head([user, pooled, q, pooled * q])
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "ops/attention.h"
#include "ops/din_attention.h"
#include "ops/jagged.h"
#include "ops/parallel.h"
#include "ops/pooling.h"
#include "ops/random.h"
#include "worker/config/job_config.h"
#include "worker/models/ctr_head.h"
#include "worker/models/encoder_block.h"
#include "worker/models/models_internal.h"
#include "worker/models/param_arena.h"
#include "worker/models/target_scorer.h"

namespace attnps::models {
namespace {

using Bst = config::BstModel;

constexpr float kPositionInit = 0.01f;  // P ~ U(-0.01, 0.01), the scale of the item rows

int64_t FfnWidth(const Bst& bst, int64_t d) {
  return bst.ffn_hidden() > 0 ? bst.ffn_hidden() : 4 * d;
}

// The target attention of model.bst (DIN_UNIT or SCALED_DOT_PRODUCT), or model.blocks.scorer.
ScorerSpec BstScorer(const config::ModelConfig& config) {
  const Bst& bst = config.bst();
  ScorerSpec spec;
  spec.kind = bst.target_attention() == Bst::SCALED_DOT_PRODUCT
                  ? config::TargetScorerConfig::SCALED_DOT_PRODUCT
                  : config::TargetScorerConfig::DIN_UNIT;
  spec.din_hidden = config::AttentionHidden(bst);
  spec.din_options = DinUnitOptions(bst.attention_activation(), AttentionNormalization::kSoftmax);
  return ScorerOf(config, spec);
}

class BstCtrModel final : public CtrModel {
 public:
  BstCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed)
      : dims_(dims),
        d_(dims.item_dim + dims.cate_dim),
        target_attention_(config.bst().target_attention()),
        seed_(seed) {
    const Bst& bst = config.bst();
    arena_.AddParam({dims.max_history + 1, d_}, {ParamInit::Kind::kUniform, kPositionInit},
                    &positions_, &d_positions_);
    EncoderBlockOptions block;
    block.d = d_;
    block.heads = bst.heads();
    block.ffn = FfnWidth(bst, d_);
    block.dropout = bst.dropout();
    for (int k = 0; k < bst.blocks(); ++k) {
      blocks_.push_back(std::make_unique<EncoderBlock>(block, &arena_));
    }
    if (target_attention_ != Bst::NONE) {
      scorer_ = std::make_unique<TargetScorer>(BstScorer(config), d_, &arena_);
    }
    head_ = std::make_unique<CtrHead>(config, dims, /*extra_dim=*/0, &arena_);
    arena_.Allocate(seed);
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }

  void Forward(const CtrInputs& in, bool training, Tensor* logits) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    const JaggedOffsets offsets(in.history_offsets);
    const int64_t t = std::max<int64_t>(1, offsets.MaxLength());
    CHECK_LE(t, dims_.max_history) << "BST: a history longer than max_history";
    Resize(s.b, t);
    BuildSequence(in, offsets);
    const uint64_t seed = training ? DropoutSeed(in) : 0;
    for (size_t k = 0; k < blocks_.size(); ++k) {
      blocks_[k]->Forward(acts_[k], seq_mask_, training, StreamKey(seed, k), &acts_[k + 1]);
    }
    PoolForward(in.target);
    head_->Forward(in.user, pooled_, in.target, Tensor(), training, logits);
    trained_batch_ = training ? s.b : -1;
  }

  void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    CHECK_EQ(trained_batch_, s.b) << "Backward needs Forward(training = true) on the same batch";
    const JaggedOffsets offsets(in.history_offsets);
    d_pooled_.SetZero();
    d_target_.SetZero();
    head_->Backward(dlogits, &dinputs->user, &d_pooled_, &d_target_, nullptr);
    const size_t n = blocks_.size();
    d_acts_[n].SetZero();
    PoolBackward(in.target);
    for (size_t k = n; k-- > 0;) {
      d_acts_[k].SetZero();
      blocks_[k]->Backward(acts_[k], seq_mask_, d_acts_[k + 1], &d_acts_[k]);
    }
    ScatterSequenceGrad(offsets, dinputs);
  }

 private:
  // acts_[0] = [E ; q] + P[pos], seq_mask_ (history and target valid) and key_mask_ (history
  // only).
  void BuildSequence(const CtrInputs& in, const JaggedOffsets& offsets) {
    const int64_t b = seq_mask_.dim(0), l = seq_mask_.dim(1), t = l - 1;
    Tensor& x = acts_[0];
    x.SetZero();
    seq_mask_.SetZero();
    key_mask_.SetZero();
    ParallelFor(b, l * d_, [&](int64_t r) {
      const int64_t len = offsets.length(r);
      for (int64_t i = 0; i < len; ++i) {
        AddRows(in.history.data() + (offsets.begin(r) + i) * d_, positions_.data() + (len - i) * d_,
                x.data() + (r * l + i) * d_);
        seq_mask_[r * l + i] = 1.0f;
        key_mask_[r * l + i] = 1.0f;
      }
      AddRows(in.target.data() + r * d_, positions_.data(), x.data() + (r * l + t) * d_);
      seq_mask_[r * l + t] = 1.0f;
    });
  }

  // The input gradients and the position embeddings' from d_acts_[0].
  void ScatterSequenceGrad(const JaggedOffsets& offsets, CtrInputGrads* dinputs) {
    const int64_t b = seq_mask_.dim(0), l = seq_mask_.dim(1), t = l - 1;
    const Tensor& dx = d_acts_[0];
    const bool want_history = !dinputs->history.empty(), want_target = !dinputs->target.empty();
    for (int64_t r = 0; r < b; ++r) {
      const int64_t len = offsets.length(r);
      for (int64_t i = 0; i < len; ++i) {
        const float* g = dx.data() + (r * l + i) * d_;
        Accumulate(g, d_positions_.data() + (len - i) * d_);
        if (want_history) Accumulate(g, dinputs->history.data() + (offsets.begin(r) + i) * d_);
      }
      const float* g = dx.data() + (r * l + t) * d_;
      Accumulate(g, d_positions_.data());
      if (want_target) {
        float* dq = dinputs->target.data() + r * d_;
        Accumulate(g, dq);
        Accumulate(d_target_.data() + r * d_, dq);
      }
    }
  }

  void PoolForward(const Tensor& q) {
    const Tensor& out = acts_.back();
    if (scorer_) {
      scorer_->Forward(q, out, key_mask_, &weights_, &pooled_);
    } else {
      MaskedMeanPoolForward(out, seq_mask_, &pooled_);
    }
  }

  // From d_pooled_: into d_target_ (the query) and d_acts_.back().
  void PoolBackward(const Tensor& q) {
    const Tensor& out = acts_.back();
    Tensor& d_out = d_acts_.back();
    if (scorer_) {
      scorer_->Backward(q, out, key_mask_, weights_, Tensor(), d_pooled_, &d_target_, &d_out);
    } else {
      MaskedMeanPoolBackward(seq_mask_, d_pooled_, &d_out);
    }
  }

  // The dropout masks' stream: a pure function of the model seed and the batch (its target rows
  // and history lengths), so that a resumed run draws what the uninterrupted one drew.
  uint64_t DropoutSeed(const CtrInputs& in) const {
    uint64_t h = StreamKey(seed_, static_cast<uint64_t>(in.history_offsets.back()));
    for (int32_t o : in.history_offsets) h = Mix64(h ^ static_cast<uint32_t>(o));
    for (int64_t i = 0; i < in.target.numel(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, in.target.data() + i, sizeof bits);
      h = Mix64(h + bits);
    }
    return h;
  }

  void AddRows(const float* a, const float* b, float* out) const {
    for (int64_t j = 0; j < d_; ++j) out[j] = a[j] + b[j];
  }
  void Accumulate(const float* g, float* dst) const {
    for (int64_t j = 0; j < d_; ++j) dst[j] += g[j];
  }

  // Per-batch tensors: reallocated when B or the batch's longest history T changes.
  void Resize(int64_t b, int64_t t) {
    if (b == ws_b_ && t == ws_t_) return;
    ws_b_ = b;
    ws_t_ = t;
    const int64_t l = t + 1;
    acts_.assign(blocks_.size() + 1, Tensor());
    d_acts_.assign(blocks_.size() + 1, Tensor());
    for (size_t k = 0; k <= blocks_.size(); ++k) {
      acts_[k] = Tensor::Empty({b, l, d_});
      d_acts_[k] = Tensor::Empty({b, l, d_});
    }
    seq_mask_ = Tensor::Empty({b, l});
    key_mask_ = Tensor::Empty({b, l});
    weights_ = Tensor::Empty({b, l});
    for (Tensor* x : {&pooled_, &d_pooled_, &d_target_}) *x = Tensor::Empty({b, d_});
  }

  const CtrModelDims dims_;
  const int64_t d_;
  const Bst::TargetAttention target_attention_;
  const uint64_t seed_;

  ParamArena arena_;
  Tensor positions_, d_positions_;  // P [max_history + 1, D]: row 0 the target's
  std::vector<std::unique_ptr<EncoderBlock>> blocks_;
  std::unique_ptr<TargetScorer> scorer_;  // null with NONE
  std::unique_ptr<CtrHead> head_;

  // Per-batch workspace.
  int64_t ws_b_ = -1, ws_t_ = -1;
  int64_t trained_batch_ = -1;           // B of the last training forward, -1 after inference
  std::vector<Tensor> acts_, d_acts_;    // block inputs and outputs [B, T+1, D], N + 1 of each
  Tensor seq_mask_, key_mask_;           // [B, T+1]
  Tensor weights_;                       // target attention [B, T+1]
  Tensor pooled_, d_pooled_, d_target_;  // [B, D]
};

constexpr int kMaxBlocks = 64;  // model.bst.blocks
constexpr int kMaxHeads = 256;  // model.bst.heads

void CheckBst(const config::ModelConfig& config, const CtrModelDims& dims, config::Problems* p,
              CtrModelSizes* sizes) {
  const Bst& bst = config.bst();
  const size_t before = p->size();
  p->PositiveAtMost("model.bst.blocks", bst.blocks(), kMaxBlocks);
  p->PositiveAtMost("model.bst.heads", bst.heads(), kMaxHeads);
  if (bst.heads() > 0) CheckHeadsDivideItemDim("model.bst.heads", bst.heads(), dims, p);
  p->NonNegativeAtMost("model.bst.ffn_hidden", bst.ffn_hidden(), config::kMaxLayerSize);
  p->InHalfOpen("model.bst.dropout", bst.dropout(), 0.0, 1.0);
  if (!Bst::TargetAttention_IsValid(bst.target_attention())) {
    p->Add("model.bst.target_attention",
           "unsupported value " + std::to_string(bst.target_attention()));
  }
  if (bst.target_attention() == Bst::DIN_UNIT) CheckDinUnit("model.bst", bst, p);
  CheckScorer(config, dims, /*per_position_weights=*/false, "bst", p);
  if (config.blocks().has_scorer() && bst.target_attention() == Bst::NONE) {
    p->Add("model.blocks.scorer",
           "model.bst.target_attention is NONE: there is no target attention to score");
  }
  if (dims.max_history <= 0) p->Add("data.max_history", "BST needs a positive max_history");
  const int64_t d = dims.item_dim > 0 && dims.cate_dim > 0 ? dims.item_dim + dims.cate_dim : 0;
  if (p->size() != before || d == 0) return;
  const int64_t f = FfnWidth(bst, d), l = dims.max_history + 1;
  sizes->weights.push_back({"data.max_history (position embeddings)", l, d});
  for (int k = 0; k < bst.blocks(); ++k) {
    sizes->weights.insert(sizes->weights.end(), 4,
                          {"model.bst.heads (attention projections)", d, d});
    sizes->weights.push_back({"model.bst.ffn_hidden", d, f});
    sizes->weights.push_back({"model.bst.ffn_hidden", f, d});
  }
  int64_t widest = std::max<int64_t>(f, bst.heads() * l);
  if (bst.target_attention() == Bst::DIN_UNIT) {
    const std::vector<int> hidden = config::AttentionHidden(bst);
    sizes->weights.push_back({"model.bst.attention_hidden[0]", 4 * d, hidden[0]});
    sizes->weights.push_back({"model.bst.attention_hidden[1]", hidden[0], hidden[1]});
    widest = std::max<int64_t>({widest, 2 * d, hidden[0], hidden[1]});
  }
  sizes->mlp_input = dims.user_dim + 3 * d;  // [user, pooled, q, pooled * q]
  sizes->per_position = widest;
}

}  // namespace

CtrModelKind BstModelKind() {
  auto make = [](const config::ModelConfig& config, const CtrModelDims& dims,
                 uint64_t seed) -> std::unique_ptr<CtrModel> {
    return std::make_unique<BstCtrModel>(config, dims, seed);
  };
  return {"bst", CheckBst, make};
}

}  // namespace attnps::models
