// Base (Embedding & MLP): sum pooling of the (jagged) history, MLP on [user, pooled, q, pooled *
// q].
#include <glog/logging.h>

#include <memory>

#include "ops/jagged.h"
#include "worker/config/job_config.h"
#include "worker/models/mlp.h"
#include "worker/models/mlp_input.h"
#include "worker/models/models_internal.h"
#include "worker/models/param_arena.h"

namespace attnps::models {
namespace {

class BaseCtrModel final : public CtrModel {
 public:
  BaseCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed)
      : dims_(dims),
        d_(dims.item_dim + dims.cate_dim),
        layout_(dims.user_dim, d_, /*extra_dim=*/0) {
    mlp_ = std::make_unique<MlpTower>(layout_.width(), config.mlp(), &arena_);
    arena_.Allocate(seed);
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }

  void Forward(const CtrInputs& in, bool training, Tensor* logits) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    Resize(s.b);
    SegmentSumPoolForward(in.history, in.history_offsets, &pooled_);
    layout_.Assemble(in.user, RowBlock::Of(pooled_), RowBlock::Of(in.target), Tensor(), &x_);
    logits->EnsureShape({s.b});
    mlp_->Forward(x_, training, logits);
    trained_batch_ = training ? s.b : -1;
  }

  void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) override {
    const BatchSizes s = CheckCtrInputs(in, dims_);
    CHECK_EQ(trained_batch_, s.b) << "Backward needs Forward(training = true) on the same batch";
    dx_.SetZero();
    mlp_->Backward(x_, dlogits, &dx_);
    const bool want_history = !dinputs->history.empty();
    if (want_history) dpooled_.SetZero();
    layout_.Split(dx_, RowBlock::Of(pooled_), RowBlock::Of(in.target), &dinputs->user,
                  want_history ? RowBlock::Of(dpooled_) : RowBlock{}, RowBlock::Of(dinputs->target),
                  nullptr);
    if (want_history) SegmentSumPoolBackward(in.history_offsets, dpooled_, &dinputs->history);
  }

 private:
  void Resize(int64_t b) {
    pooled_.EnsureShape({b, d_});
    dpooled_.EnsureShape({b, d_});
    x_.EnsureShape({b, layout_.width()});
    dx_.EnsureShape({b, layout_.width()});
  }

  const CtrModelDims dims_;
  const int64_t d_;
  const MlpInputLayout layout_;
  ParamArena arena_;
  std::unique_ptr<MlpTower> mlp_;
  Tensor pooled_, dpooled_, x_, dx_;  // per-batch workspace
  int64_t trained_batch_ = -1;        // B of the last training forward, -1 after inference
};

}  // namespace

CtrModelKind BaseModelKind() {
  auto check = [](const config::ModelConfig&, const CtrModelDims& dims, config::Problems*,
                  CtrModelSizes* sizes) {
    const int64_t d = dims.item_dim + dims.cate_dim;
    sizes->mlp_input = dims.user_dim + 3 * d;  // [user, pooled, q, pooled * q]
    sizes->per_position = d;
  };
  auto make = [](const config::ModelConfig& config, const CtrModelDims& dims,
                 uint64_t seed) -> std::unique_ptr<CtrModel> {
    return std::make_unique<BaseCtrModel>(config, dims, seed);
  };
  return {"base", check, make};
}

}  // namespace attnps::models
