// CTR batches between the reader and the model: per-table key dedupe, gathering the pulled rows
// into the model's inputs, and summing the input gradients back onto the unique keys.
//
// Tables (in the SparsePipeline's order): 0 = item (target and history items share it), 1 = cate
// (target and history categories), 2 = user when the job has a user feature. A position's input
// row is [item row | cate row] (D = item_dim + cate_dim); padding positions are zero.
// Thread-safety: a CtrBatcher is used by one thread; batches are independent values.
#ifndef ATTNPS_WORKER_CTR_BATCH_H_
#define ATTNPS_WORKER_CTR_BATCH_H_

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <vector>

#include "worker/data/sample.h"
#include "worker/models/ctr_model.h"
#include "worker/sparse_pipeline.h"

namespace attnps::worker {

struct CtrLayout {
  int item_dim = 0;
  int cate_dim = 0;
  int user_dim = 0;  // 0: no user table
  int max_history = 50;
  int num_tables() const { return user_dim > 0 ? 3 : 2; }
};

// One step's samples with, per table, each slot's index into the table's unique keys.
struct CtrBatch : SparseBatch {
  std::vector<data::CtrSample> samples;
  int batch = 0;                   // B
  int history = 0;                 // T: the longest history in the batch (>= 1)
  std::vector<int32_t> item_slot;  // [B, 1 + T]: target, then history (-1 = padding)
  std::vector<int32_t> cate_slot;  // [B, 1 + T]
  std::vector<int32_t> user_slot;  // [B]
};

class CtrBatcher {
 public:
  explicit CtrBatcher(CtrLayout layout) : layout_(layout) {}
  const CtrLayout& layout() const { return layout_; }

  // Takes the samples and fills the unique keys of every table and the slot indices.
  void Index(std::vector<data::CtrSample> samples, uint64_t step, CtrBatch* batch);
  // Gathers the pulled rows into model inputs (tensors resized as needed).
  void Gather(const CtrBatch& batch, models::CtrInputs* in) const;
  // batch->grads[t] = scale * sum of the input gradients of each unique key.
  void Scatter(const models::CtrInputGrads& grads, float scale, CtrBatch* batch) const;

 private:
  int32_t Slot(int table, uint64_t key, CtrBatch* batch);

  CtrLayout layout_;
  absl::flat_hash_map<uint64_t, int32_t> seen_[3];  // per table, reused across batches
};

// labels [B] of a batch.
void BatchLabels(const CtrBatch& batch, Tensor* labels);

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_CTR_BATCH_H_
