// CtrHead: what every CTR model does once it has pooled the history: the field blocks of
// model.blocks (SENet re-weighting, AFM pooling), the MLP input, and the MLP tower with its layer
// gates (LHUC, POSO). Private to worker/models.
//
// Fields: the context slots (dims.context, side by side in the user input), then pooled = [item |
// cate] and q = [item | cate] of the target: F = |context| + 4 fields, which SENet and AFM need of
// one width f (CheckCtrHead). The MLP input is
//   x = [fields' (= [user' | pooled' | q'], SENet's output or the fields) | pooled' * q' |
//        extra | afm]
// with extra the kind's own block [B, E] and afm [B, f] AFM's pooled pairs.
// LHUC gates read all of x; POSO's read its slot's columns of user'.
// Weights are declared in the arena in this order: SENet (w1 [F, R], b1 [R] = 0, w2 [R, F],
// b2 [F] = 1), AFM (w [f, A], b [A] = 0, h [A]), then the MLP with its gates. Workspaces are
// members, reallocated when B changes. One caller at a time.
#ifndef ATTNPS_WORKER_MODELS_CTR_HEAD_H_
#define ATTNPS_WORKER_MODELS_CTR_HEAD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "ops/interaction.h"
#include "ops/tensor.h"
#include "proto/job_config.pb.h"
#include "worker/config/problems.h"
#include "worker/models/ctr_model.h"
#include "worker/models/mlp.h"
#include "worker/models/param_arena.h"

namespace attnps::models {

// Checks model.blocks' senet, afm, lhuc and poso (and model.din.senet, their older spelling) for
// `dims`, and adds their weights to *sizes and AFM's width to sizes->mlp_input (sizes may be
// null).
void CheckCtrHead(const config::ModelConfig& config, const CtrModelDims& dims, config::Problems* p,
                  CtrModelSizes* sizes);

class CtrHead {
 public:
  // Declares the head's weights in `arena`. extra_dim: the width E of the kind's own block.
  // Precondition: CheckCtrHead reported nothing.
  CtrHead(const config::ModelConfig& config, const CtrModelDims& dims, int64_t extra_dim,
          ParamArena* arena);
  CtrHead(const CtrHead&) = delete;
  CtrHead& operator=(const CtrHead&) = delete;

  // user [B, U] (empty when U = 0), pooled and q [B, D], extra [B, E] (empty when E = 0)
  // -> logits [B]. Copies what it reads; `training` as MlpTower::Forward.
  void Forward(const Tensor& user, const Tensor& pooled, const Tensor& q, const Tensor& extra,
               bool training, Tensor* logits);
  // After Forward(training = true): the head's weight gradients, and += into each present
  // destination (duser [B, U], dpooled and dq [B, D], dextra [B, E]; null or empty: skipped).
  void Backward(const Tensor& dlogits, Tensor* duser, Tensor* dpooled, Tensor* dq, Tensor* dextra);

 private:
  void Resize(int64_t b);
  void AssembleMlpInput(const Tensor& fields, const Tensor& extra);

  const int64_t u_, d_, e_;             // U, D, E
  const int64_t n_fields_, field_dim_;  // F and f (0 when the widths differ: no SENet, no AFM)
  int64_t senet_hidden_ = 0;            // R; 0: no SENet
  int64_t afm_dim_ = 0;                 // f with AFM, else 0
  SenetParams senet_, senet_grad_;
  AfmParams afm_, afm_grad_;
  std::unique_ptr<MlpTower> mlp_;

  int64_t ws_b_ = -1;
  SenetWorkspace senet_ws_;
  AfmWorkspace afm_ws_;
  Tensor fields_, se_out_, d_fields_, d_se_out_;  // [B, U + 2D]
  Tensor afm_out_, d_afm_out_;                    // [B, f]
  Tensor x_, dx_;                                 // MLP input [B, width]
};

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_CTR_HEAD_H_
