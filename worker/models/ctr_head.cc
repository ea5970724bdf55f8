#include "worker/models/ctr_head.h"

#include <glog/logging.h>

#include <algorithm>
#include <string>

#include "worker/config/job_config.h"

namespace attnps::models {
namespace {

constexpr float kSenetInitGateBias = 1.0f;
constexpr int kMaxSenetRatio = 1024;     // model.blocks.senet.reduction_ratio
constexpr double kMaxGateScale = 100.0;  // model.blocks.poso.scale
constexpr float kLhucGateScale = 2.0f;

constexpr size_t kItemSideFields = 4;  // pooled item, pooled cate, target item, target cate

struct Field {
  std::string name;
  int64_t dim = 0;
};

// The feature fields in the order of the MLP input (see the header).
std::vector<Field> Fields(const CtrModelDims& dims) {
  std::vector<Field> fields;
  for (const ContextField& c : dims.context) fields.push_back({c.name, c.dim});
  if (dims.context.empty() && dims.user_dim > 0) fields.push_back({"user", dims.user_dim});
  for (const char* side : {"pooled", "target"}) {
    fields.push_back({std::string(side) + " item", dims.item_dim});
    fields.push_back({std::string(side) + " cate", dims.cate_dim});
  }
  return fields;
}

// The fields' common width, or 0 when they differ.
int64_t CommonWidth(const std::vector<Field>& fields) {
  for (const Field& f : fields) {
    if (f.dim != fields[0].dim) return 0;
  }
  return fields[0].dim;
}

std::string Describe(const std::vector<Field>& fields) {
  std::string s;
  for (const Field& f : fields) {
    s += (s.empty() ? "" : ", ") + f.name + " " + std::to_string(f.dim);
  }
  return s;
}

int SenetRatio(const config::ModelConfig& config) {
  if (config.blocks().has_senet()) return config.blocks().senet().reduction_ratio();
  return config.has_din() ? config.din().senet().reduction_ratio() : 0;
}

// The column of context slot `slot` in the user input (*width its dim), or -1.
int64_t SlotColumn(const CtrModelDims& dims, const std::string& slot, int64_t* width) {
  const std::vector<Field> fields = Fields(dims);
  int64_t at = 0;
  for (size_t i = 0; i + kItemSideFields < fields.size(); ++i) {
    if (fields[i].name == slot) {
      *width = fields[i].dim;
      return at;
    }
    at += fields[i].dim;
  }
  return -1;
}

std::string ContextNames(const CtrModelDims& dims) {
  std::string s;
  for (const ContextField& c : dims.context) s += (s.empty() ? "" : ", ") + c.name;
  return s;
}

int64_t MlpInputWidth(const CtrModelDims& dims, int64_t extra, int64_t afm) {
  return dims.user_dim + 3 * (dims.item_dim + dims.cate_dim) + extra + afm;
}

std::vector<MlpGate> Gates(const config::ModelConfig& config, const CtrModelDims& dims,
                           int64_t input_width) {
  std::vector<MlpGate> gates;
  const config::BlocksConfig& blocks = config.blocks();
  if (blocks.has_lhuc()) gates.push_back({0, input_width, blocks.lhuc().hidden(), kLhucGateScale});
  if (blocks.has_poso()) {
    int64_t width = 0;
    const int64_t col = SlotColumn(dims, blocks.poso().slot(), &width);
    CHECK_GE(col, 0) << "POSO slot " << blocks.poso().slot();
    gates.push_back({col, width, blocks.poso().hidden(), blocks.poso().scale()});
  }
  return gates;
}

void CheckSenet(const config::ModelConfig& config, const std::vector<Field>& fields,
                config::Problems* p) {
  const bool legacy = config.has_din() && config.din().has_senet();
  if (config.blocks().has_senet() && legacy) {
    p->Add("model.din.senet", "set model.blocks.senet or this older spelling of it, not both");
    return;
  }
  const std::string path =
      legacy ? "model.din.senet.reduction_ratio" : "model.blocks.senet.reduction_ratio";
  const int ratio = SenetRatio(config);
  if (legacy) {
    p->NonNegativeAtMost(path, ratio, kMaxSenetRatio);
  } else if (config.blocks().has_senet()) {
    p->PositiveAtMost(path, ratio, kMaxSenetRatio);
  }
  if (ratio > 0 && CommonWidth(fields) == 0) {
    p->Add(path, "SENet needs fields of one width, got " + Describe(fields));
  }
}

void CheckGates(const config::ModelConfig& config, const CtrModelDims& dims, config::Problems* p) {
  const config::BlocksConfig& blocks = config.blocks();
  if (blocks.has_lhuc()) {
    p->PositiveAtMost("model.blocks.lhuc.hidden", blocks.lhuc().hidden(), config::kMaxLayerSize);
  }
  if (!blocks.has_poso()) return;
  const config::PosoConfig& poso = blocks.poso();
  p->PositiveAtMost("model.blocks.poso.hidden", poso.hidden(), config::kMaxLayerSize);
  p->PositiveAtMost("model.blocks.poso.scale", poso.scale(), kMaxGateScale);
  int64_t width = 0;
  if (poso.slot().empty()) {
    p->Add("model.blocks.poso.slot", "required: the context slot that keys the gates");
  } else if (SlotColumn(dims, poso.slot(), &width) < 0) {
    const std::string names = ContextNames(dims);
    p->Add(
        "model.blocks.poso.slot",
        "no context slot named " + config::Quote(poso.slot()) +
            (names.empty() ? std::string(" (there are no context slots; add one in features.slots,"
                                         " e.g. the activity column of `attnps prepare "
                                         "--activity`)")
                           : " (the context slots: " + names + ")"));
  }
}

}  // namespace

void CheckCtrHead(const config::ModelConfig& config, const CtrModelDims& dims, config::Problems* p,
                  CtrModelSizes* sizes) {
  const size_t before = p->size();
  const std::vector<Field> fields = Fields(dims);
  CheckSenet(config, fields, p);
  const config::BlocksConfig& blocks = config.blocks();
  if (blocks.has_afm()) {
    p->PositiveAtMost("model.blocks.afm.attention_size", blocks.afm().attention_size(),
                      config::kMaxLayerSize);
    if (CommonWidth(fields) == 0) {
      p->Add("model.blocks.afm", "AFM needs fields of one width, got " + Describe(fields));
    }
  }
  CheckGates(config, dims, p);
  if (sizes == nullptr || p->size() != before || dims.item_dim <= 0 || dims.cate_dim <= 0) return;
  const int64_t f = static_cast<int64_t>(fields.size()), width = CommonWidth(fields);
  if (SenetRatio(config) > 0) {
    const int64_t r = SenetHiddenSize(f, SenetRatio(config));
    sizes->weights.push_back({"model.blocks.senet.reduction_ratio", f, r});
  }
  if (blocks.has_afm()) {
    sizes->weights.push_back(
        {"model.blocks.afm.attention_size", width, blocks.afm().attention_size()});
    sizes->mlp_input += width;
  }
  for (const MlpGate& g : Gates(config, dims, sizes->mlp_input)) {
    for (int h : config::MlpHidden(config.mlp())) {
      sizes->weights.push_back({"model.blocks (layer gate)", g.cols, g.hidden});
      sizes->weights.push_back({"model.blocks (layer gate)", g.hidden, h});
    }
  }
}

CtrHead::CtrHead(const config::ModelConfig& config, const CtrModelDims& dims, int64_t extra_dim,
                 ParamArena* arena)
    : u_(dims.user_dim),
      d_(dims.item_dim + dims.cate_dim),
      e_(extra_dim),
      n_fields_(static_cast<int64_t>(Fields(dims).size())),
      field_dim_(CommonWidth(Fields(dims))) {
  const int ratio = SenetRatio(config);
  if (ratio > 0) {
    CHECK_GT(field_dim_, 0);
    const int64_t f = n_fields_, r = SenetHiddenSize(f, ratio);
    arena->AddParam({f, r}, ParamInit::LinearLike(f), &senet_.w1, &senet_grad_.w1);
    arena->AddParam({r}, ParamInit::Constant(0.0f), &senet_.b1, &senet_grad_.b1);
    arena->AddParam({r, f}, ParamInit::LinearLike(r), &senet_.w2, &senet_grad_.w2);
    arena->AddParam({f}, ParamInit::Constant(kSenetInitGateBias), &senet_.b2, &senet_grad_.b2);
    senet_hidden_ = r;
  }
  if (config.blocks().has_afm()) {
    CHECK_GT(field_dim_, 0);
    const int64_t a = config.blocks().afm().attention_size();
    arena->AddParam({field_dim_, a}, ParamInit::LinearLike(field_dim_), &afm_.w, &afm_grad_.w);
    arena->AddParam({a}, ParamInit::Constant(0.0f), &afm_.b, &afm_grad_.b);
    arena->AddParam({a}, ParamInit::LinearLike(a), &afm_.h, &afm_grad_.h);
    afm_dim_ = field_dim_;
  }
  const int64_t width = MlpInputWidth(dims, e_, afm_dim_);
  mlp_ = std::make_unique<MlpTower>(width, config.mlp(), arena, Gates(config, dims, width));
}

void CtrHead::Resize(int64_t b) {
  if (b == ws_b_) return;
  ws_b_ = b;
  for (Tensor* t : {&fields_, &d_fields_}) *t = Tensor::Empty({b, u_ + 2 * d_});
  if (senet_hidden_ > 0) {
    senet_ws_ = SenetWorkspace::Allocate(b, n_fields_, senet_hidden_);
    for (Tensor* t : {&se_out_, &d_se_out_}) *t = Tensor::Empty({b, u_ + 2 * d_});
  }
  if (afm_dim_ > 0) {
    afm_ws_ = AfmWorkspace::Allocate(b, n_fields_, field_dim_, afm_.h.dim(0));
    for (Tensor* t : {&afm_out_, &d_afm_out_}) *t = Tensor::Empty({b, afm_dim_});
  }
  const int64_t width = mlp_->input_dim();
  for (Tensor* t : {&x_, &dx_}) *t = Tensor::Empty({b, width});
}

void CtrHead::Forward(const Tensor& user, const Tensor& pooled, const Tensor& q,
                      const Tensor& extra, bool training, Tensor* logits) {
  const int64_t b = q.dim(0), w = u_ + 2 * d_;
  CHECK(pooled.shape() == q.shape() && q.dim(1) == d_);
  if (u_ > 0) CHECK_EQ(user.numel(), b * u_) << "user feature [B, U]";
  if (e_ > 0) CHECK_EQ(extra.numel(), b * e_) << "extra block [B, E]";
  Resize(b);
  for (int64_t r = 0; r < b; ++r) {
    float* row = fields_.data() + r * w;
    if (u_ > 0) std::copy_n(user.data() + r * u_, u_, row);
    std::copy_n(pooled.data() + r * d_, d_, row + u_);
    std::copy_n(q.data() + r * d_, d_, row + u_ + d_);
  }
  const Tensor* fields = &fields_;
  if (senet_hidden_ > 0) {
    Tensor out = se_out_.Reshaped({b, n_fields_, field_dim_});
    SenetForward(fields_.Reshaped({b, n_fields_, field_dim_}), senet_, &senet_ws_, &out);
    fields = &se_out_;
  }
  if (afm_dim_ > 0) {
    AfmForward(fields->Reshaped({b, n_fields_, field_dim_}), afm_, &afm_ws_, &afm_out_);
  }
  AssembleMlpInput(*fields, extra);
  logits->EnsureShape({b});
  mlp_->Forward(x_, training, logits);
}

// x_ rows: [fields | pooled * q | extra | afm].
void CtrHead::AssembleMlpInput(const Tensor& fields, const Tensor& extra) {
  const int64_t b = fields.dim(0), w = u_ + 2 * d_, width = mlp_->input_dim();
  for (int64_t r = 0; r < b; ++r) {
    const float* f = fields.data() + r * w;
    float* x = x_.data() + r * width;
    std::copy_n(f, w, x);
    const float* p = f + u_;
    const float* t = f + u_ + d_;
    for (int64_t j = 0; j < d_; ++j) x[w + j] = p[j] * t[j];
    if (e_ > 0) std::copy_n(extra.data() + r * e_, e_, x + w + d_);
    if (afm_dim_ > 0) std::copy_n(afm_out_.data() + r * afm_dim_, afm_dim_, x + w + d_ + e_);
  }
}

void CtrHead::Backward(const Tensor& dlogits, Tensor* duser, Tensor* dpooled, Tensor* dq,
                       Tensor* dextra) {
  const int64_t b = ws_b_, w = u_ + 2 * d_, width = mlp_->input_dim();
  CHECK_EQ(dlogits.numel(), b) << "Backward without a matching Forward";
  dx_.SetZero();
  mlp_->Backward(x_, dlogits, &dx_);
  const bool senet = senet_hidden_ > 0;
  const Tensor& fields = senet ? se_out_ : fields_;
  Tensor& d_fields = senet ? d_se_out_ : d_fields_;
  const bool want_extra = e_ > 0 && dextra != nullptr && !dextra->empty();
  for (int64_t r = 0; r < b; ++r) {  // the product rule for pooled * q
    const float* g = dx_.data() + r * width;
    const float* p = fields.data() + r * w + u_;
    const float* t = p + d_;
    float* df = d_fields.data() + r * w;
    std::copy_n(g, u_, df);
    const float* gpq = g + w;
    for (int64_t j = 0; j < d_; ++j) {
      df[u_ + j] = g[u_ + j] + gpq[j] * t[j];
      df[u_ + d_ + j] = g[u_ + d_ + j] + gpq[j] * p[j];
    }
    if (want_extra) {
      float* de = dextra->data() + r * e_;
      for (int64_t j = 0; j < e_; ++j) de[j] += g[w + d_ + j];
    }
    if (afm_dim_ > 0) std::copy_n(g + w + d_ + e_, afm_dim_, d_afm_out_.data() + r * afm_dim_);
  }
  const Shape shape3{b, n_fields_, field_dim_};
  if (afm_dim_ > 0) {
    Tensor df3 = d_fields.Reshaped(shape3);
    AfmBackward(fields.Reshaped(shape3), afm_, d_afm_out_, &afm_ws_, &df3, &afm_grad_);
  }
  if (senet) {
    d_fields_.SetZero();
    Tensor de = d_fields_.Reshaped(shape3);
    SenetBackward(fields_.Reshaped(shape3), senet_, d_se_out_.Reshaped(shape3), &senet_ws_, &de,
                  &senet_grad_);
  }
  const bool want_user = u_ > 0 && duser != nullptr && !duser->empty();
  const bool want_pooled = dpooled != nullptr && !dpooled->empty();
  const bool want_q = dq != nullptr && !dq->empty();
  for (int64_t r = 0; r < b; ++r) {
    const float* g = d_fields_.data() + r * w;
    if (want_user) {
      float* du = duser->data() + r * u_;
      for (int64_t j = 0; j < u_; ++j) du[j] += g[j];
    }
    if (want_pooled) {
      float* dp = dpooled->data() + r * d_;
      for (int64_t j = 0; j < d_; ++j) dp[j] += g[u_ + j];
    }
    if (want_q) {
      float* dt = dq->data() + r * d_;
      for (int64_t j = 0; j < d_; ++j) dt[j] += g[u_ + d_ + j];
    }
  }
}

}  // namespace attnps::models
