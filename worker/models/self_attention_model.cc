// The self-attention sequence encoder (SASRec, Kang and McAuley, ICDM'18), causal: over the
// history padded to T = data.max_history (positions from the oldest kept item),
//   X_0 = Dropout(E + P)                  P [T, D] ~ U(+-0.01 sqrt 3)
//   X_k = Block_k(X_{k-1}, causal)        encoder_block.h, pre- or post-LayerNorm
//   O   = LN_final(X_N) with pre_norm, else X_N
// Training: O at every valid position, [N, 1, D] (position i predicts the item after it);
// inference: O at the last valid position, [B, 1, D].
#include <glog/logging.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "ops/jagged.h"
#include "ops/norm.h"
#include "ops/random.h"
#include "worker/models/encoder_block.h"
#include "worker/models/param_arena.h"
#include "worker/models/retrieval_internal.h"

namespace attnps::models {
namespace {

using Sa = config::SelfAttentionModel;

class SelfAttentionModel final : public RetrievalModel {
 public:
  SelfAttentionModel(const Sa& c, const RetrievalModelDims& dims, uint64_t seed)
      : t_(dims.max_history), d_(dims.item_dim), dropout_(c.dropout()), pre_norm_(c.pre_norm()) {
    arena_.AddParam({t_, d_}, {ParamInit::Kind::kUniform, 0.01f * 1.7320508f}, &positions_,
                    &d_positions_);
    EncoderBlockOptions block;
    block.d = d_;
    block.heads = c.heads();
    block.ffn = c.ffn_hidden() > 0 ? c.ffn_hidden() : d_;
    block.dropout = c.dropout();
    block.causal = true;
    block.pre_norm = c.pre_norm();
    for (int k = 0; k < c.blocks(); ++k) {
      blocks_.push_back(std::make_unique<EncoderBlock>(block, &arena_));
    }
    if (pre_norm_) {
      arena_.AddParam({d_}, ParamInit::Constant(1.0f), &ln_gamma_, &d_ln_gamma_);
      arena_.AddParam({d_}, ParamInit::Constant(0.0f), &ln_beta_, &d_ln_beta_);
    }
    arena_.Allocate(seed);
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }
  int interests() const override { return 1; }
  bool predicts_every_position() const override { return true; }

  void Forward(const RetrievalInputs& in, bool training, uint64_t seed, Tensor* out) override {
    const JaggedOffsets offsets(in.history_offsets);
    CHECK_LE(offsets.MaxLength(), t_) << "self-attention: a history longer than data.max_history";
    Resize(offsets.batch());
    const int64_t b = b_, rows = b * t_;
    JaggedToPadded(in.history, offsets, &padded_, &mask_);
    for (int64_t i = 0; i < b; ++i) {
      float* x = padded_.data() + i * t_ * d_;
      for (int64_t j = 0; j < t_ * d_; ++j) x[j] += positions_.data()[j];
    }
    dropping_ = training && dropout_ > 0;
    DropoutForward(padded_, dropping_ ? dropout_ : 0.0f, StreamKey(seed, 0x5A),
                   dropping_ ? Mode::kTraining : Mode::kInference, &drop_mask_, &acts_[0]);
    for (size_t k = 0; k < blocks_.size(); ++k) {
      blocks_[k]->Forward(acts_[k], mask_, training, StreamKey(seed, k + 1), &acts_[k + 1]);
    }
    const Tensor flat_in = Tensor::View(acts_.back().data(), {rows, d_});
    Tensor flat_out = Tensor::View(final_.data(), {rows, d_});
    if (pre_norm_) {
      LayerNormForward(flat_in, ln_gamma_, ln_beta_, kLayerNormEps, &flat_out, &mean_, &rstd_);
    } else {
      final_.CopyFrom(acts_.back());
    }
    if (training) {
      out->EnsureShape({offsets.total(), 1, d_});
      for (int64_t i = 0; i < b; ++i) {
        std::copy_n(final_.data() + i * t_ * d_, offsets.length(i) * d_,
                    out->data() + offsets.begin(i) * d_);
      }
    } else {
      out->EnsureShape({b, 1, d_});
      out->SetZero();
      for (int64_t i = 0; i < b; ++i) {
        const int64_t len = offsets.length(i);
        if (len > 0) {
          std::copy_n(final_.data() + (i * t_ + len - 1) * d_, d_, out->data() + i * d_);
        }
      }
    }
    trained_batch_ = training ? b : -1;
  }

  void Backward(const RetrievalInputs& in, const Tensor& dout, Tensor* dhistory) override {
    const JaggedOffsets offsets(in.history_offsets);
    CHECK_EQ(trained_batch_, offsets.batch()) << "self-attention: Backward needs Forward(training)";
    const int64_t b = b_, rows = b * t_;
    d_final_.SetZero();
    for (int64_t i = 0; i < b; ++i) {
      std::copy_n(dout.data() + offsets.begin(i) * d_, offsets.length(i) * d_,
                  d_final_.data() + i * t_ * d_);
    }
    const size_t n = blocks_.size();
    d_acts_[n].SetZero();
    if (pre_norm_) {
      Tensor flat_dx = Tensor::View(d_acts_[n].data(), {rows, d_});
      LayerNormBackward(Tensor::View(acts_[n].data(), {rows, d_}), ln_gamma_, mean_, rstd_,
                        Tensor::View(d_final_.data(), {rows, d_}), &flat_dx, &d_ln_gamma_,
                        &d_ln_beta_);
    } else {
      d_acts_[n].CopyFrom(d_final_);
    }
    for (size_t k = n; k-- > 0;) {
      d_acts_[k].SetZero();
      blocks_[k]->Backward(acts_[k], mask_, d_acts_[k + 1], &d_acts_[k]);
    }
    d_padded_.SetZero();
    if (dropping_) {
      DropoutBackward(drop_mask_, d_acts_[0], &d_padded_);
    } else {
      d_padded_.CopyFrom(d_acts_[0]);
    }
    for (int64_t i = 0; i < b; ++i) {
      const float* g = d_padded_.data() + i * t_ * d_;
      for (int64_t j = 0; j < t_ * d_; ++j) d_positions_.data()[j] += g[j];
    }
    PaddedToJaggedAdd(d_padded_, offsets, dhistory);
  }

 private:
  void Resize(int64_t b) {
    if (b == b_) return;
    b_ = b;
    const Shape seq = {b, t_, d_};
    padded_ = Tensor::Zeros(seq);
    d_padded_ = Tensor::Zeros(seq);
    drop_mask_ = Tensor::Zeros(seq);
    mask_ = Tensor::Zeros({b, t_});
    final_ = Tensor::Zeros(seq);
    d_final_ = Tensor::Zeros(seq);
    mean_ = Tensor::Zeros({b * t_});
    rstd_ = Tensor::Zeros({b * t_});
    acts_.assign(blocks_.size() + 1, Tensor());
    d_acts_.assign(blocks_.size() + 1, Tensor());
    for (Tensor& a : acts_) a = Tensor::Zeros(seq);
    for (Tensor& a : d_acts_) a = Tensor::Zeros(seq);
  }

  const int64_t t_, d_;
  const float dropout_;
  const bool pre_norm_;
  ParamArena arena_;
  Tensor positions_, d_positions_, ln_gamma_, d_ln_gamma_, ln_beta_, d_ln_beta_;
  std::vector<std::unique_ptr<EncoderBlock>> blocks_;
  int64_t b_ = -1, trained_batch_ = -1;
  bool dropping_ = false;
  Tensor padded_, d_padded_, drop_mask_, mask_, final_, d_final_, mean_, rstd_;
  std::vector<Tensor> acts_, d_acts_;  // block inputs/outputs [B, T, D]
};

void Check(const config::ModelConfig& config, const RetrievalModelDims& dims, config::Problems* p) {
  const Sa& c = config.self_attention();
  p->PositiveAtMost("model.self_attention.blocks", c.blocks(), 64);
  p->PositiveAtMost("model.self_attention.heads", c.heads(), 256);
  p->NonNegativeAtMost("model.self_attention.ffn_hidden", c.ffn_hidden(), config::kMaxLayerSize);
  p->InHalfOpen("model.self_attention.dropout", c.dropout(), 0, 1);
  if (dims.item_dim > 0 && c.heads() > 0 && dims.item_dim % c.heads() != 0) {
    p->Add("model.self_attention.heads", std::to_string(c.heads()) +
                                             " does not divide the item dim " +
                                             std::to_string(dims.item_dim));
  }
}

std::unique_ptr<RetrievalModel> Make(const config::ModelConfig& config,
                                     const RetrievalModelDims& dims, uint64_t seed) {
  return std::make_unique<SelfAttentionModel>(config.self_attention(), dims, seed);
}

}  // namespace

RetrievalModelKind SelfAttentionKind() { return {"self_attention", Check, Make}; }

}  // namespace attnps::models
