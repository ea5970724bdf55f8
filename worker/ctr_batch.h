// CTR batches between the reader and the model: per-table key dedupe across the feature slots,
// gathering the pulled rows into the model's inputs, and summing the input gradients back onto
// the unique keys.
//
// The layout comes from the config's feature slots (config::ToSlotOptions): the target slots
// (columns 3 and 4) make a target row [item row | cate row] (D = item_dim + cate_dim), the
// history slots (5 and 6) a row per position the same way (jagged: each sample's last
// data.max_history positions, nothing padded), and the
// context slots (user, profile, context columns) the user input [B, U], each slot's row side by
// side in config order (a SEQUENCE context slot: the sum of its rows; none: zeros).
// Slots that share a table share its unique keys: each key is pulled and pushed once per batch.
// Thread-safety: a CtrBatcher is used by one thread; batches are independent values.
#ifndef ATTNPS_WORKER_CTR_BATCH_H_
#define ATTNPS_WORKER_CTR_BATCH_H_

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proto/job_config.pb.h"
#include "worker/data/sample.h"
#include "worker/models/ctr_model.h"
#include "worker/task.h"

namespace attnps::worker {

struct CtrSlot {
  std::string name;
  int table = 0;  // index into CtrLayout::tables
  int dim = 0;
  bool sequence = false;
  int column = 0;  // the CTR field, 1-based (config::kUserColumn ...)
};

struct CtrLayout {
  std::vector<SparseTable> tables;  // in order of first use by the slots
  CtrSlot target_item, target_cate, hist_items, hist_cates;
  std::vector<CtrSlot> context;  // U = the sum of their dims
  int max_history = 50;
  int extra_columns = 0;  // the CTR lines' fields after the 6 standard ones

  int item_dim() const { return target_item.dim; }
  int cate_dim() const { return target_cate.dim; }
  int user_dim() const;
};

// The layout of a validated config (table ids as config::ToPsTables).
CtrLayout MakeCtrLayout(const config::JobConfig& config);

// One step's samples (B = num_samples) with, per slot, each id's index into its table's unique
// keys.
struct CtrBatch : TaskBatch {
  std::vector<data::CtrSample> samples;
  std::vector<int32_t> target_item, target_cate;  // [B]
  // Sample b's history positions are [history_offsets[b], history_offsets[b + 1]) of
  // hist_item / hist_cate ([N]).
  std::vector<int32_t> history_offsets;  // [B + 1]
  std::vector<int32_t> hist_item, hist_cate;
  // Per context slot: sample b's key indices are index[offsets[b] .. offsets[b + 1]).
  struct Context {
    std::vector<int32_t> offsets;  // [B + 1]
    std::vector<int32_t> index;
  };
  std::vector<Context> context;
  // Drawn negatives (DIEN's auxiliary loss), [N] like hist_item / hist_cate, or empty.
  std::vector<int32_t> neg_item, neg_cate;
};

// An item and its category: what a negative draw picks.
struct ItemCate {
  uint64_t item = 0, cate = 0;
};

// The "item \t cate" lines of `path` (data.item_cates_path) into *pool. InvalidArgument naming
// the file and line for a malformed line, and for a file without items (`purpose`: what the
// items are for, in that message); NotFound when it cannot be read.
Status ReadItemCates(const std::string& path, const std::string& purpose,
                     std::vector<ItemCate>* pool);

class CtrBatcher {
 public:
  explicit CtrBatcher(CtrLayout layout);
  const CtrLayout& layout() const { return layout_; }

  // The items negatives are drawn from (uniformly), and the seed of the draws; an empty pool
  // draws none.
  void SetNegativePool(std::vector<ItemCate> pool, uint64_t seed);
  // Takes the samples and fills the unique keys of every table and the slot indices. With
  // `draw_negatives` and a pool, every history position also gets a negative item (never the
  // position's own item when the pool has another), a pure function of (seed, step, sample,
  // position): a resumed job draws the same ones.
  void Index(std::vector<data::CtrSample> samples, uint64_t step, CtrBatch* batch,
             bool draw_negatives = false);
  // Gathers the pulled rows into model inputs (tensors resized as needed; negatives empty when
  // the batch has none).
  void Gather(const CtrBatch& batch, models::CtrInputs* in) const;
  // batch->grads[t] = scale * sum of the input gradients of each unique key.
  void Scatter(const models::CtrInputGrads& grads, float scale, CtrBatch* batch) const;

 private:
  int32_t Slot(int table, uint64_t key, CtrBatch* batch);
  void IndexContext(const data::CtrSample& s, CtrBatch* batch);

  void DrawNegative(uint64_t key, uint64_t clicked, CtrBatch* batch);

  CtrLayout layout_;
  std::vector<ItemCate> negative_pool_;
  uint64_t negative_seed_ = 0;
  std::vector<absl::flat_hash_map<uint64_t, int32_t>> seen_;  // per table, reused across batches
};

// labels [B] of a batch.
void BatchLabels(const CtrBatch& batch, Tensor* labels);

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_CTR_BATCH_H_
