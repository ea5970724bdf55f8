// Ops over jagged (values + offsets) histories: the jagged twins of the DIN activation unit
// (ops/din_attention.h) and of MaskedSumPool (ops/pooling.h). Instead of padding every sample to
// the batch's longest history T, the valid positions of all samples are stacked row after row and
// sample b owns rows [offsets[b], offsets[b + 1]); only those N rows are computed.
//
// Shape letters: B batch, N total valid positions (= offsets[B]), D item dim, H1/H2 hidden sizes.
// Outputs assigned (=), gradients accumulated (+=) into caller-zeroed buffers; a null gradient
// pointer skips that gradient. A sample with no rows pools to 0 (like a fully masked padded row).
// Errors: bad offsets (offsets[0] != 0, decreasing, offsets[B] != N) and bad shapes are caller
// bugs and CHECK-fail with the op and every argument's shape, as ShapeCheck does.
// Thread-safety: as the padded ops; a workspace is used by one call at a time.
#ifndef ATTNPS_OPS_JAGGED_H_
#define ATTNPS_OPS_JAGGED_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ops/din_attention.h"
#include "ops/tensor.h"

namespace attnps {

// A non-owning view of B + 1 row offsets, int32 or int64 (the caller keeps them alive).
class JaggedOffsets {
 public:
  JaggedOffsets(const int32_t* offsets, int64_t batch) : i32_(offsets), batch_(batch) {}
  JaggedOffsets(const int64_t* offsets, int64_t batch) : i64_(offsets), batch_(batch) {}
  // batch = size - 1 (an empty vector is treated as B = 0).
  JaggedOffsets(const std::vector<int32_t>& offsets)  // NOLINT: implicit on purpose
      : i32_(offsets.data()), batch_(static_cast<int64_t>(offsets.size()) - 1) {}
  JaggedOffsets(const std::vector<int64_t>& offsets)  // NOLINT: implicit on purpose
      : i64_(offsets.data()), batch_(static_cast<int64_t>(offsets.size()) - 1) {}

  int64_t batch() const { return batch_ < 0 ? 0 : batch_; }
  int64_t operator[](int64_t i) const { return i32_ ? i32_[i] : i64_[i]; }
  int64_t begin(int64_t b) const { return (*this)[b]; }
  int64_t length(int64_t b) const { return (*this)[b + 1] - (*this)[b]; }
  int64_t total() const { return batch_ < 0 ? 0 : (*this)[batch_]; }  // N
  int64_t MaxLength() const;

  // "" when offsets[0] = 0 and they never decrease; otherwise what is wrong, with the index.
  std::string Problem() const;

 private:
  const int32_t* i32_ = nullptr;
  const int64_t* i64_ = nullptr;
  int64_t batch_;
};

// pooled [B, D] = sum over sample b's rows of x [N, D].
void SegmentSumPoolForward(const Tensor& x, const JaggedOffsets& offsets, Tensor* y);
// dx [N, D] += dy[b, :] at every row of sample b.
void SegmentSumPoolBackward(const JaggedOffsets& offsets, const Tensor& dy, Tensor* dx);

// For ops that take the padded layout: padded [B, T, D] (T >= offsets.MaxLength(); zero past each
// sample's length) and the prefix mask [B, T] (1 = valid) of x [N, D].
void JaggedToPadded(const Tensor& x, const JaggedOffsets& offsets, Tensor* padded, Tensor* mask);
// dx [N, D] += the valid positions of dpadded [B, T, D].
void PaddedToJaggedAdd(const Tensor& dpadded, const JaggedOffsets& offsets, Tensor* dx);

// Intermediates of the jagged DIN unit (forward writes, backward reads) plus scratch, with room
// for up to row_capacity() rows and batch_capacity() samples. Allocate once (e.g. N_max = B *
// T_max) and reuse: the forward grows it (Reserve) when a batch needs more, and the backward must
// get the same workspace, untouched, after the forward on the same inputs. Tensors are [capacity,
// ...]; only the leading N (or B) rows are meaningful.
struct JaggedDinAttentionWorkspace {
  Tensor folded_q;     // [D, H1]       Wq + Wd
  Tensor folded_kp;    // [2D, H1]      [Wk - Wd; Wp]
  Tensor q_term;       // [B_max, H1]   q (Wq + Wd) + b1
  Tensor x;            // [N_max, 2D]   [k, q*k] (blocks of short samples only)
  Tensor a1;           // [N_max, H1]
  Tensor a2;           // [N_max, H2]
  Tensor scores;       // [N_max]       raw MLP output
  Tensor d_a1;         // backward scratch [N_max, H1]
  Tensor d_a2;         // backward scratch [N_max, H2]
  Tensor d_x;          // backward scratch [N_max, 2D]
  Tensor d_scores;     // backward scratch [N_max]
  Tensor d_q_term;     // backward scratch [B_max, H1]
  Tensor d_folded_q;   // backward scratch [D, H1]
  Tensor block_grads;  // backward scratch: per-block partial weight gradients, sized on use
  Tensor sample_w;     // scratch [threads, 2 * D * H1]: a sample's first layer and its gradient
  std::vector<int64_t> block_starts;  // first sample of each block of whole samples (+ B)
  Device device = Device::kCPU;       // where the tensors are (and Reserve allocates)

  static JaggedDinAttentionWorkspace Allocate(int64_t n_max, int64_t b_max, int64_t d, int64_t h1,
                                              int64_t h2, Device device = Device::kCPU);
  // Keeps the buffers when they hold (n, b) at sizes (d, h1, h2); otherwise reallocates them, the
  // row buffers to max(n, 1.5 x the old capacity) so that a slowly growing N reallocates rarely.
  void Reserve(int64_t n, int64_t b, int64_t d, int64_t h1, int64_t h2);
  int64_t row_capacity() const { return x.ndim() == 2 ? x.dim(0) : 0; }
  int64_t batch_capacity() const { return q_term.ndim() == 2 ? q_term.dim(0) : 0; }
};

// q [B, D], k [N, D] (sample b's history is rows offsets[b] .. offsets[b + 1]) -> weights [N]
// (the raw scores for kNone, the per-sample softmax for kSoftmax) and pooled [B, D] =
// sum over b's rows of weights * k. Same math as DinAttentionForward on the padded batch with a
// prefix mask of the same lengths.
void JaggedDinAttentionForward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                               const DinAttentionParams& params, const DinAttentionOptions& options,
                               JaggedDinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled);

// Given d_weights [N] (may be empty: no direct use of the weights) and d_pooled [B, D],
// accumulates into dq [B, D], dk [N, D] (nullable) and every tensor of *grads. Reads the workspace
// and `weights` of the forward call on the same inputs.
void JaggedDinAttentionBackward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                                const DinAttentionParams& params,
                                const DinAttentionOptions& options, const Tensor& weights,
                                const Tensor& d_weights, const Tensor& d_pooled,
                                JaggedDinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                                DinAttentionParams* grads);

}  // namespace attnps

#endif  // ATTNPS_OPS_JAGGED_H_
