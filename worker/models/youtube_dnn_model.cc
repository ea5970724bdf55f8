// YouTube-DNN (Covington et al., RecSys'16) as ComiRec's baseline: the mean of the history rows,
// hidden ReLU layers (model.youtube_dnn.hidden), then a Linear layer to D: one interest.
//   x_0 = mean_t E[b, t]   x_l = relu(x_{l-1} W_l + b_l)   u = x_L W_out + b_out   [B, 1, D]
#include <glog/logging.h>

#include <memory>
#include <vector>

#include "ops/activation.h"
#include "ops/jagged.h"
#include "ops/linear.h"
#include "worker/models/param_arena.h"
#include "worker/models/retrieval_internal.h"

namespace attnps::models {
namespace {

class YoutubeDnnModel final : public RetrievalModel {
 public:
  YoutubeDnnModel(const config::YoutubeDnnModel& config, const RetrievalModelDims& dims,
                  uint64_t seed)
      : d_(dims.item_dim) {
    int64_t in = d_;
    std::vector<int64_t> widths(config.hidden().begin(), config.hidden().end());
    widths.push_back(d_);
    layers_.resize(widths.size());
    for (size_t l = 0; l < widths.size(); ++l) {
      Layer& layer = layers_[l];
      layer.in = in;
      layer.out = widths[l];
      arena_.AddParam({in, layer.out}, ParamInit::LinearLike(in), &layer.w, &layer.dw);
      arena_.AddParam({layer.out}, ParamInit::LinearLike(in), &layer.b, &layer.db);
      in = layer.out;
    }
    arena_.Allocate(seed);
  }

  Tensor& params() override { return arena_.params(); }
  Tensor& grads() override { return arena_.grads(); }
  Tensor& buffers() override { return arena_.buffers(); }
  int interests() const override { return 1; }

  void Forward(const RetrievalInputs& in, bool training, uint64_t, Tensor* out) override {
    const JaggedOffsets offsets(in.history_offsets);
    const int64_t b = offsets.batch();
    Resize(b);
    SegmentSumPoolForward(in.history, offsets, &pooled_);
    for (int64_t i = 0; i < b; ++i) {
      const int64_t len = offsets.length(i);
      const float scale = len > 0 ? 1.0f / static_cast<float>(len) : 0.0f;
      for (int64_t j = 0; j < d_; ++j) pooled_.data()[i * d_ + j] *= scale;
    }
    const Tensor* x = &pooled_;
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& layer = layers_[l];
      LinearForward(*x, layer.w, layer.b, &layer.z);
      const bool last = l + 1 == layers_.size();
      if (!last) ReluForward(layer.z, &layer.a);
      x = last ? &layer.z : &layer.a;
    }
    out->EnsureShape({b, 1, d_});
    std::copy(x->data(), x->data() + b * d_, out->data());
    trained_batch_ = training ? b : -1;
  }

  void Backward(const RetrievalInputs& in, const Tensor& dout, Tensor* dhistory) override {
    const JaggedOffsets offsets(in.history_offsets);
    const int64_t b = offsets.batch();
    CHECK_EQ(trained_batch_, b) << "YouTube-DNN: Backward needs Forward(training = true)";
    Layer& top = layers_.back();
    top.dz.SetZero();
    std::copy(dout.data(), dout.data() + b * d_, top.dz.data());
    for (size_t l = layers_.size(); l-- > 0;) {
      Layer& layer = layers_[l];
      const Tensor& x = l == 0 ? pooled_ : layers_[l - 1].a;
      Tensor* dx = l == 0 ? &d_pooled_ : &layers_[l - 1].da;
      dx->SetZero();
      LinearBackward(x, layer.w, layer.dz, dx, &layer.dw, &layer.db);
      if (l > 0) {
        Layer& below = layers_[l - 1];
        below.dz.SetZero();
        ReluBackward(below.a, below.da, &below.dz);
      }
    }
    for (int64_t i = 0; i < b; ++i) {
      const int64_t len = offsets.length(i);
      const float scale = len > 0 ? 1.0f / static_cast<float>(len) : 0.0f;
      for (int64_t j = 0; j < d_; ++j) d_pooled_.data()[i * d_ + j] *= scale;
    }
    SegmentSumPoolBackward(offsets, d_pooled_, dhistory);
  }

 private:
  struct Layer {
    int64_t in = 0, out = 0;
    Tensor w, b, dw, db;
    Tensor z, a, dz, da;  // [B, out]: pre-activation, relu, their gradients
  };

  void Resize(int64_t b) {
    if (b == batch_) return;
    batch_ = b;
    pooled_ = Tensor::Zeros({b, d_});
    d_pooled_ = Tensor::Zeros({b, d_});
    for (Layer& l : layers_) {
      for (Tensor* t : {&l.z, &l.a, &l.dz, &l.da}) *t = Tensor::Zeros({b, l.out});
    }
  }

  const int64_t d_;
  ParamArena arena_;
  std::vector<Layer> layers_;
  Tensor pooled_, d_pooled_;
  int64_t batch_ = -1, trained_batch_ = -1;
};

void Check(const config::ModelConfig& config, const RetrievalModelDims&, config::Problems* p) {
  p->AllPositiveAtMost("model.youtube_dnn.hidden", config.youtube_dnn().hidden(),
                       config::kMaxLayerSize);
}

std::unique_ptr<RetrievalModel> Make(const config::ModelConfig& config,
                                     const RetrievalModelDims& dims, uint64_t seed) {
  return std::make_unique<YoutubeDnnModel>(config.youtube_dnn(), dims, seed);
}

}  // namespace

RetrievalModelKind YoutubeDnnKind() { return {"youtube_dnn", Check, Make}; }

}  // namespace attnps::models
