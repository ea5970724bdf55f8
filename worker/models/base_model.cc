// Base (Embedding & MLP): sum pooling of the (jagged) history, or with model.blocks.scorer the
// target's attention over it; the head (MLP on [user, pooled, q, pooled * q] and the blocks).
#include <glog/logging.h>

#include <algorithm>
#include <memory>

#include "ops/jagged.h"
#include "worker/config/job_config.h"
#include "worker/models/ctr_head.h"
#include "worker/models/models_internal.h"
#include "worker/models/param_arena.h"
#include "worker/models/target_scorer.h"

namespace attnps::models {
namespace {

// Base's scorer when model.blocks.scorer is set: a DIN unit's defaults, softmax-normalized.
ScorerSpec BaseScorer(const config::ModelConfig& config) {
  ScorerSpec spec;
  spec.din_options = DinUnitOptions(config::SIGMOID, AttentionNormalization::kSoftmax);
  return ScorerOf(config, spec);
}

class BaseCtrModel final : public CtrModel {
 public:
  BaseCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed)
      : dims_(dims), d_(dims.item_dim + dims.cate_dim) {
    if (config.blocks().has_scorer()) {
      scorer_ = std::make_unique<TargetScorer>(BaseScorer(config), d_, &arena_);
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
    pooled_.EnsureShape({s.b, d_});
    dpooled_.EnsureShape({s.b, d_});
    if (scorer_) {
      const int64_t t = std::max<int64_t>(1, offsets.MaxLength());
      padded_.EnsureShape({s.b, t, d_});
      mask_.EnsureShape({s.b, t});
      JaggedToPadded(in.history, offsets, &padded_, &mask_);
      weights_.EnsureShape(mask_.shape());
      scorer_->Forward(in.target, padded_, mask_, &weights_, &pooled_);
    } else {
      SegmentSumPoolForward(in.history, in.history_offsets, &pooled_);
    }
    head_->Forward(in.user, pooled_, in.target, Tensor(), training, logits);
    trained_batch_ = training ? s.b : -1;
  }

  void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    CHECK_EQ(trained_batch_, s.b) << "Backward needs Forward(training = true) on the same batch";
    const JaggedOffsets offsets(in.history_offsets);
    const bool want_history = !dinputs->history.empty();
    dpooled_.SetZero();
    head_->Backward(dlogits, &dinputs->user, &dpooled_, &dinputs->target, nullptr);
    if (scorer_) {
      Tensor* dq = dinputs->target.empty() ? nullptr : &dinputs->target;
      if (want_history) {
        d_padded_.EnsureShape(padded_.shape());
        d_padded_.SetZero();
      }
      scorer_->Backward(in.target, padded_, mask_, weights_, Tensor(), dpooled_, dq,
                        want_history ? &d_padded_ : nullptr);
      if (want_history) PaddedToJaggedAdd(d_padded_, offsets, &dinputs->history);
    } else if (want_history) {
      SegmentSumPoolBackward(in.history_offsets, dpooled_, &dinputs->history);
    }
  }

 private:
  const CtrModelDims dims_;
  const int64_t d_;
  ParamArena arena_;
  std::unique_ptr<TargetScorer> scorer_;  // null: sum pooling
  std::unique_ptr<CtrHead> head_;
  Tensor pooled_, dpooled_;                    // [B, D]
  Tensor padded_, d_padded_, mask_, weights_;  // with a scorer: [B, T, D], [B, T]
  int64_t trained_batch_ = -1;                 // B of the last training forward, -1 after inference
};

}  // namespace

CtrModelKind BaseModelKind() {
  auto check = [](const config::ModelConfig& config, const CtrModelDims& dims, config::Problems* p,
                  CtrModelSizes* sizes) {
    CheckScorer(config, dims, /*per_position_weights=*/false, "base", p);
    const int64_t d = dims.item_dim + dims.cate_dim;
    sizes->mlp_input = dims.user_dim + 3 * d;  // [user, pooled, q, pooled * q]
    // With a scorer: its widest [B, T, width] activation (a DIN unit's first layer at most).
    const ScorerSpec scorer = BaseScorer(config);
    sizes->per_position =
        config.blocks().has_scorer() ? std::max<int64_t>(2 * d, scorer.din_hidden[0]) : d;
  };
  auto make = [](const config::ModelConfig& config, const CtrModelDims& dims,
                 uint64_t seed) -> std::unique_ptr<CtrModel> {
    return std::make_unique<BaseCtrModel>(config, dims, seed);
  };
  return {"base", check, make};
}

}  // namespace attnps::models
