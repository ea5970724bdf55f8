// The registry of CTR model kinds, the one validation of config.model, MakeCtrModel, and the
// default training step (BCE).
#include "worker/models/ctr_model.h"

#include <glog/logging.h>
#include <google/protobuf/descriptor.h>

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "ops/jagged.h"
#include "ops/loss.h"
#include "worker/config/job_config.h"
#include "worker/models/ctr_head.h"
#include "worker/models/models_internal.h"

namespace attnps::models {
namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}

// The registered kinds: attnps's own, one line each, then those added by RegisterCtrModel.
std::vector<CtrModelKind>& Kinds() {
  static auto* kinds = new std::vector<CtrModelKind>{
      BaseModelKind(),  // worker/models/base_model.cc
      DinModelKind(),   // worker/models/din_model.cc
      DienModelKind(),  // worker/models/dien_model.cc
      BstModelKind(),   // worker/models/bst_model.cc
  };
  return *kinds;
}

// The kind config selects, or nullptr; *field names the setting that selects it.
const CtrModelKind* SelectedKind(const config::ModelConfig& config, std::string* field,
                                 std::string* name) {
  const google::protobuf::OneofDescriptor* oneof = config.GetDescriptor()->FindOneofByName("kind");
  const google::protobuf::FieldDescriptor* f =
      config.GetReflection()->GetOneofFieldDescriptor(config, oneof);
  if (f == nullptr) return nullptr;
  *field = "model." + f->name();
  *name = f->name();
  if (config.has_custom()) {
    *field = "model.custom.name";
    *name = config.custom().name();
  }
  std::lock_guard<std::mutex> lock(RegistryMutex());
  for (const CtrModelKind& k : Kinds()) {
    if (k.name == *name) return &k;
  }
  return nullptr;
}

void CheckMlp(const config::MlpConfig& mlp, config::Problems* p) {
  p->AllPositiveAtMost("model.mlp.hidden", mlp.hidden(), config::kMaxLayerSize);
  switch (mlp.activation()) {
    case config::DICE:
      p->PositiveAtMost("model.mlp.dice_epsilon", mlp.dice_epsilon(), config::kMaxEpsilon);
      p->InHalfOpen("model.mlp.dice_momentum", mlp.dice_momentum(), 0, 1);
      break;
    case config::PRELU:
    case config::RELU:
    case config::SIGMOID:
      break;
    default:
      p->Add("model.mlp.activation", "unsupported value " + std::to_string(mlp.activation()));
  }
}

void AddMlpSizes(const config::MlpConfig& mlp, CtrModelSizes* sizes) {
  int64_t in = sizes->mlp_input;
  const std::vector<int> hidden = config::MlpHidden(mlp);
  for (size_t l = 0; l < hidden.size(); ++l) {
    sizes->weights.push_back({"model.mlp.hidden[" + std::to_string(l) + "]", in, hidden[l]});
    in = hidden[l];
  }
  sizes->weights.push_back({"model.mlp.hidden", in, 1});  // the output layer
}

void CheckDims(const CtrModelDims& dims, config::Problems* p) {
  if (dims.item_dim <= 0)
    p->Add("dims.item_dim", "must be > 0, got " + std::to_string(dims.item_dim));
  if (dims.cate_dim <= 0)
    p->Add("dims.cate_dim", "must be > 0, got " + std::to_string(dims.cate_dim));
  if (dims.user_dim < 0)
    p->Add("dims.user_dim", "must be >= 0, got " + std::to_string(dims.user_dim));
}

}  // namespace

bool RegisterCtrModel(const CtrModelKind& kind) {
  CHECK(kind.check != nullptr && kind.make != nullptr) << "model kind " << kind.name;
  std::lock_guard<std::mutex> lock(RegistryMutex());
  for (const CtrModelKind& k : Kinds()) {
    if (k.name == kind.name) return false;
  }
  Kinds().push_back(kind);
  return true;
}

std::string CtrModelNames() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::string names;
  for (const CtrModelKind& k : Kinds()) names += (names.empty() ? "" : ", ") + k.name;
  return names;
}

void CheckCtrModelConfig(const config::ModelConfig& config, const CtrModelDims& dims,
                         config::Problems* problems, CtrModelSizes* sizes) {
  CheckMlp(config.mlp(), problems);
  std::string field, name;
  const CtrModelKind* kind = SelectedKind(config, &field, &name);
  if (kind == nullptr) {
    if (field.empty()) {
      problems->Add("model.kind", "not set; choose one of: " + CtrModelNames());
    } else {
      problems->Add(field, config::Quote(name) + " is not a registered model kind (registered: " +
                               CtrModelNames() + ")");
    }
    return;
  }
  const size_t before = problems->size();
  CtrModelSizes mine;
  kind->check(config, dims, problems, &mine);
  CheckCtrHead(config, dims, problems, problems->size() == before ? &mine : nullptr);
  if (sizes == nullptr || problems->size() != before) return;
  *sizes = mine;
  if (sizes->mlp_input > 0) AddMlpSizes(config.mlp(), sizes);
}

Status MakeCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed,
                    std::unique_ptr<CtrModel>* out) {
  config::Problems problems;
  CheckDims(dims, &problems);
  CheckCtrModelConfig(config, dims, &problems, nullptr);
  ATTNPS_RETURN_IF_ERROR(problems.ToStatus());
  std::string field, name;
  *out = SelectedKind(config, &field, &name)->make(config, dims, seed);
  return Status::Ok();
}

double CtrModel::TrainStep(const CtrInputs& in, const Tensor& labels, float loss_scale,
                           Tensor* logits, CtrInputGrads* dinputs) {
  Forward(in, /*training=*/true, logits);
  const double loss = BceWithLogitsForward(*logits, labels, Tensor());
  if (!std::isfinite(loss)) return loss;
  dlogits_.EnsureShape(logits->shape());
  dlogits_.SetZero();
  BceWithLogitsBackward(*logits, labels, Tensor(), loss_scale, &dlogits_);
  Backward(in, dlogits_, dinputs);
  return loss;
}

BatchSizes CheckCtrInputs(const CtrInputs& in, const CtrModelDims& dims) {
  const int64_t d = dims.item_dim + dims.cate_dim;
  CHECK_EQ(in.target.ndim(), 2) << "target [B, D], got " << in.target.ShapeString();
  const int64_t b = in.target.dim(0);
  CHECK_GT(b, 0);
  CHECK_EQ(in.target.dim(1), d) << "target [B, D], got " << in.target.ShapeString();
  const JaggedOffsets offsets(in.history_offsets);
  CHECK_EQ(offsets.batch(), b) << "history_offsets: B + 1 = " << b + 1 << " entries, got "
                               << in.history_offsets.size();
  const std::string problem = offsets.Problem();
  CHECK(problem.empty()) << "history_offsets: " << problem;
  const int64_t n = offsets.total();
  CHECK(in.history.shape() == (Shape{n, d}) || (n == 0 && in.history.numel() == 0))
      << "history [N, D] = [" << n << ", " << d << "], got " << in.history.ShapeString();
  if (dims.user_dim > 0) {
    CHECK(in.user.shape() == (Shape{b, dims.user_dim}))
        << "user [B, U], got " << in.user.ShapeString();
  } else {
    CHECK(in.user.empty()) << "user given to a model without a user feature";
  }
  return {b, n};
}

}  // namespace attnps::models
