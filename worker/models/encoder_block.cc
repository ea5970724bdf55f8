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

// out = a + b.
void Add(const Tensor& a, const Tensor& b, Tensor* out) {
  const float *pa = a.data(), *pb = b.data();
  float* po = out->data();
  for (int64_t i = 0; i < a.numel(); ++i) po[i] = pa[i] + pb[i];
}

// dst += src.
void AddTo(const Tensor& src, Tensor* dst) {
  const float* ps = src.data();
  float* pd = dst->data();
  for (int64_t i = 0; i < src.numel(); ++i) pd[i] += ps[i];
}

// out = g * mask (the dropout's backward, assigned).
void Masked(const Tensor& mask, const Tensor& g, Tensor* out) {
  const float *pm = mask.data(), *pg = g.data();
  float* po = out->data();
  for (int64_t i = 0; i < g.numel(); ++i) po[i] = pg[i] * pm[i];
}

// d_f1 = d_a1 (* mask) where relu's output a1 > 0, else 0: the backward of Dropout(relu(f1)).
void ReluDropoutGrad(const Tensor& a1, const Tensor* mask, const Tensor& d_a1, Tensor* d_f1) {
  const float *pa = a1.data(), *pg = d_a1.data(), *pm = mask ? mask->data() : nullptr;
  float* po = d_f1->data();
  for (int64_t i = 0; i < a1.numel(); ++i) {
    const float g = pm ? pg[i] * pm[i] : pg[i];
    po[i] = pa[i] > 0.0f ? g : 0.0f;
  }
}

int64_t Chunks(int64_t b) {
  return (b + EncoderBlock::kSamplesPerChunk - 1) / EncoderBlock::kSamplesPerChunk;
}

// body(c, s0, s1) for each chunk c of samples [s0, s1), in parallel; `cost` estimates one
// chunk's work.
template <class Body>
void ForEachChunk(int64_t b, int64_t cost, const Body& body) {
  ParallelFor(Chunks(b), cost, [&](int64_t c) {
    const int64_t s0 = c * EncoderBlock::kSamplesPerChunk;
    body(c, s0, std::min(b, s0 + EncoderBlock::kSamplesPerChunk));
  });
}

}  // namespace

template <class F>
void EncoderBlock::Weights::ForEach(F f) {
  for (Tensor* t : {&mha.wq, &mha.bq, &mha.wk, &mha.bk, &mha.wv, &mha.bv, &mha.wo, &mha.bo,
                    &ln1_gamma, &ln1_beta, &w1, &b1, &w2, &b2, &ln2_gamma, &ln2_beta}) {
    f(t);
  }
}

EncoderBlock::EncoderBlock(const EncoderBlockOptions& options, ParamArena* arena)
    : options_(options) {
  const int64_t d = options.d, f = options.ffn;
  CHECK(d > 0 && f > 0 && options.heads > 0 && d % options.heads == 0)
      << "EncoderBlock: D " << d << ", F " << f << ", heads " << options.heads;
  Weights& w = w_;
  Weights& g = grads_;
  DeclareMultiHeadAttention(d, arena, &w.mha, &g.mha);
  const ParamInit by_d = ParamInit::LinearLike(d);
  arena->AddParam({d}, ParamInit::Constant(1.0f), &w.ln1_gamma, &g.ln1_gamma);
  arena->AddParam({d}, ParamInit::Constant(0.0f), &w.ln1_beta, &g.ln1_beta);
  arena->AddParam({d, f}, by_d, &w.w1, &g.w1);
  arena->AddParam({f}, by_d, &w.b1, &g.b1);
  arena->AddParam({f, d}, ParamInit::LinearLike(f), &w.w2, &g.w2);
  arena->AddParam({d}, ParamInit::LinearLike(f), &w.b2, &g.b2);
  arena->AddParam({d}, ParamInit::Constant(1.0f), &w.ln2_gamma, &g.ln2_gamma);
  arena->AddParam({d}, ParamInit::Constant(0.0f), &w.ln2_beta, &g.ln2_beta);
}

MultiHeadAttentionOptions EncoderBlock::MhaOptions() const {
  MultiHeadAttentionOptions o;
  o.heads = options_.heads;
  o.causal = options_.causal;
  return o;
}

void EncoderBlock::Resize(int64_t b, int64_t l) {
  if (b == ws_b_ && l == ws_l_) return;
  ws_b_ = b;
  ws_l_ = l;
  const int64_t n = b * l, d = options_.d, f = options_.ffn, dh = d / options_.heads;
  mha_ws_ = MultiHeadAttentionWorkspace::AllocateSelf(b, l, options_.heads, dh, dh);
  for (Tensor* t :
       {&attn_, &attn_mask_, &r1_, &h_, &f2_, &f2_mask_, &d_r2_, &d_f2_, &d_r1_, &d_attn_}) {
    *t = Tensor::Empty({n, d});
  }
  for (Tensor* t : {&r2_, &x_norm_, &d_x_norm_}) *t = Tensor();
  if (options_.pre_norm) {
    for (Tensor* t : {&x_norm_, &d_x_norm_}) *t = Tensor::Empty({n, d});
  } else {
    r2_ = Tensor::Empty({n, d});
  }
  for (Tensor* t : {&f1_, &a1_, &a1_mask_, &a1_drop_, &d_a1_, &d_f1_}) *t = Tensor::Empty({n, f});
  for (Tensor* t : {&mean1_, &rstd1_, &mean2_, &rstd2_}) *t = Tensor::Empty({n});
  // The arena lays the block's gradients out one after the other (the constructor's order).
  float* end = nullptr;
  grads_begin_ = grads_.mha.wq.data();
  grads_.ForEach([&](Tensor* t) {
    if (t->empty()) return;
    grads_begin_ = std::min(grads_begin_, t->data());
    end = std::max(end, t->data() + t->numel());
  });
  grads_span_ = end - grads_begin_;
}

EncoderBlock::Weights EncoderBlock::ChunkGrads(int64_t c) {
  float* base = chunk_grads_.data() + c * grads_span_;
  Weights out = grads_;
  out.ForEach([&](Tensor* t) {
    if (!t->empty()) *t = Tensor::View(base + (t->data() - grads_begin_), t->shape());
  });
  return out;
}

void EncoderBlock::Forward(const Tensor& x, const Tensor& mask, bool training, uint64_t seed,
                           Tensor* y) {
  const int64_t b = x.dim(0), l = x.dim(1), d = options_.d;
  CHECK(x.shape() == Shape({b, l, d})) << "EncoderBlock input " << x.ShapeString();
  Resize(b, l);
  dropping_ = training && options_.dropout > 0.0f;
  y->EnsureShape({b, l, d});
  const int64_t per_sample = l * (l * d * 4 + d * d * 8 + d * options_.ffn * 4);
  ForEachChunk(b, per_sample * kSamplesPerChunk,
               [&](int64_t, int64_t s0, int64_t s1) { ForwardChunk(x, mask, seed, s0, s1, y); });
}

void EncoderBlock::AddDropped(const Tensor& residual, const Tensor& branch, uint64_t key,
                              int64_t first_index, Tensor* mask, Tensor* out) const {
  if (!dropping_) {
    Add(residual, branch, out);
    return;
  }
  DropoutForward(branch, options_.dropout, key, Mode::kTraining, mask, out, first_index);
  AddTo(residual, out);
}

void EncoderBlock::FfnForward(uint64_t seed, int64_t row0, int64_t row1) {
  auto rows = [&](const Tensor& t) { return t.Rows(row0, row1); };
  Tensor f1 = rows(f1_), a1 = rows(a1_), a1_drop = rows(a1_drop_);
  LinearForward(rows(h_), w_.w1, w_.b1, &f1);
  ReluForward(f1, &a1);
  const int64_t f = options_.ffn;
  if (dropping_) {
    Tensor m = rows(a1_mask_);
    DropoutForward(a1, options_.dropout, StreamKey(seed, 2), Mode::kTraining, &m, &a1_drop,
                   row0 * f);
  }
  Tensor f2 = rows(f2_);
  LinearForward(dropping_ ? a1_drop : a1, w_.w2, w_.b2, &f2);
}

void EncoderBlock::ForwardChunk(const Tensor& x, const Tensor& mask, uint64_t seed, int64_t s0,
                                int64_t s1, Tensor* y) {
  const int64_t l = x.dim(1), d = options_.d, row0 = s0 * l, row1 = s1 * l;
  auto rows = [&](const Tensor& t) { return t.Rows(row0, row1); };
  const Tensor xs = x.Rows(s0, s1), x2 = xs.Reshaped({(s1 - s0) * l, d});
  MultiHeadAttentionWorkspace ws = mha_ws_.Samples(s0, s1);
  Tensor attn = rows(attn_), attn3 = attn.Reshaped({s1 - s0, l, d}), attn_mask = rows(attn_mask_);
  Tensor r1 = rows(r1_), h = rows(h_), mean1 = rows(mean1_), rstd1 = rows(rstd1_);
  Tensor f2 = rows(f2_), f2_mask = rows(f2_mask_), mean2 = rows(mean2_), rstd2 = rows(rstd2_);
  Tensor y2 = y->Reshaped({x.dim(0) * l, d}).Rows(row0, row1);
  if (options_.pre_norm) {
    Tensor xn = rows(x_norm_);
    LayerNormForward(x2, w_.ln1_gamma, w_.ln1_beta, kLayerNormEps, &xn, &mean1, &rstd1);
    const Tensor xn3 = xn.Reshaped({s1 - s0, l, d});
    MultiHeadAttentionForward(xn3, xn3, mask.Rows(s0, s1), w_.mha, MhaOptions(), &ws, &attn3);
    AddDropped(x2, attn, StreamKey(seed, 1), row0 * d, &attn_mask, &r1);
    LayerNormForward(r1, w_.ln2_gamma, w_.ln2_beta, kLayerNormEps, &h, &mean2, &rstd2);
    FfnForward(seed, row0, row1);
    AddDropped(r1, f2, StreamKey(seed, 3), row0 * d, &f2_mask, &y2);
    return;
  }
  MultiHeadAttentionForward(xs, xs, mask.Rows(s0, s1), w_.mha, MhaOptions(), &ws, &attn3);
  AddDropped(x2, attn, StreamKey(seed, 1), row0 * d, &attn_mask, &r1);
  LayerNormForward(r1, w_.ln1_gamma, w_.ln1_beta, kLayerNormEps, &h, &mean1, &rstd1);
  FfnForward(seed, row0, row1);
  Tensor r2 = rows(r2_);
  AddDropped(h, f2, StreamKey(seed, 3), row0 * d, &f2_mask, &r2);
  LayerNormForward(r2, w_.ln2_gamma, w_.ln2_beta, kLayerNormEps, &y2, &mean2, &rstd2);
}

void EncoderBlock::Backward(const Tensor& x, const Tensor& mask, const Tensor& dy, Tensor* dx) {
  const int64_t b = x.dim(0), l = x.dim(1), d = options_.d;
  CHECK(b == ws_b_ && l == ws_l_) << "EncoderBlock::Backward needs the Forward of the same batch";
  const int64_t per_sample = 2 * l * (l * d * 4 + d * d * 8 + d * options_.ffn * 4);
  chunk_grads_.EnsureShape({Chunks(b), grads_span_});
  ForEachChunk(b, per_sample * kSamplesPerChunk, [&](int64_t c, int64_t s0, int64_t s1) {
    Weights grads = ChunkGrads(c);
    std::fill_n(chunk_grads_.data() + c * grads_span_, grads_span_, 0.0f);
    BackwardChunk(x, mask, dy, s0, s1, &grads, dx);
  });
  // The chunks' gradients, summed in chunk order into the arena's.
  const int64_t chunks = Chunks(b), span = grads_span_;
  const float* partial = chunk_grads_.data();
  float* out = grads_begin_;
  ParallelFor(span, chunks, [&](int64_t e) {
    float sum = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) sum += partial[c * span + e];
    out[e] += sum;
  });
}

void EncoderBlock::FfnBackward(const Tensor& d_out, int64_t row0, int64_t row1, Weights* g,
                               Tensor* d_h) {
  auto rows = [&](const Tensor& t) { return t.Rows(row0, row1); };
  Tensor d_f2 = rows(d_f2_), d_a1 = rows(d_a1_), d_f1 = rows(d_f1_);
  if (dropping_) Masked(rows(f2_mask_), d_out, &d_f2);
  d_a1.SetZero();
  LinearBackward(rows(dropping_ ? a1_drop_ : a1_), w_.w2, dropping_ ? d_f2 : d_out, &d_a1, &g->w2,
                 &g->b2);
  const Tensor a1_mask = rows(a1_mask_);
  ReluDropoutGrad(rows(a1_), dropping_ ? &a1_mask : nullptr, d_a1, &d_f1);
  LinearBackward(rows(h_), w_.w1, d_f1, d_h, &g->w1, &g->b1);
}

void EncoderBlock::BackwardChunk(const Tensor& x, const Tensor& mask, const Tensor& dy, int64_t s0,
                                 int64_t s1, Weights* g, Tensor* dx) {
  const int64_t l = x.dim(1), d = options_.d, row0 = s0 * l, row1 = s1 * l;
  auto rows = [&](const Tensor& t) { return t.Rows(row0, row1); };
  const Tensor dy2 = dy.Reshaped({x.dim(0) * l, d}).Rows(row0, row1);
  Tensor d_r1 = rows(d_r1_), d_attn = rows(d_attn_);
  Tensor dxs = dx->Rows(s0, s1), dx2 = dxs.Reshaped({(s1 - s0) * l, d});
  MultiHeadAttentionWorkspace ws = mha_ws_.Samples(s0, s1);
  const Tensor xs = x.Rows(s0, s1);
  if (options_.pre_norm) {
    // y = r1 + Dropout(f2): dL/dr1 = dy + LN2's backward of dL/dh.
    Tensor d_h = rows(d_r2_);
    d_h.SetZero();
    FfnBackward(dy2, row0, row1, g, &d_h);
    d_r1.CopyFrom(dy2);
    LayerNormBackward(rows(r1_), w_.ln2_gamma, rows(mean2_), rows(rstd2_), d_h, &d_r1,
                      &g->ln2_gamma, &g->ln2_beta);
    AddTo(d_r1, &dx2);  // the residual
    if (dropping_) Masked(rows(attn_mask_), d_r1, &d_attn);
    const Tensor& da = dropping_ ? d_attn : d_r1;
    const Tensor xn3 = rows(x_norm_).Reshaped({s1 - s0, l, d});
    Tensor d_xn = rows(d_x_norm_), d_xn3 = d_xn.Reshaped({s1 - s0, l, d});
    d_xn.SetZero();
    MultiHeadAttentionBackward(xn3, xn3, mask.Rows(s0, s1), w_.mha, MhaOptions(),
                               da.Reshaped({s1 - s0, l, d}), &ws, &d_xn3, &d_xn3, &g->mha);
    LayerNormBackward(xs.Reshaped({(s1 - s0) * l, d}), w_.ln1_gamma, rows(mean1_), rows(rstd1_),
                      d_xn, &dx2, &g->ln1_gamma, &g->ln1_beta);
    return;
  }
  // d_r2 is dL/dr2 = the residual's part of dL/dh; the FFN's part is added into it below.
  Tensor d_r2 = rows(d_r2_);
  d_r2.SetZero();
  LayerNormBackward(rows(r2_), w_.ln2_gamma, rows(mean2_), rows(rstd2_), dy2, &d_r2, &g->ln2_gamma,
                    &g->ln2_beta);
  FfnBackward(d_r2, row0, row1, g, &d_r2);  // d_r2 is now dL/dh
  d_r1.SetZero();
  LayerNormBackward(rows(r1_), w_.ln1_gamma, rows(mean1_), rows(rstd1_), d_r2, &d_r1, &g->ln1_gamma,
                    &g->ln1_beta);
  AddTo(d_r1, &dx2);  // the residual
  if (dropping_) Masked(rows(attn_mask_), d_r1, &d_attn);
  const Tensor& da = dropping_ ? d_attn : d_r1;
  MultiHeadAttentionBackward(xs, xs, mask.Rows(s0, s1), w_.mha, MhaOptions(),
                             da.Reshaped({s1 - s0, l, d}), &ws, &dxs, &dxs, &g->mha);
}

}  // namespace attnps::models
