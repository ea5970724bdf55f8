// TargetScorer: the target's attention over a padded key sequence, by one of the scorers of
// model.blocks.scorer (DIN unit, additive, scaled dot-product, multi-head). Private to
// worker/models.
//
// Shapes: B batch, T keys (padded; mask [B, T] nonzero = valid), D the query and key width.
// Outputs assigned, gradients accumulated (+=). Workspaces are members, reallocated when B or T
// changes. One caller at a time; Backward reads the workspace of the Forward on the same inputs.
#ifndef ATTNPS_WORKER_MODELS_TARGET_SCORER_H_
#define ATTNPS_WORKER_MODELS_TARGET_SCORER_H_

#include <cstdint>
#include <vector>

#include "ops/attention.h"
#include "ops/din_attention.h"
#include "ops/tensor.h"
#include "proto/job_config.pb.h"
#include "worker/config/problems.h"
#include "worker/models/ctr_model.h"
#include "worker/models/param_arena.h"

namespace attnps::models {

using ScorerKind = config::TargetScorerConfig::Kind;

struct ScorerSpec {
  ScorerKind kind = config::TargetScorerConfig::DIN_UNIT;
  std::vector<int> din_hidden = {80, 40};  // DIN_UNIT: [H1, H2]
  DinAttentionOptions din_options;         // DIN_UNIT
  int64_t additive_hidden = 0;             // ADDITIVE: A (0 = D)
  int64_t heads = 0;                       // MULTI_HEAD
};

// The spec of model.blocks.scorer when it is set, else `kind_default` (the kind's own attention).
// A DIN_UNIT scorer keeps kind_default's DIN-unit settings.
ScorerSpec ScorerOf(const config::ModelConfig& config, const ScorerSpec& kind_default);

// Checks model.blocks.scorer (hidden, heads dividing D). `kind_name` ("dien") with
// `per_position_weights`: the kind needs one weight per position, which MULTI_HEAD has not.
void CheckScorer(const config::ModelConfig& config, const CtrModelDims& dims,
                 bool per_position_weights, const std::string& kind_name, config::Problems* p);

class TargetScorer {
 public:
  // Declares the scorer's weights in `arena` (a DIN unit's as DeclareDinUnit, multi-head's as
  // DeclareMultiHeadAttention, additive wq [D, A], wk [D, A], b [A], v [A]).
  TargetScorer(const ScorerSpec& spec, int64_t d, ParamArena* arena);
  TargetScorer(const TargetScorer&) = delete;
  TargetScorer& operator=(const TargetScorer&) = delete;

  // False for MULTI_HEAD, whose attention has a weight per head: Forward leaves `weights` alone.
  bool has_weights() const { return spec_.kind != config::TargetScorerConfig::MULTI_HEAD; }

  // q [B, D], keys [B, T, D], mask [B, T] -> weights [B, T] (masked softmax, or the DIN unit's
  // normalization) and pooled [B, D] (the weighted keys; multi-head: the projected output).
  void Forward(const Tensor& q, const Tensor& keys, const Tensor& mask, Tensor* weights,
               Tensor* pooled);
  // Given d_weights [B, T] (empty: none) and d_pooled [B, D]: the weights' gradients, and +=
  // into dq [B, D] and dkeys [B, T, D] (each nullable).
  void Backward(const Tensor& q, const Tensor& keys, const Tensor& mask, const Tensor& weights,
                const Tensor& d_weights, const Tensor& d_pooled, Tensor* dq, Tensor* dkeys);

 private:
  void Resize(int64_t b, int64_t t);
  // SCALED_DOT_PRODUCT's gradient of d_weights through the softmax into dq and dkeys.
  void SdpWeightsBackward(const Tensor& q, const Tensor& keys, const Tensor& weights,
                          const Tensor& d_weights, Tensor* dq, Tensor* dkeys);

  const ScorerSpec spec_;
  const int64_t d_;
  DinAttentionParams din_, din_grad_;
  AdditiveAttentionParams add_, add_grad_;
  MultiHeadAttentionParams mha_, mha_grad_;

  int64_t ws_b_ = -1, ws_t_ = -1;
  DinAttentionWorkspace din_ws_;
  AdditiveAttentionWorkspace add_ws_;
  MultiHeadAttentionWorkspace mha_ws_;
  Tensor d_scores_;  // SCALED_DOT_PRODUCT [B, T]
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_TARGET_SCORER_H_
