// Training losses: binary cross-entropy with logits (CTR), sampled softmax with the log-Q
// correction (retrieval), and the DIEN auxiliary loss.
//
// Shape letters: N samples, B batch, D vector dim, S sampled negatives (shared by the batch),
// T sequence length.
// Each forward returns the scalar mean loss (double) and assigns (=) any tensor it fills; each
// backward takes dloss (the gradient of the objective w.r.t. the returned loss) and accumulates
// (+=) into caller-zeroed gradient buffers; a null gradient pointer skips that gradient.
// Masks are float [B, T]: 1 = valid, 0 = padding.
#ifndef ATTNPS_OPS_LOSS_H_
#define ATTNPS_OPS_LOSS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/tensor.h"

namespace attnps {

// A read-only view of int64 ids; converts implicitly from a std::vector that outlives it.
class Int64Span {
 public:
  Int64Span() = default;
  Int64Span(const int64_t* data, size_t size) : data_(data), size_(size) {}
  Int64Span(const std::vector<int64_t>& v) : data_(v.data()), size_(v.size()) {}  // NOLINT

  const int64_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t operator[](size_t i) const { return data_[i]; }

 private:
  const int64_t* data_ = nullptr;
  size_t size_ = 0;
};

// ---- Binary cross-entropy with logits ----------------------------------------------------------
// loss = sum_i w_i (max(x_i, 0) - x_i y_i + log(1 + exp(-|x_i|))) / N, w_i = 1 when `weights` is
// empty. logits, labels (targets in [0, 1]) and weights are [N].

double BceWithLogitsForward(const Tensor& logits, const Tensor& labels, const Tensor& weights);
// dlogits_i += dloss * w_i * (sigmoid(x_i) - y_i) / N.
void BceWithLogitsBackward(const Tensor& logits, const Tensor& labels, const Tensor& weights,
                           float dloss, Tensor* dlogits);
// probs [N] = sigmoid(logits [N]) (predictions for metrics / serving).
void SigmoidProbabilities(const Tensor& logits, Tensor* probs);

// ---- Sampled softmax with log-Q correction ------------------------------------------------------
// Row b's logits [1 + S]: [u_b . pos_b - log_q_pos_b, u_b . neg_s - log_q_neg_s]; the loss is the
// mean over the batch of the cross-entropy with class 0 (the positive) as the target.

enum class AccidentalHits {
  kKeep,
  kRemove,  // a negative whose id equals the row's positive id gets logit -inf
};

struct SampledSoftmaxOptions {
  AccidentalHits accidental_hits = AccidentalHits::kKeep;
  Int64Span pos_ids;  // [B], read with kRemove
  Int64Span neg_ids;  // [S], read with kRemove
};

struct SampledSoftmaxWorkspace {
  Tensor probs;     // [B, 1+S] forward: softmax of the corrected logits (0 at removed hits)
  Tensor d_logits;  // backward scratch [B, 1+S]

  static SampledSoftmaxWorkspace Allocate(int64_t b, int64_t s, Device device = Device::kCPU);
};

// u, pos [B, D]; neg [S, D]; log_q_pos [B]; log_q_neg [S]. Fills ws->probs; returns the loss.
double SampledSoftmaxForward(const Tensor& u, const Tensor& pos, const Tensor& neg,
                             const Tensor& log_q_pos, const Tensor& log_q_neg,
                             const SampledSoftmaxOptions& options, SampledSoftmaxWorkspace* ws);
// Reads ws->probs of the forward call on the same inputs; accumulates into du, dpos, dneg.
void SampledSoftmaxBackward(const Tensor& u, const Tensor& pos, const Tensor& neg,
                            const Tensor& log_q_pos, const Tensor& log_q_neg, float dloss,
                            SampledSoftmaxWorkspace* ws, Tensor* du, Tensor* dpos, Tensor* dneg);

// ---- DIEN auxiliary loss
// ------------------------------------------------------------------------- h [B, T, D] GRU states,
// e_pos / e_neg [B, T, D] the next clicked item and a sampled negative for each state, mask [B, T]
// valid pairs:
//   L = -sum_{b,t} m_bt [log sigmoid(h_bt . e_pos_bt) + log(1 - sigmoid(h_bt . e_neg_bt))] / sum m,
// and 0 (with zero gradients) when no pair is valid.

double DienAuxLossForward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                          const Tensor& mask);
void DienAuxLossBackward(const Tensor& h, const Tensor& e_pos, const Tensor& e_neg,
                         const Tensor& mask, float dloss, Tensor* dh, Tensor* de_pos,
                         Tensor* de_neg);

}  // namespace attnps

#endif  // ATTNPS_OPS_LOSS_H_
