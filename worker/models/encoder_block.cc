#include "worker/models/encoder_block.h"

#include <glog/logging.h>

#include <algorithm>

#include "ops/activation.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/parallel.h"
#include "ops/random.h"
#include "worker/models/models_internal.h"

namespace attnps::models {
namespace {

constexpr int64_t kChunk = 4096;

// out = a + b (or out += a when b is null), elementwise, over chunks in parallel.
void AddChunks(const float* a, const float* b, int64_t n, float* out) {
  ParallelFor((n + kChunk - 1) / kChunk, 2 * kChunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) out[i] = (b ? b[i] : out[i]) + a[i];
  });
}

void Add(const Tensor& a, const Tensor& b, Tensor* out) {
  AddChunks(a.data(), b.data(), a.numel(), out->data());
}

// dst += src.
void AddTo(const Tensor& src, Tensor* dst) {
  AddChunks(src.data(), nullptr, src.numel(), dst->data());
}

}  // namespace

EncoderBlock::EncoderBlock(const EncoderBlockOptions& options, ParamArena* arena)
    : options_(options) {
  const int64_t d = options.d, f = options.ffn;
  CHECK(d > 0 && f > 0 && options.heads > 0 && d % options.heads == 0)
      << "EncoderBlock: D " << d << ", F " << f << ", heads " << options.heads;
  DeclareMultiHeadAttention(d, arena, &mha_, &mha_grad_);
  const ParamInit by_d = ParamInit::LinearLike(d);
  arena->AddParam({d}, ParamInit::Constant(1.0f), &ln1_gamma_, &d_ln1_gamma_);
  arena->AddParam({d}, ParamInit::Constant(0.0f), &ln1_beta_, &d_ln1_beta_);
  arena->AddParam({d, f}, by_d, &w1_, &d_w1_);
  arena->AddParam({f}, by_d, &b1_, &d_b1_);
  arena->AddParam({f, d}, ParamInit::LinearLike(f), &w2_, &d_w2_);
  arena->AddParam({d}, ParamInit::LinearLike(f), &b2_, &d_b2_);
  arena->AddParam({d}, ParamInit::Constant(1.0f), &ln2_gamma_, &d_ln2_gamma_);
  arena->AddParam({d}, ParamInit::Constant(0.0f), &ln2_beta_, &d_ln2_beta_);
}

void EncoderBlock::Resize(int64_t b, int64_t l) {
  if (b == ws_b_ && l == ws_l_) return;
  ws_b_ = b;
  ws_l_ = l;
  const int64_t n = b * l, d = options_.d, f = options_.ffn, dh = d / options_.heads;
  mha_ws_ = MultiHeadAttentionWorkspace::Allocate(b, l, l, options_.heads, dh, dh);
  for (Tensor* t : {&attn_, &attn_mask_, &attn_drop_, &r1_, &h_, &f2_, &f2_mask_, &f2_drop_, &r2_,
                    &d_r2_, &d_f2_, &d_r1_, &d_attn_}) {
    *t = Tensor::Empty({n, d});
  }
  for (Tensor* t : {&f1_, &a1_, &a1_mask_, &a1_drop_, &d_a1_, &d_f1_}) *t = Tensor::Empty({n, f});
  for (Tensor* t : {&mean1_, &rstd1_, &mean2_, &rstd2_}) *t = Tensor::Empty({n});
}

void EncoderBlock::Forward(const Tensor& x, const Tensor& mask, bool training, uint64_t seed,
                           Tensor* y) {
  const int64_t b = x.dim(0), l = x.dim(1), d = options_.d;
  CHECK(x.shape() == Shape({b, l, d})) << "EncoderBlock input " << x.ShapeString();
  Resize(b, l);
  dropping_ = training && options_.dropout > 0.0f;
  const Mode mode = dropping_ ? Mode::kTraining : Mode::kInference;
  const float rate = options_.dropout;
  MultiHeadAttentionOptions mha_options;
  mha_options.heads = options_.heads;
  mha_options.causal = options_.causal;
  Tensor attn3 = attn_.Reshaped({b, l, d});
  MultiHeadAttentionForward(x, x, mask, mha_, mha_options, &mha_ws_, &attn3);
  const Tensor x2 = x.Reshaped({b * l, d});
  if (dropping_) DropoutForward(attn_, rate, StreamKey(seed, 1), mode, &attn_mask_, &attn_drop_);
  Add(x2, dropping_ ? attn_drop_ : attn_, &r1_);
  LayerNormForward(r1_, ln1_gamma_, ln1_beta_, kLayerNormEps, &h_, &mean1_, &rstd1_);
  LinearForward(h_, w1_, b1_, &f1_);
  ReluForward(f1_, &a1_);
  if (dropping_) DropoutForward(a1_, rate, StreamKey(seed, 2), mode, &a1_mask_, &a1_drop_);
  LinearForward(dropping_ ? a1_drop_ : a1_, w2_, b2_, &f2_);
  if (dropping_) DropoutForward(f2_, rate, StreamKey(seed, 3), mode, &f2_mask_, &f2_drop_);
  Add(h_, dropping_ ? f2_drop_ : f2_, &r2_);
  y->EnsureShape({b, l, d});
  Tensor y2 = y->Reshaped({b * l, d});
  LayerNormForward(r2_, ln2_gamma_, ln2_beta_, kLayerNormEps, &y2, &mean2_, &rstd2_);
}

void EncoderBlock::Backward(const Tensor& x, const Tensor& mask, const Tensor& dy, Tensor* dx) {
  const int64_t b = x.dim(0), l = x.dim(1), d = options_.d;
  CHECK(b == ws_b_ && l == ws_l_) << "EncoderBlock::Backward needs the Forward of the same batch";
  // d_r2_ is dL/dr2 = the residual's part of dL/dh; the FFN's part is added into it below.
  d_r2_.SetZero();
  LayerNormBackward(r2_, ln2_gamma_, mean2_, rstd2_, dy.Reshaped({b * l, d}), &d_r2_, &d_ln2_gamma_,
                    &d_ln2_beta_);
  if (dropping_) {
    d_f2_.SetZero();
    DropoutBackward(f2_mask_, d_r2_, &d_f2_);
  }
  d_a1_.SetZero();
  LinearBackward(dropping_ ? a1_drop_ : a1_, w2_, dropping_ ? d_f2_ : d_r2_, &d_a1_, &d_w2_,
                 &d_b2_);
  d_f1_.SetZero();
  if (dropping_) {  // d_f1_ holds d(a1) for a moment
    DropoutBackward(a1_mask_, d_a1_, &d_f1_);
    d_a1_.CopyFrom(d_f1_);
    d_f1_.SetZero();
  }
  ReluBackward(a1_, d_a1_, &d_f1_);
  LinearBackward(h_, w1_, d_f1_, &d_r2_, &d_w1_, &d_b1_);  // d_r2_ is now dL/dh
  d_r1_.SetZero();
  LayerNormBackward(r1_, ln1_gamma_, mean1_, rstd1_, d_r2_, &d_r1_, &d_ln1_gamma_, &d_ln1_beta_);
  Tensor dx2 = dx->Reshaped({b * l, d});
  AddTo(d_r1_, &dx2);  // the residual
  if (dropping_) {
    d_attn_.SetZero();
    DropoutBackward(attn_mask_, d_r1_, &d_attn_);
  }
  const Tensor& d_attn = dropping_ ? d_attn_ : d_r1_;
  MultiHeadAttentionOptions mha_options;
  mha_options.heads = options_.heads;
  mha_options.causal = options_.causal;
  MultiHeadAttentionBackward(x, x, mask, mha_, mha_options, d_attn.Reshaped({b, l, d}), &mha_ws_,
                             dx, dx, &mha_grad_);
}

}  // namespace attnps::models
