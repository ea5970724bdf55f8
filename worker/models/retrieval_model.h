// RetrievalModel: the dense part of a retrieval model (YouTube-DNN, ComiRec-SA/DR, the
// self-attention encoder), and the registry of retrieval model kinds.
//
// The user's history in, K interest vectors out; the retrieval task scores them against the
// items' output embeddings pulled from the servers (sampled softmax in training, the full corpus
// in evaluation). Shapes: B batch, N the batch's history positions (jagged as the CTR inputs,
// ops/jagged.h: sample b's rows are offsets[b] .. offsets[b + 1], oldest first; a model whose ops
// take the padded layout pads internally), D item dim, K interests.
// Flat params/grads/buffers and thread-safety: see DenseModel.
#ifndef ATTNPS_WORKER_MODELS_RETRIEVAL_MODEL_H_
#define ATTNPS_WORKER_MODELS_RETRIEVAL_MODEL_H_

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

struct RetrievalInputs {
  Tensor history;                        // [N, D]
  std::vector<int32_t> history_offsets;  // [B + 1]
};

struct RetrievalModelDims {
  int item_dim = 0;  // D; 0: unknown (checks that need it are skipped)
  int max_history = 0;
};

class RetrievalModel : public DenseModel {
 public:
  virtual int interests() const = 0;  // K
  // True when training predicts the next item at every history position (the encoder): the
  // training Forward then gives one vector per position, [N, 1, D], position i predicting the
  // sample's target i; otherwise (and always in inference) [B, K, D]. A sample without history
  // gets zero interests.
  virtual bool predicts_every_position() const { return false; }
  // `training`: dropout on (drawn from `seed`, a pure function of it), keeps what Backward needs.
  virtual void Forward(const RetrievalInputs& in, bool training, uint64_t seed, Tensor* out) = 0;
  // After Forward(in, training = true): accumulates d(loss)/d(params) into grads() and
  // d(loss)/d(history) into *dhistory ([N, D], +=), given dout shaped as Forward's out.
  virtual void Backward(const RetrievalInputs& in, const Tensor& dout, Tensor* dhistory) = 0;
};

// ---- the registry of retrieval model kinds ------------------------------------------------------

// A kind: a file defining these plus one line in the registry's list (retrieval_model.cc).
struct RetrievalModelKind {
  std::string name;  // the ModelConfig field that selects it ("comirec_sa")
  // The kind's own settings (model.<name>.*): adds "field: problem" for each problem found.
  void (*check)(const config::ModelConfig& config, const RetrievalModelDims& dims,
                config::Problems* problems);
  // Builds the model, weights from `seed`; null for a kind without weights (most_popular).
  // Precondition: check reported nothing.
  std::unique_ptr<RetrievalModel> (*make)(const config::ModelConfig& config,
                                          const RetrievalModelDims& dims, uint64_t seed);
};

// True when config.model selects a retrieval kind (the job is then a retrieval job).
bool IsRetrievalModel(const config::ModelConfig& config);
// The one validation of a retrieval kind's settings.
void CheckRetrievalModelConfig(const config::ModelConfig& config, const RetrievalModelDims& dims,
                               config::Problems* problems);
// The model of config.model (null for most_popular): InvalidArgument naming every field
// CheckRetrievalModelConfig rejects.
Status MakeRetrievalModel(const config::ModelConfig& config, const RetrievalModelDims& dims,
                          uint64_t seed, std::unique_ptr<RetrievalModel>* out);

}  // namespace attnps::models

#endif  // ATTNPS_WORKER_MODELS_RETRIEVAL_MODEL_H_
