// CtrModel: the dense part of a CTR model (Base, DIN, ...), on the ops library, and the registry
// of CTR model kinds.
//
// The embeddings come from the parameter servers: the CTR task gathers the pulled rows into
// CtrInputs, runs the model, and scatters the input gradients back to the unique keys.
// Shapes: B batch, N the batch's history positions (jagged: every sample's valid positions stacked,
// see ops/jagged.h; nothing is padded), D = item_dim + cate_dim (a position is [item row | cate
// row]), U = user_dim: the width of the user and context features (every context slot's row side
// by side; 0: none).
// Flat params/grads/buffers and thread-safety: see DenseModel.
#ifndef ATTNPS_WORKER_MODELS_CTR_MODEL_H_
#define ATTNPS_WORKER_MODELS_CTR_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/status.h"
#include "ops/tensor.h"
#include "proto/job_config.pb.h"
#include "worker/config/problems.h"
#include "worker/models/dense_model.h"

namespace attnps::models {

struct CtrInputs {
  Tensor target;                         // [B, D]
  Tensor history;                        // [N, D]: sample b's positions, oldest first, are rows
                                         // history_offsets[b] .. history_offsets[b + 1]
  std::vector<int32_t> history_offsets;  // [B + 1], history_offsets[0] = 0, [B] = N
  Tensor user;                           // [B, U], or empty
  // [N, D]: for every history position a sampled item the user did not click there, as
  // [item row | cate row], for a model that asks for them (wants_negatives()); else empty.
  Tensor negatives;
};

// Gradients w.r.t. the inputs, same shapes (history [N, D]); accumulated (+=). An empty field is
// skipped.
struct CtrInputGrads {
  Tensor target;
  Tensor history;
  Tensor user;
  Tensor negatives;
};

// A context slot's block of the user input [B, U].
struct ContextField {
  std::string name;  // the feature slot's name (features.slots[].name)
  int dim = 0;
};

struct CtrModelDims {
  int item_dim = 0;
  int cate_dim = 0;
  int user_dim = 0;  // U; 0: no user or context feature
  int max_history = 0;
  std::string d_source;  // how D is made, for errors, e.g. "item.dim + cate.dim"; may be empty
  // The context slots side by side in the user input, their dims summing to U; empty with U > 0:
  // one field named "user".
  std::vector<ContextField> context = {};
};

class CtrModel : public DenseModel {
 public:
  // logits: [B]. `training`: batch statistics (Dice) and moving-average updates, and keeps what
  // Backward needs; otherwise the moving averages are used and nothing is updated.
  virtual void Forward(const CtrInputs& in, bool training, Tensor* logits) = 0;
  // After Forward(in, training = true): accumulates d(loss)/d(params) into grads() and the input
  // gradients into *dinputs, given dlogits [B] = d(loss)/d(logits).
  virtual void Backward(const CtrInputs& in, const Tensor& dlogits, CtrInputGrads* dinputs) = 0;
  // One training step on a batch: Forward(training), the model's loss, Backward of
  // loss_scale * loss. The default loss is the mean BCE of the logits against labels [B]; a model
  // with a loss of its own (DIEN's auxiliary loss) overrides this. Returns the loss (unscaled),
  // or a non-finite value, in which case the gradients are unspecified.
  virtual double TrainStep(const CtrInputs& in, const Tensor& labels, float loss_scale,
                           Tensor* logits, CtrInputGrads* dinputs);
  // True when TrainStep reads CtrInputs::negatives (DIEN's auxiliary loss); the task then draws
  // them for training batches.
  virtual bool wants_negatives() const { return false; }

 private:
  Tensor dlogits_;
};

// ---- the registry of model kinds ----------------------------------------------------------------

// Sizes of a model's weights, for the config's size limits (docs/config.md).
struct CtrModelSizes {
  struct Matrix {
    std::string path;  // the setting that sizes it
    int64_t rows = 0, cols = 0;
  };
  std::vector<Matrix> weights;  // the kind's own weight matrices (the MLP's are added)
  int64_t mlp_input = 0;        // the width of the MLP's input
  int64_t per_position = 0;     // the widest [B, T, width] activation
};

// A model kind: adding one is a file defining these, plus one line in the registry's list
// (worker/models/ctr_model.cc), or a RegisterCtrModel call (tests, programs linking attnps).
struct CtrModelKind {
  std::string name;  // the ModelConfig field that selects it ("din"), or model.custom.name
  // The kind's own settings (model.<name>.*) for inputs of `dims`: adds "field: problem" for
  // each problem found. A dim of 0 is unknown (reported elsewhere): checks that need it are
  // skipped. When it adds none and dims are known, fills *sizes.
  void (*check)(const config::ModelConfig& config, const CtrModelDims& dims,
                config::Problems* problems, CtrModelSizes* sizes);
  // Builds the model, weights from `seed`. Precondition: check reported nothing.
  std::unique_ptr<CtrModel> (*make)(const config::ModelConfig& config, const CtrModelDims& dims,
                                    uint64_t seed);
};

// Adds a kind; false (nothing changed) when its name is taken. Thread-safe.
bool RegisterCtrModel(const CtrModelKind& kind);
// The registered names, in registration order: "base, din, dien".
std::string CtrModelNames();

// The one validation of config.model: the MLP settings, then the selected kind's check (an unset
// or unregistered kind is a problem naming model.kind or model.custom.name). *sizes (may be null)
// as CtrModelKind::check, with the MLP's matrices added.
void CheckCtrModelConfig(const config::ModelConfig& config, const CtrModelDims& dims,
                         config::Problems* problems, CtrModelSizes* sizes);

// The model of config.model, weights initialized from `seed`: InvalidArgument naming every field
// CheckCtrModelConfig rejects (and dims out of range).
Status MakeCtrModel(const config::ModelConfig& config, const CtrModelDims& dims, uint64_t seed,
                    std::unique_ptr<CtrModel>* out);

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_CTR_MODEL_H_
