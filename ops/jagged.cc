#include "ops/jagged.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "ops/blas.h"
#include "ops/device_dispatch.h"
#include "ops/din_unit_kernels.h"
#include "ops/fast_math.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "ops/shape_check.h"
#include "ops/softmax_row.h"

namespace attnps {

using din_unit::AddColumnSums;
using din_unit::BiasActivate;
using din_unit::BlockGradSlots;
using din_unit::FoldFirstLayer;
using din_unit::LayersBackward;
using din_unit::PartialGrads;
using din_unit::ReduceBlockGrads;
using din_unit::UnfoldFirstLayerGrad;
using din_unit::UpperLayersForward;
using din_unit::ZeroedSlot;

int64_t JaggedOffsets::MaxLength() const {
  int64_t longest = 0;
  for (int64_t b = 0; b < batch(); ++b) longest = std::max(longest, length(b));
  return longest;
}

std::string JaggedOffsets::Problem() const {
  if (batch_ < 0) return "offsets with B + 1 entries (got none)";
  if ((*this)[0] != 0) return "offsets[0] = 0 (got " + std::to_string((*this)[0]) + ")";
  for (int64_t b = 0; b < batch_; ++b) {
    if ((*this)[b + 1] < (*this)[b]) {
      return "non-decreasing offsets (offsets[" + std::to_string(b + 1) +
             "]=" + std::to_string((*this)[b + 1]) + " < offsets[" + std::to_string(b) +
             "]=" + std::to_string((*this)[b]) + ")";
    }
  }
  return "";
}

namespace {

// ---------------------------------------------------------------------------------------------
// Segment sum pooling.

struct SegmentSizes {
  int64_t b, n, d;
};

SegmentSizes CheckSegment(ShapeCheck* check, const JaggedOffsets& offsets, const char* x_name,
                          const Tensor* x, const char* y_name, const Tensor& y) {
  const std::string problem = offsets.Problem();
  check->Require(problem.empty(), problem);
  Dim b("B", offsets.batch()), n("N", problem.empty() ? offsets.total() : -1), d("D");
  check->Arg(y_name, y, {&b, &d});
  if (x) check->Arg(x_name, *x, {&n, &d});
  check->Done();
  return {b.value(), offsets.total(), d.value()};
}

inline void Axpy(float m, const float* __restrict x, float* __restrict y, int64_t d) {
  for (int64_t j = 0; j < d; ++j) y[j] += m * x[j];
}

}  // namespace

void SegmentSumPoolForward(const Tensor& x, const JaggedOffsets& offsets, Tensor* y) {
  ShapeCheck check("segment_sum_pool_forward", x.device());
  const SegmentSizes s = CheckSegment(&check, offsets, "x", &x, "y", *y);
  ATTNPS_RUN_ON_CUDA(x, SegmentSumPoolForward(x, offsets, y));
  const float* xd = x.data();
  float* yd = y->data();
  const int64_t cost = s.b > 0 ? 2 * s.d * (s.n / s.b + 1) : 0;
  ParallelFor(s.b, cost, [&](int64_t b) {
    float* yr = yd + b * s.d;
    std::fill(yr, yr + s.d, 0.0f);
    for (int64_t r = offsets[b]; r < offsets[b + 1]; ++r) Axpy(1.0f, xd + r * s.d, yr, s.d);
  });
}

void SegmentSumPoolBackward(const JaggedOffsets& offsets, const Tensor& dy, Tensor* dx) {
  ShapeCheck check("segment_sum_pool_backward", dy.device());
  const SegmentSizes s = CheckSegment(&check, offsets, "dx", dx, "dy", dy);
  if (!dx) return;
  ATTNPS_RUN_ON_CUDA(dy, SegmentSumPoolBackward(offsets, dy, dx));
  const float* g = dy.data();
  float* gx = dx->data();
  const int64_t cost = s.b > 0 ? 2 * s.d * (s.n / s.b + 1) : 0;
  ParallelFor(s.b, cost, [&](int64_t b) {
    for (int64_t r = offsets[b]; r < offsets[b + 1]; ++r)
      Axpy(1.0f, g + b * s.d, gx + r * s.d, s.d);
  });
}

void JaggedToPadded(const Tensor& x, const JaggedOffsets& offsets, Tensor* padded, Tensor* mask) {
  ShapeCheck check("jagged_to_padded", x.device());
  const std::string problem = offsets.Problem();
  check.Require(problem.empty(), problem);
  Dim b("B", offsets.batch()), n("N", problem.empty() ? offsets.total() : -1), d("D"), t("T");
  check.Arg("x", x, {&n, &d}).Arg("padded", *padded, {&b, &t, &d}).Arg("mask", *mask, {&b, &t});
  check.Require(t.value() >= offsets.MaxLength(), "T >= the longest sample");
  check.Done();
  ATTNPS_RUN_ON_CUDA(x, JaggedToPadded(x, offsets, padded, mask));
  const int64_t dim = d.value(), len = t.value();
  padded->SetZero();
  mask->SetZero();
  for (int64_t i = 0; i < b.value(); ++i) {
    const int64_t rows = offsets.length(i);
    std::copy_n(x.data() + offsets[i] * dim, rows * dim, padded->data() + i * len * dim);
    std::fill_n(mask->data() + i * len, rows, 1.0f);
  }
}

void PaddedToJaggedAdd(const Tensor& dpadded, const JaggedOffsets& offsets, Tensor* dx) {
  ShapeCheck check("padded_to_jagged_add", dpadded.device());
  const std::string problem = offsets.Problem();
  check.Require(problem.empty(), problem);
  Dim b("B", offsets.batch()), n("N", problem.empty() ? offsets.total() : -1), d("D"), t("T");
  check.Arg("dpadded", dpadded, {&b, &t, &d}).Arg("dx", *dx, {&n, &d});
  check.Require(t.value() >= offsets.MaxLength(), "T >= the longest sample");
  check.Done();
  ATTNPS_RUN_ON_CUDA(dpadded, PaddedToJaggedAdd(dpadded, offsets, dx));
  const int64_t dim = d.value(), len = t.value();
  for (int64_t i = 0; i < b.value(); ++i) {
    const float* src = dpadded.data() + i * len * dim;
    float* dst = dx->data() + offsets[i] * dim;
    for (int64_t j = 0; j < offsets.length(i) * dim; ++j) dst[j] += src[j];
  }
}

// ---------------------------------------------------------------------------------------------
// The jagged DIN unit. The row kernels are the padded unit's (ops/din_unit_kernels.h).

namespace {

struct Sizes {
  int64_t b, n, d, h1, h2;
};

// Rows per block at most: small enough that a block's activations stay in L2 (as the padded unit).
constexpr int64_t kBlockRows = 256;
// Rows per block at least, when a small batch is split so that every thread gets blocks.
constexpr int64_t kMinBlockRows = 32;
// A block whose samples average at least this many rows computes the first layer one sample at a
// time, k_b M_b with M_b = (Wk - Wd) + diag(q_b) Wp [D, H1]: half the multiply-adds of
// [k, q*k] [Wk - Wd; Wp] and no [n, 2D] copy. Blocks of shorter samples batch the whole block
// through [k, q*k] instead (a GEMM per sample of a few rows costs more than it saves).
constexpr int64_t kPerSampleMinMeanRows = 16;

bool PerSampleFirstLayer(const JaggedOffsets& offsets, int64_t b0, int64_t b1) {
  return offsets.begin(b1) - offsets.begin(b0) >= kPerSampleMinMeanRows * (b1 - b0);
}

// m [D, H1] = (Wk - Wd) + diag(q) Wp, from folded_kp = [Wk - Wd; Wp].
void SampleFirstLayer(const float* folded_kp, const float* q, int64_t d, int64_t h1, float* m) {
  const float* wp = folded_kp + d * h1;
  for (int64_t j = 0; j < d; ++j) {
    const float qj = q[j];
    const float* wkd_row = folded_kp + j * h1;
    const float* wp_row = wp + j * h1;
    float* m_row = m + j * h1;
    for (int64_t h = 0; h < h1; ++h) m_row[h] = wkd_row[h] + qj * wp_row[h];
  }
}

// This thread's [2, D, H1] scratch: a sample's M_b and its gradient.
float* SampleScratch(JaggedDinAttentionWorkspace* ws, const Sizes& s) {
  return ws->sample_w.data() + omp_get_thread_num() * 2 * s.d * s.h1;
}

Sizes CheckArgs(ShapeCheck* check, const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                const DinAttentionParams& p, const Tensor& weights) {
  const std::string problem = offsets.Problem();
  check->Require(problem.empty(), problem);
  Dim b("B", offsets.batch()), n("N", problem.empty() ? offsets.total() : -1), d("D"), d4("4D"),
      h1("H1"), h2("H2"), one("1", 1);
  check->Arg("q", q, {&b, &d}).Arg("k", k, {&n, &d});
  check->Arg("w1", p.w1, {&d4, &h1}).Arg("b1", p.b1, {&h1}).Arg("w2", p.w2, {&h1, &h2});
  check->Arg("b2", p.b2, {&h2}).Arg("w3", p.w3, {&h2, &one}).Arg("b3", p.b3, {&one});
  check->Require(d4.value() == 4 * d.value(), "w1 rows = 4 * D (q, k, q-k, q*k)");
  check->Arg("weights", weights, {&n});
  return {b.value(), n.value(), d.value(), h1.value(), h2.value()};
}

// Splits the samples into blocks of whole samples of at most `target` rows (a longer sample is a
// block of its own); target shrinks for small N so that every thread gets about two blocks.
void PlanBlocks(const JaggedOffsets& offsets, const Sizes& s, std::vector<int64_t>* starts) {
  const int64_t threads = std::max(1, omp_get_max_threads());
  const int64_t target =
      std::clamp<int64_t>((s.n + 2 * threads - 1) / (2 * threads), kMinBlockRows, kBlockRows);
  starts->clear();
  starts->push_back(0);
  int64_t rows = 0;
  for (int64_t b = 0; b < s.b; ++b) {
    const int64_t len = offsets.length(b);
    if (rows > 0 && rows + len > target) {
      starts->push_back(b);
      rows = 0;
    }
    rows += len;
  }
  starts->push_back(s.b);
}

// Calls body(first_sample, end_sample, block) for the planned blocks, in parallel.
template <typename Body>
void ForEachBlock(const std::vector<int64_t>& starts, const Body& body) {
  const int64_t blocks = static_cast<int64_t>(starts.size()) - 1;
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (int64_t i = 0; i < blocks; ++i) body(starts[i], starts[i + 1], i);
}

// d_scores of samples [b0, b1) from the weights' total gradient; adds the pooling's part of dk.
void BackwardThroughPooling(const Tensor& k, const JaggedOffsets& offsets, const Tensor& weights,
                            const Tensor& d_weights, const Tensor& d_pooled,
                            AttentionNormalization norm, const Sizes& s, int64_t b0, int64_t b1,
                            Tensor* dk, float* d_scores) {
  const int64_t d = s.d;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t r0 = offsets.begin(b), len = offsets.length(b);
    const float* w = weights.data() + r0;
    const float* dp = d_pooled.data() + b * d;
    float* ds = d_scores + r0;
    for (int64_t i = 0; i < len; ++i) {
      const float* kr = k.data() + (r0 + i) * d;
      ds[i] = (d_weights.empty() ? 0.0f : d_weights[r0 + i]) + Dot(dp, kr, d);
      if (dk) {
        float* dkr = dk->data() + (r0 + i) * d;
        for (int64_t j = 0; j < d; ++j) dkr[j] += w[i] * dp[j];
      }
    }
    if (norm == AttentionNormalization::kSoftmax && len > 0) {
      SoftmaxGradRow<GradMode::kAssign>(w, ds, len, 1.0f, ds);
    }
  }
}

// Sample b's first layer backward when it was computed per sample (PerSampleFirstLayer): from
// dz1 (in ws->d_a1), adds d(Wk - Wd) = dM and dWp = diag(q_b) dM to part.kp, with
// dM = k_b^T dz1_b, and accumulates dq_b += rowsum(dM * Wp) and dk_b += dz1_b M_b^T.
void SampleFirstLayerBackward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                              const Sizes& s, int64_t b, JaggedDinAttentionWorkspace* ws,
                              const PartialGrads& part, Tensor* dq, Tensor* dk) {
  const int64_t d = s.d, h1 = s.h1, rb = offsets.begin(b), len = offsets.length(b);
  if (len == 0) return;
  float* m = SampleScratch(ws, s);
  float* dm = m + d * h1;
  const float* kb = k.data() + rb * d;
  const float* qb = q.data() + b * d;
  const float* dz = ws->d_a1.data() + rb * h1;
  const float* wp = ws->folded_kp.data() + d * h1;
  Gemm(true, false, d, h1, len, 1.0f, kb, d, dz, h1, 0.0f, dm, h1);
  for (int64_t j = 0; j < d; ++j) {
    const float qj = qb[j];
    const float* dm_row = dm + j * h1;
    const float* wp_row = wp + j * h1;
    float* d_wkd = part.kp + j * h1;
    float* d_wp = part.kp + (d + j) * h1;
    for (int64_t h = 0; h < h1; ++h) {
      d_wkd[h] += dm_row[h];
      d_wp[h] += qj * dm_row[h];
    }
    if (dq) (*dq)[b * d + j] += Dot(dm_row, wp_row, h1);
  }
  if (!dk) return;
  SampleFirstLayer(ws->folded_kp.data(), qb, d, h1, m);
  Gemm(false, true, len, d, h1, 1.0f, dz, h1, m, h1, 1.0f, dk->data() + rb * d, d);
}

bool HasSizes(const Tensor& t, int64_t rows, int64_t cols) {
  return t.ndim() == 2 && t.dim(0) >= rows && t.dim(1) == cols;
}

}  // namespace

JaggedDinAttentionWorkspace JaggedDinAttentionWorkspace::Allocate(int64_t n_max, int64_t b_max,
                                                                  int64_t d, int64_t h1, int64_t h2,
                                                                  Device device) {
  JaggedDinAttentionWorkspace ws;
  ws.device = device;
  ws.folded_q = Tensor::Empty({d, h1}, device);
  ws.folded_kp = Tensor::Empty({2 * d, h1}, device);
  ws.d_folded_q = Tensor::Empty({d, h1}, device);
  ws.q_term = Tensor::Empty({b_max, h1}, device);
  ws.d_q_term = Tensor::Empty({b_max, h1}, device);
  ws.x = Tensor::Empty({n_max, 2 * d}, device);
  ws.a1 = Tensor::Empty({n_max, h1}, device);
  ws.a2 = Tensor::Empty({n_max, h2}, device);
  ws.scores = Tensor::Empty({n_max}, device);
  ws.d_a1 = Tensor::Empty({n_max, h1}, device);
  ws.d_a2 = Tensor::Empty({n_max, h2}, device);
  ws.d_x = Tensor::Empty({n_max, 2 * d}, device);
  ws.d_scores = Tensor::Empty({n_max}, device);
  return ws;
}

void JaggedDinAttentionWorkspace::Reserve(int64_t n, int64_t b, int64_t d, int64_t h1, int64_t h2) {
  const bool same_sizes = HasSizes(folded_q, d, h1) && folded_q.dim(0) == d &&
                          HasSizes(a2, 0, h2) && HasSizes(q_term, 0, h1);
  if (!same_sizes) {
    *this = Allocate(n, b, d, h1, h2, device);
    return;
  }
  if (row_capacity() < n) {
    const int64_t rows = std::max(n, row_capacity() + row_capacity() / 2);
    x = Tensor::Empty({rows, 2 * d}, device);
    a1 = Tensor::Empty({rows, h1}, device);
    a2 = Tensor::Empty({rows, h2}, device);
    scores = Tensor::Empty({rows}, device);
    d_a1 = Tensor::Empty({rows, h1}, device);
    d_a2 = Tensor::Empty({rows, h2}, device);
    d_x = Tensor::Empty({rows, 2 * d}, device);
    d_scores = Tensor::Empty({rows}, device);
  }
  if (batch_capacity() < b) {
    const int64_t rows = std::max(b, batch_capacity() + batch_capacity() / 2);
    q_term = Tensor::Empty({rows, h1}, device);
    d_q_term = Tensor::Empty({rows, h1}, device);
  }
}

void JaggedDinAttentionForward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                               const DinAttentionParams& params, const DinAttentionOptions& options,
                               JaggedDinAttentionWorkspace* ws, Tensor* weights, Tensor* pooled) {
  Sizes s;
  {
    ShapeCheck check("jagged_din_attention_forward", q.device());
    s = CheckArgs(&check, q, k, offsets, params, *weights);
    Dim b("B", s.b), d("D", s.d);
    check.Arg("pooled", *pooled, {&b, &d}).Done();
  }
  if (s.b == 0) return;
  if (ws->device != q.device()) {  // a workspace made for the other device: start over here
    *ws = JaggedDinAttentionWorkspace();
    ws->device = q.device();
  }
  ws->Reserve(s.n, s.b, s.d, s.h1, s.h2);
  if (q.device() == Device::kCUDA) ws->block_starts = {0, s.b};  // one block: all rows at once
  ATTNPS_RUN_ON_CUDA(
      q, JaggedDinAttentionForward(q, k, offsets, params, options, ws, weights, pooled));
  const int64_t d = s.d, d2 = 2 * s.d, h1 = s.h1, h2 = s.h2;
  FoldFirstLayer(params.w1, s, ws);
  ws->sample_w.EnsureCapacity({std::max(1, omp_get_max_threads()), 2 * d * h1});
  Tensor q_term = ws->q_term.Rows(0, s.b);
  LinearForward(q, ws->folded_q, params.b1, &q_term);
  PlanBlocks(offsets, s, &ws->block_starts);
  ForEachBlock(ws->block_starts, [&](int64_t b0, int64_t b1, int64_t) {
    const int64_t r0 = offsets.begin(b0), n = offsets.begin(b1) - r0;
    if (n > 0) {
      float* a1 = ws->a1.data() + r0 * h1;
      if (PerSampleFirstLayer(offsets, b0, b1)) {
        float* m = SampleScratch(ws, s);
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t rb = offsets.begin(b), len = offsets.length(b);
          if (len == 0) continue;
          SampleFirstLayer(ws->folded_kp.data(), q.data() + b * d, d, h1, m);
          Gemm(false, false, len, h1, d, 1.0f, k.data() + rb * d, d, m, h1, 0.0f,
               ws->a1.data() + rb * h1, h1);
        }
      } else {
        float* x = ws->x.data() + r0 * d2;
        for (int64_t b = b0; b < b1; ++b) {
          const float* qb = q.data() + b * d;
          for (int64_t r = offsets.begin(b); r < offsets.begin(b + 1); ++r) {
            const float* kr = k.data() + r * d;
            float* xr = x + (r - r0) * d2;
            for (int64_t j = 0; j < d; ++j) {
              xr[j] = kr[j];
              xr[d + j] = qb[j] * kr[j];
            }
          }
        }
        Gemm(false, false, n, h1, d2, 1.0f, x, d2, ws->folded_kp.data(), h1, 0.0f, a1, h1);
      }
      for (int64_t b = b0; b < b1; ++b) {
        const float* qt = ws->q_term.data() + b * h1;
        for (int64_t r = offsets.begin(b); r < offsets.begin(b + 1); ++r) {
          BiasActivate(ws->a1.data() + r * h1, qt, h1, options.activation);
        }
      }
      UpperLayersForward(a1, n, params, s, options.activation, ws->a2.data() + r0 * h2,
                         ws->scores.data() + r0);
    }
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t rb = offsets.begin(b), len = offsets.length(b);
      float* w = weights->data() + rb;
      const float* sc = ws->scores.data() + rb;
      if (options.normalization == AttentionNormalization::kNone) {
        std::copy(sc, sc + len, w);
      } else if (len > 0) {
        SoftmaxRow(sc, nullptr, len, len, 1.0f, w);
      }
      float* out = pooled->data() + b * d;
      std::fill(out, out + d, 0.0f);
      for (int64_t i = 0; i < len; ++i) Axpy(w[i], k.data() + (rb + i) * d, out, d);
    }
  });
}

void JaggedDinAttentionBackward(const Tensor& q, const Tensor& k, const JaggedOffsets& offsets,
                                const DinAttentionParams& params,
                                const DinAttentionOptions& options, const Tensor& weights,
                                const Tensor& d_weights, const Tensor& d_pooled,
                                JaggedDinAttentionWorkspace* ws, Tensor* dq, Tensor* dk,
                                DinAttentionParams* grads) {
  Sizes s;
  {
    ShapeCheck check("jagged_din_attention_backward", q.device());
    s = CheckArgs(&check, q, k, offsets, params, weights);
    Dim b("B", s.b), n("N", s.n), d("D", s.d);
    check.Optional("d_weights", d_weights, {&n}).Arg("d_pooled", d_pooled, {&b, &d});
    if (dq) check.Like("dq", *dq, q);
    if (dk) check.Like("dk", *dk, k);
    check.Like("grads.w1", grads->w1, params.w1).Like("grads.b1", grads->b1, params.b1);
    check.Like("grads.w2", grads->w2, params.w2).Like("grads.b2", grads->b2, params.b2);
    check.Like("grads.w3", grads->w3, params.w3).Like("grads.b3", grads->b3, params.b3);
    check.Require(s.b == 0 || (HasSizes(ws->folded_q, s.d, s.h1) && ws->folded_q.dim(0) == s.d &&
                               HasSizes(ws->x, s.n, 2 * s.d) && HasSizes(ws->a1, s.n, s.h1) &&
                               HasSizes(ws->a2, s.n, s.h2) && HasSizes(ws->q_term, s.b, s.h1) &&
                               HasSizes(ws->d_q_term, s.b, s.h1) && ws->block_starts.size() >= 2 &&
                               ws->block_starts.back() == s.b && ws->device == q.device()),
                  "the workspace of the forward call on this batch");
    check.Done();
  }
  if (s.b == 0) return;
  ATTNPS_RUN_ON_CUDA(q, JaggedDinAttentionBackward(q, k, offsets, params, options, weights,
                                                   d_weights, d_pooled, ws, dq, dk, grads));
  const int64_t d = s.d, d2 = 2 * s.d, h1 = s.h1, h2 = s.h2;
  const DinActivation act = options.activation;
  float* block_grads = BlockGradSlots(s, static_cast<int64_t>(ws->block_starts.size()) - 1, ws);
  ws->sample_w.EnsureCapacity({std::max(1, omp_get_max_threads()), 2 * d * h1});
  float* dqt = ws->d_q_term.data();
  ForEachBlock(ws->block_starts, [&](int64_t b0, int64_t b1, int64_t block) {
    const PartialGrads part = ZeroedSlot(block_grads, s, block);
    const int64_t r0 = offsets.begin(b0), n = offsets.begin(b1) - r0;
    std::fill(dqt + b0 * h1, dqt + b1 * h1, 0.0f);
    if (n == 0) return;
    float* ds = ws->d_scores.data() + r0;
    BackwardThroughPooling(k, offsets, weights, d_weights, d_pooled, options.normalization, s, b0,
                           b1, dk, ws->d_scores.data());
    float* dz1 = ws->d_a1.data() + r0 * h1;
    const bool per_sample = PerSampleFirstLayer(offsets, b0, b1);
    LayersBackward(ds, per_sample ? nullptr : ws->x.data() + r0 * d2, ws->a1.data() + r0 * h1,
                   ws->a2.data() + r0 * h2, n, params, s, act, part, ws->d_a2.data() + r0 * h2,
                   dz1);
    for (int64_t b = b0; b < b1; ++b) {
      AddColumnSums(ws->d_a1.data() + offsets.begin(b) * h1, offsets.length(b), h1, dqt + b * h1);
    }
    if (per_sample) {
      for (int64_t b = b0; b < b1; ++b)
        SampleFirstLayerBackward(q, k, offsets, s, b, ws, part, dq, dk);
      return;
    }
    if (!dq && !dk) return;
    float* dx = ws->d_x.data() + r0 * d2;
    Gemm(false, true, n, d2, h1, 1.0f, dz1, h1, ws->folded_kp.data(), h1, 0.0f, dx, d2);
    for (int64_t b = b0; b < b1; ++b) {
      const float* qb = q.data() + b * d;
      for (int64_t r = offsets.begin(b); r < offsets.begin(b + 1); ++r) {
        const float* g = dx + (r - r0) * d2;
        if (dk) {
          float* dkr = dk->data() + r * d;
          for (int64_t j = 0; j < d; ++j) dkr[j] += g[j] + g[d + j] * qb[j];
        }
        if (dq) {
          const float* kr = k.data() + r * d;
          float* dqb = dq->data() + b * d;
          for (int64_t j = 0; j < d; ++j) dqb[j] += g[d + j] * kr[j];
        }
      }
    }
  });
  const PartialGrads sum = ReduceBlockGrads(s, ws, grads);
  AddColumnSums(dqt, s.b, h1, grads->b1.data());
  Gemm(true, false, d, h1, s.b, 1.0f, q.data(), d, dqt, h1, 0.0f, ws->d_folded_q.data(), h1);
  UnfoldFirstLayerGrad(ws->d_folded_q.data(), sum.kp, s, &grads->w1);
  if (dq)
    Gemm(false, true, s.b, d, h1, 1.0f, dqt, h1, ws->folded_q.data(), h1, 1.0f, dq->data(), d);
}

}  // namespace attnps
