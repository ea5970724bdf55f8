// EncoderBlock: one post-LayerNorm transformer encoder block over a padded sequence, as torch's
// nn.TransformerEncoderLayer(norm_first = False, activation = relu), without dropout on the
// attention probabilities:
//   h = LN1(x + Dropout(MHA(x, x, mask)))
//   y = LN2(h + Dropout(Dropout(relu(h W1 + b1)) W2 + b2))
// Shape letters: B batch, L sequence length, D model dim, F FFN width, H heads (H divides D).
// Private to worker/models. Not thread-safe; the ops inside it run on the ops' thread pool.
#ifndef ATTNPS_WORKER_MODELS_ENCODER_BLOCK_H_
#define ATTNPS_WORKER_MODELS_ENCODER_BLOCK_H_

#include <cstdint>

#include "ops/attention.h"
#include "ops/tensor.h"
#include "worker/models/param_arena.h"

namespace attnps::models {

struct EncoderBlockOptions {
  int64_t d = 0;
  int64_t heads = 1;
  int64_t ffn = 0;       // F
  float dropout = 0.0f;  // in [0, 1)
  bool causal = false;   // position i attends to j <= i only
};

class EncoderBlock {
 public:
  // Declares the weights in *arena (which must outlive the block), in this order: wq, bq, wk,
  // bk, wv, bv, wo, bo (each [D, D] / [D], torch Linear's init), LN1 gamma (1) and beta (0), W1
  // [D, F], b1 [F], W2 [F, D], b2 [D] (torch Linear's init), LN2 gamma and beta.
  EncoderBlock(const EncoderBlockOptions& options, ParamArena* arena);

  // x [B, L, D], mask [B, L] (1 valid, 0 padding: padding is never attended to) -> y [B, L, D].
  // `training` with dropout > 0 draws the dropout masks from stream `seed` (a pure function of
  // it) and keeps what Backward needs.
  void Forward(const Tensor& x, const Tensor& mask, bool training, uint64_t seed, Tensor* y);
  // After Forward(training = true) on the same x and mask: accumulates (+=) the weight gradients
  // into the arena's grads and d(loss)/dx into *dx, given dy [B, L, D].
  void Backward(const Tensor& x, const Tensor& mask, const Tensor& dy, Tensor* dx);

 private:
  void Resize(int64_t b, int64_t l);
  bool dropping() const { return dropping_; }

  const EncoderBlockOptions options_;
  MultiHeadAttentionParams mha_, mha_grad_;  // views into the arena
  Tensor ln1_gamma_, ln1_beta_, ln2_gamma_, ln2_beta_;
  Tensor d_ln1_gamma_, d_ln1_beta_, d_ln2_gamma_, d_ln2_beta_;
  Tensor w1_, b1_, w2_, b2_, d_w1_, d_b1_, d_w2_, d_b2_;

  // Per-batch workspace, [B*L, width] unless noted; reallocated when B or L changes.
  int64_t ws_b_ = -1, ws_l_ = -1;
  bool dropping_ = false;  // the last Forward applied dropout
  MultiHeadAttentionWorkspace mha_ws_;
  Tensor attn_, attn_mask_, attn_drop_;  // MHA output [B, L, D], its dropout mask and output
  Tensor r1_, h_, mean1_, rstd1_;        // x + Dropout(attn), LN1 output, LN1 statistics
  Tensor f1_, a1_, a1_mask_, a1_drop_;   // h W1 + b1, relu, its dropout mask and output [F]
  Tensor f2_, f2_mask_, f2_drop_;        // a1 W2 + b2, its dropout mask and output
  Tensor r2_, mean2_, rstd2_;            // h + Dropout(f2), LN2 statistics
  Tensor d_r2_, d_f2_, d_a1_, d_f1_, d_r1_, d_attn_;  // backward scratch
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_ENCODER_BLOCK_H_
