// Shared internals of the CTR models: input checks and the per-kind constructors behind
// MakeCtrModel. Private to worker/models.
#ifndef ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_
#define ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "ops/attention.h"
#include "ops/din_attention.h"
#include "ops/tensor.h"
#include "worker/config/job_config.h"
#include "worker/config/problems.h"
#include "worker/models/ctr_model.h"
#include "worker/models/param_arena.h"

namespace attnps::models {

struct BatchSizes {
  int64_t b = 0;
  int64_t n = 0;  // history positions
};

// CHECK-fails (a caller bug) unless target [B, D], history [N, D] with valid offsets [B + 1]
// (ending at N) and user [B, U] (or empty when U = 0), with D = item_dim + cate_dim; returns B
// and N.
BatchSizes CheckCtrInputs(const CtrInputs& in, const CtrModelDims& dims);

// Declares the DIN activation unit's weights in `arena` for item dim d and hidden sizes h1, h2:
// w1 [4D, H1], b1 [H1], w2 [H1, H2], b2 [H2], w3 [H2, 1], b3 [1], in that order, torch's Linear
// init; *p and *g become views of the values and gradients once the arena is allocated.
void DeclareDinUnit(int64_t d, int64_t h1, int64_t h2, ParamArena* arena, DinAttentionParams* p,
                    DinAttentionParams* g);

// Declares multi-head attention's weights for model dim d (Pk = Pv = Dout = d) in `arena`:
// wq, bq, wk, bk, wv, bv, wo, bo, each [d, d] / [d] with torch's Linear init; *p and *g become
// views of the values and gradients once the arena is allocated.
void DeclareMultiHeadAttention(int64_t d, ParamArena* arena, MultiHeadAttentionParams* p,
                               MultiHeadAttentionParams* g);

// The DIN unit's options for `activation` (SIGMOID or RELU) and `normalization`.
inline DinAttentionOptions DinUnitOptions(config::Activation activation,
                                          AttentionNormalization normalization) {
  DinAttentionOptions o;
  o.normalization = normalization;
  o.activation = activation == config::RELU ? DinActivation::kRelu : DinActivation::kSigmoid;
  return o;
}

// Checks the DIN unit's settings of a kind's config at `path` ("model.din"): attention_hidden
// (two sizes, each in 1..kMaxLayerSize) and attention_activation (SIGMOID or RELU).
template <typename KindConfig>
void CheckDinUnit(const std::string& path, const KindConfig& kind, config::Problems* p) {
  const std::string hidden_path = path + ".attention_hidden";
  p->AllPositiveAtMost(hidden_path, kind.attention_hidden(), config::kMaxLayerSize);
  const size_t layers = config::AttentionHidden(kind).size();
  if (layers != 2) {
    p->Add(hidden_path,
           "the DIN activation unit has exactly two hidden layers, got " + std::to_string(layers));
  }
  const config::Activation act = kind.attention_activation();
  if (act != config::SIGMOID && act != config::RELU) {
    p->Add(
        path + ".attention_activation",
        "the DIN activation unit supports SIGMOID and RELU, got " + config::Activation_Name(act));
  }
}

// Adds "path: H does not divide the item dim D (d_source)" unless heads H divides D (or D is
// unknown).
void CheckHeadsDivideItemDim(const std::string& path, int64_t heads, const CtrModelDims& dims,
                             config::Problems* p);

// The kinds of attnps's own registry (worker/models/ctr_model.cc), one per model file.
CtrModelKind BaseModelKind();
CtrModelKind DinModelKind();
CtrModelKind DienModelKind();
CtrModelKind BstModelKind();

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_MODELS_INTERNAL_H_
