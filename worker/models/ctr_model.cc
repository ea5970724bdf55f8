// MakeCtrModel: checks that the implementation supports the configuration, then builds the model.
#include "worker/models/ctr_model.h"

#include <glog/logging.h>

#include <string>
#include <vector>

#include "worker/config/job_config.h"
#include "worker/models/models_internal.h"

namespace attnps::models {
namespace {

// Collects "field: problem" messages; InvalidArgument with all of them joined by "; ".
class Problems {
 public:
  void Add(const std::string& field, const std::string& what) {
    if (!text_.empty()) text_ += "; ";
    text_ += field + ": " + what;
  }
  Status ToStatus() const { return text_.empty() ? Status::Ok() : Status::InvalidArgument(text_); }

 private:
  std::string text_;
};

void CheckDims(const CtrModelDims& dims, Problems* p) {
  if (dims.item_dim <= 0)
    p->Add("dims.item_dim", "must be > 0, got " + std::to_string(dims.item_dim));
  if (dims.cate_dim <= 0)
    p->Add("dims.cate_dim", "must be > 0, got " + std::to_string(dims.cate_dim));
  if (dims.user_dim < 0)
    p->Add("dims.user_dim", "must be >= 0, got " + std::to_string(dims.user_dim));
}

void CheckMlp(const config::MlpConfig& mlp, Problems* p) {
  for (int h : config::MlpHidden(mlp)) {
    if (h <= 0) p->Add("model.mlp.hidden", "every layer must be > 0, got " + std::to_string(h));
  }
  switch (mlp.activation()) {
    case config::DICE:
      if (!(mlp.dice_epsilon() > 0.0f)) p->Add("model.mlp.dice_epsilon", "must be > 0");
      if (!(mlp.dice_momentum() >= 0.0f && mlp.dice_momentum() < 1.0f)) {
        p->Add("model.mlp.dice_momentum", "must be in [0, 1)");
      }
      break;
    case config::PRELU:
    case config::RELU:
    case config::SIGMOID:
      break;
    default:
      p->Add("model.mlp.activation", "unsupported value " + std::to_string(mlp.activation()));
  }
}

void CheckDin(const config::DinModel& din, const CtrModelDims& dims, Problems* p) {
  const std::vector<int> hidden = config::AttentionHidden(din);
  if (hidden.size() != 2) {
    p->Add("model.din.attention_hidden",
           "the DIN activation unit has exactly two hidden layers, got " +
               std::to_string(hidden.size()));
  }
  for (int h : hidden) {
    if (h <= 0) {
      p->Add("model.din.attention_hidden", "every layer must be > 0, got " + std::to_string(h));
    }
  }
  if (din.attention_activation() != config::SIGMOID && din.attention_activation() != config::RELU) {
    p->Add("model.din.attention_activation",
           "the DIN activation unit supports SIGMOID and RELU, got " +
               config::Activation_Name(din.attention_activation()));
  }
  if (din.attention_normalization() == config::DinModel::SOFTMAX && !(din.softmax_scale() > 0.0f)) {
    p->Add("model.din.softmax_scale", "must be > 0 with SOFTMAX normalization");
  }
  const int heads = din.multi_head_target_attention().heads();
  const int d = dims.item_dim + dims.cate_dim;
  if (heads < 0) {
    p->Add("model.din.multi_head_target_attention.heads", "must be >= 0");
  } else if (heads > 0 && d > 0 && d % heads != 0) {
    p->Add("model.din.multi_head_target_attention.heads",
           std::to_string(heads) + " does not divide the item dim " + std::to_string(d));
  }
  const int ratio = din.senet().reduction_ratio();
  if (ratio < 0) {
    p->Add("model.din.senet.reduction_ratio", "must be >= 0");
  } else if (ratio > 0 && dims.item_dim != dims.cate_dim) {
    p->Add("model.din.senet.reduction_ratio", "SENet needs fields of one width: item dim " +
                                                  std::to_string(dims.item_dim) + " != cate dim " +
                                                  std::to_string(dims.cate_dim));
  }
}

}  // namespace

BatchSizes CheckCtrInputs(const CtrInputs& in, const CtrModelDims& dims) {
  const int64_t d = dims.item_dim + dims.cate_dim;
  CHECK_EQ(in.target.ndim(), 2) << "target [B, D], got " << in.target.ShapeString();
  const int64_t b = in.target.dim(0);
  CHECK_GT(b, 0);
  CHECK_EQ(in.target.dim(1), d) << "target [B, D], got " << in.target.ShapeString();
  CHECK_EQ(in.history.ndim(), 3) << "history [B, T, D], got " << in.history.ShapeString();
  const int64_t t = in.history.dim(1);
  CHECK(in.history.dim(0) == b && in.history.dim(2) == d && t > 0)
      << "history [B, T, D], got " << in.history.ShapeString();
  CHECK(in.mask.shape() == (Shape{b, t})) << "mask [B, T], got " << in.mask.ShapeString();
  if (dims.user_dim > 0) {
    CHECK(in.user.shape() == (Shape{b, dims.user_dim}))
        << "user [B, U], got " << in.user.ShapeString();
  } else {
    CHECK(in.user.empty()) << "user given to a model without a user feature";
  }
  return {b, t};
}

Status MakeCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed,
                    std::unique_ptr<CtrModel>* out) {
  Problems problems;
  CheckDims(dims, &problems);
  CheckMlp(config.mlp(), &problems);
  switch (config.kind_case()) {
    case config::ModelConfig::kBase:
      break;
    case config::ModelConfig::kDin:
      CheckDin(config.din(), dims, &problems);
      break;
    default:
      problems.Add("model.kind", "not set or not implemented; choose one of: base, din");
  }
  ATTNPS_RETURN_IF_ERROR(problems.ToStatus());
  *out = config.kind_case() == config::ModelConfig::kBase ? NewBaseModel(config, dims, seed)
                                                          : NewDinModel(config, dims, seed);
  return Status::Ok();
}

}  // namespace attnps::models
