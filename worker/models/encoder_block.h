// EncoderBlock: one transformer encoder block over a padded sequence, as torch's
// nn.TransformerEncoderLayer(activation = relu), without dropout on the attention probabilities.
// Post-LayerNorm (norm_first = False, the default):
//   h = LN1(x + Dropout(MHA(x, x, mask)))
//   y = LN2(h + Dropout(Dropout(relu(h W1 + b1)) W2 + b2))
// Pre-LayerNorm (pre_norm, as norm_first = True):
//   h = x + Dropout(MHA(LN1(x), LN1(x), mask))
//   y = h + Dropout(Dropout(relu(LN2(h) W1 + b1)) W2 + b2)
// Shape letters: B batch, L sequence length, D model dim, F FFN width, H heads (H divides D).
// The block runs over chunks of kSamplesPerChunk samples in parallel, each chunk's whole forward
// (or backward) on one thread while its rows are in cache; each chunk's weight gradients go to
// its own buffer, summed in chunk order, so the results do not depend on the thread count.
// Private to worker/models. Not thread-safe; the chunks run on the ops' thread pool.
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
  int64_t ffn = 0;        // F
  float dropout = 0.0f;   // in [0, 1)
  bool causal = false;    // position i attends to j <= i only
  bool pre_norm = false;  // pre-LayerNorm (see above); the weights and dropout masks are the same
};

class EncoderBlock {
 public:
  static constexpr int64_t kSamplesPerChunk = 32;

  // Declares the weights in *arena (which must outlive the block), in this order: wq, bq, wk,
  // bk, wv, bv, wo, bo (each [D, D] / [D], torch Linear's init), LN1 gamma (1) and beta (0), W1
  // [D, F], b1 [F], W2 [F, D], b2 [D] (torch Linear's init), LN2 gamma and beta.
  EncoderBlock(const EncoderBlockOptions& options, ParamArena* arena);

  // x [B, L, D], mask [B, L] (1 valid, 0 padding: padding is never attended to) -> y [B, L, D].
  // `training` with dropout > 0 draws the dropout masks from stream `seed` (a pure function of
  // it, the same in both norm placements) and keeps what Backward needs.
  void Forward(const Tensor& x, const Tensor& mask, bool training, uint64_t seed, Tensor* y);
  // After Forward(training = true) on the same x and mask: accumulates (+=) the weight gradients
  // into the arena's grads and d(loss)/dx into *dx, given dy [B, L, D].
  void Backward(const Tensor& x, const Tensor& mask, const Tensor& dy, Tensor* dx);

 private:
  // The block's weights; the gradients in the same struct, shaped like them.
  struct Weights {
    MultiHeadAttentionParams mha;
    Tensor ln1_gamma, ln1_beta, w1, b1, w2, b2, ln2_gamma, ln2_beta;
    template <class F>
    void ForEach(F f);
  };

  void Resize(int64_t b, int64_t l);
  MultiHeadAttentionOptions MhaOptions() const;
  // Samples [s0, s1) of the batch.
  void ForwardChunk(const Tensor& x, const Tensor& mask, uint64_t seed, int64_t s0, int64_t s1,
                    Tensor* y);
  void BackwardChunk(const Tensor& x, const Tensor& mask, const Tensor& dy, int64_t s0, int64_t s1,
                     Weights* grads, Tensor* dx);
  // The FFN of rows [row0, row1): f2_ = Dropout(relu(h_ W1 + b1)) W2 + b2, keeping f1_, a1_ and
  // (dropping) a1_mask_, a1_drop_.
  void FfnForward(uint64_t seed, int64_t row0, int64_t row1);
  // Its backward given d_out = dL/d(Dropout(f2)) of those rows: accumulates into *g and *d_h
  // (dL/dh_; it may be d_out's buffer: d_out is read first).
  void FfnBackward(const Tensor& d_out, int64_t row0, int64_t row1, Weights* g, Tensor* d_h);
  // out = residual + Dropout(branch) (the branch itself when not dropping), the mask into *mask;
  // first_index: the flat index of branch's first element in the whole batch.
  void AddDropped(const Tensor& residual, const Tensor& branch, uint64_t key, int64_t first_index,
                  Tensor* mask, Tensor* out) const;
  // The gradients of chunk c: views into chunk_grads_ laid out as the arena's grads_.
  Weights ChunkGrads(int64_t c);

  const EncoderBlockOptions options_;
  Weights w_, grads_;  // views into the arena

  // Per-batch workspace, [B*L, width] unless noted; reallocated when B or L changes.
  int64_t ws_b_ = -1, ws_l_ = -1;
  bool dropping_ = false;  // the last Forward applied dropout
  MultiHeadAttentionWorkspace mha_ws_;
  Tensor x_norm_;                       // pre-LN only: LN1(x), the MHA's input
  Tensor attn_, attn_mask_;             // MHA output [B, L, D], its dropout mask
  Tensor r1_, mean1_, rstd1_;           // x + Dropout(attn), LN1 statistics [B*L] (of r1 or x)
  Tensor h_;                            // the FFN's input: LN1(r1) post-LN, LN2(r1) pre-LN
  Tensor f1_, a1_, a1_mask_, a1_drop_;  // h W1 + b1, relu, its dropout mask and output [F]
  Tensor f2_, f2_mask_;                 // a1 W2 + b2, its dropout mask
  Tensor r2_, mean2_, rstd2_;  // h + Dropout(f2) (post-LN only), LN2 statistics (of r2 or r1)
  Tensor d_r2_, d_f2_, d_a1_, d_f1_, d_r1_, d_attn_;  // backward scratch
  Tensor d_x_norm_;                                   // backward scratch, pre-LN only
  Tensor chunk_grads_;                                // [chunks, span of grads_], training only
  float* grads_begin_ = nullptr;                      // the first float of grads_ in the arena
  int64_t grads_span_ = 0;  // floats from grads_begin_ to the end of grads_
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_ENCODER_BLOCK_H_
