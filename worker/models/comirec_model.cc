// ComiRec (Cen et al., KDD'20): K interests from the history, padded to T = data.max_history
// (positions counted from the oldest kept item).
//   ComiRec-SA: ops/multi_interest.h's self-attentive extraction, Da = attention_hidden (0: 4 D),
//               P [T, D] ~ U(+-0.01 sqrt 3), W1 [D, Da] and W2 [Da, K] torch Linear's init.
//   ComiRec-DR: u_hat = W[t, k] e_t (W [T, K, D, D] ~ U(+-sqrt 3): unit variance, as ComiRec's
//               N(0, 1)), routing_iterations rounds of routing by agreement, v = squash(s).
#include <glog/logging.h>

#include <cmath>
#include <memory>

#include "ops/jagged.h"
#include "ops/multi_interest.h"
#include "worker/models/param_arena.h"
#include "worker/models/retrieval_internal.h"

namespace attnps::models {
namespace {

// The padded history [B, T, D] and its mask, shared by both variants.
class PaddedHistory {
 public:
  PaddedHistory(int64_t t, int64_t d) : t_(t), d_(d) {}
  // Pads in.history; true when the batch size changed (workspaces need resizing).
  bool Pad(const RetrievalInputs& in) {
    const JaggedOffsets offsets(in.history_offsets);
    CHECK_LE(offsets.MaxLength(), t_) << "ComiRec: a history longer than data.max_history";
    const bool resized = offsets.batch() != b_;
    if (resized) {
      b_ = offsets.batch();
      padded_ = Tensor::Zeros({b_, t_, d_});
      d_padded_ = Tensor::Zeros({b_, t_, d_});
      mask_ = Tensor::Zeros({b_, t_});
    }
    JaggedToPadded(in.history, offsets, &padded_, &mask_);
    return resized;
  }
  // dhistory += the valid rows of d_padded().
  void Unpad(const RetrievalInputs& in, Tensor* dhistory) const {
    PaddedToJaggedAdd(d_padded_, JaggedOffsets(in.history_offsets), dhistory);
  }
  int64_t b() const { return b_; }
  const Tensor& padded() const { return padded_; }
  const Tensor& mask() const { return mask_; }
  Tensor& d_padded() { return d_padded_; }

 private:
  const int64_t t_, d_;
  int64_t b_ = -1;
  Tensor padded_, d_padded_, mask_;
};

constexpr float kSqrt3 = 1.7320508f;

class ComiRecSaModel final : public RetrievalModel {
 public:
  ComiRecSaModel(const config::ComiRecSaModel& c, const RetrievalModelDims& dims, uint64_t seed)
      : t_(dims.max_history),
        d_(dims.item_dim),
        k_(c.interests()),
        da_(c.attention_hidden() > 0 ? c.attention_hidden() : 4 * dims.item_dim),
        history_(t_, d_) {
    arena_.AddParam({t_, d_}, {ParamInit::Kind::kUniform, 0.01f * kSqrt3}, &p_.position,
                    &g_.position);
    arena_.AddParam({d_, da_}, ParamInit::LinearLike(d_), &p_.w1, &g_.w1);
    arena_.AddParam({da_, k_}, ParamInit::LinearLike(da_), &p_.w2, &g_.w2);
    arena_.Allocate(seed);
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }
  int interests() const override { return static_cast<int>(k_); }

  void Forward(const RetrievalInputs& in, bool training, uint64_t, Tensor* out) override {
    if (history_.Pad(in)) ws_ = ComiRecSaWorkspace::Allocate(history_.b(), t_, d_, da_, k_);
    out->EnsureShape({history_.b(), k_, d_});
    ComiRecSaForward(history_.padded(), history_.mask(), p_, &ws_, out);
    trained_batch_ = training ? history_.b() : -1;
  }

  void Backward(const RetrievalInputs& in, const Tensor& dout, Tensor* dhistory) override {
    CHECK_EQ(trained_batch_, history_.b()) << "ComiRec-SA: Backward needs Forward(training)";
    history_.d_padded().SetZero();
    ComiRecSaBackward(history_.padded(), history_.mask(), p_, dout, &ws_, &history_.d_padded(),
                      &g_);
    history_.Unpad(in, dhistory);
  }

 private:
  const int64_t t_, d_, k_, da_;
  ParamArena arena_;
  ComiRecSaParams p_, g_;
  PaddedHistory history_;
  ComiRecSaWorkspace ws_;
  int64_t trained_batch_ = -1;
};

class ComiRecDrModel final : public RetrievalModel {
 public:
  ComiRecDrModel(const config::ComiRecDrModel& c, const RetrievalModelDims& dims, uint64_t seed)
      : t_(dims.max_history),
        d_(dims.item_dim),
        k_(c.interests()),
        iterations_(c.routing_iterations()),
        history_(t_, d_) {
    arena_.AddParam({t_, k_, d_, d_}, {ParamInit::Kind::kUniform, kSqrt3}, &w_, &dw_);
    arena_.Allocate(seed);
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }
  int interests() const override { return static_cast<int>(k_); }

  void Forward(const RetrievalInputs& in, bool training, uint64_t, Tensor* out) override {
    if (history_.Pad(in)) {
      const int64_t b = history_.b();
      u_hat_ = Tensor::Zeros({b, t_, k_, d_});
      d_u_hat_ = Tensor::Zeros({b, t_, k_, d_});
      coupling_ = Tensor::Zeros({b, k_, t_});
      s_ = Tensor::Zeros({b, k_, d_});
    }
    BilinearCapsuleMapForward(history_.padded(), w_, &u_hat_);
    DynamicRoutingCoefficients(u_hat_, history_.mask(), iterations_, &coupling_);
    out->EnsureShape({history_.b(), k_, d_});
    RoutedCapsulesForward(u_hat_, coupling_, &s_, out);
    trained_batch_ = training ? history_.b() : -1;
  }

  void Backward(const RetrievalInputs& in, const Tensor& dout, Tensor* dhistory) override {
    CHECK_EQ(trained_batch_, history_.b()) << "ComiRec-DR: Backward needs Forward(training)";
    d_u_hat_.SetZero();
    RoutedCapsulesBackward(u_hat_, coupling_, s_, dout, &d_u_hat_);
    history_.d_padded().SetZero();
    BilinearCapsuleMapBackward(history_.padded(), w_, d_u_hat_, &history_.d_padded(), &dw_);
    history_.Unpad(in, dhistory);
  }

 private:
  const int64_t t_, d_, k_;
  const int iterations_;
  ParamArena arena_;
  Tensor w_, dw_;
  PaddedHistory history_;
  Tensor u_hat_, d_u_hat_, coupling_, s_;
  int64_t trained_batch_ = -1;
};

constexpr int kMaxInterests = 256;

void CheckSa(const config::ModelConfig& config, const RetrievalModelDims&, config::Problems* p) {
  const config::ComiRecSaModel& c = config.comirec_sa();
  p->PositiveAtMost("model.comirec_sa.interests", c.interests(), kMaxInterests);
  p->NonNegativeAtMost("model.comirec_sa.attention_hidden", c.attention_hidden(),
                       config::kMaxLayerSize);
}

void CheckDr(const config::ModelConfig& config, const RetrievalModelDims& dims,
             config::Problems* p) {
  const config::ComiRecDrModel& c = config.comirec_dr();
  p->PositiveAtMost("model.comirec_dr.interests", c.interests(), kMaxInterests);
  p->PositiveAtMost("model.comirec_dr.routing_iterations", c.routing_iterations(), 100);
  const double weights =
      static_cast<double>(dims.max_history) * c.interests() * dims.item_dim * dims.item_dim;
  if (weights > (1u << 30)) {
    p->Add("model.comirec_dr.interests",
           "the bilinear map W [T, K, D, D] would hold " + std::to_string(weights) +
               " floats (T = data.max_history, D = the item dim), more than 2^30");
  }
}

}  // namespace

RetrievalModelKind ComiRecSaKind() {
  return {"comirec_sa", CheckSa,
          [](const config::ModelConfig& c, const RetrievalModelDims& dims,
             uint64_t seed) -> std::unique_ptr<RetrievalModel> {
            return std::make_unique<ComiRecSaModel>(c.comirec_sa(), dims, seed);
          }};
}

RetrievalModelKind ComiRecDrKind() {
  return {"comirec_dr", CheckDr,
          [](const config::ModelConfig& c, const RetrievalModelDims& dims,
             uint64_t seed) -> std::unique_ptr<RetrievalModel> {
            return std::make_unique<ComiRecDrModel>(c.comirec_dr(), dims, seed);
          }};
}

}  // namespace attnps::models
