#include "worker/ctr_batch.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>

namespace attnps::worker {
namespace {

constexpr int kItem = 0, kCate = 1, kUser = 2;

void CopyRow(const std::vector<float>& rows, int32_t slot, int dim, float* dst) {
  std::memcpy(dst, rows.data() + static_cast<size_t>(slot) * dim, sizeof(float) * dim);
}

void AddRow(const float* src, float scale, int32_t slot, int dim, std::vector<float>* grads) {
  float* dst = grads->data() + static_cast<size_t>(slot) * dim;
  for (int d = 0; d < dim; ++d) dst[d] += scale * src[d];
}

}  // namespace

int32_t CtrBatcher::Slot(int table, uint64_t key, CtrBatch* batch) {
  auto [it, inserted] = seen_[table].try_emplace(key, 0);
  if (inserted) {
    it->second = static_cast<int32_t>(batch->keys[table].size());
    batch->keys[table].push_back(key);
  }
  return it->second;
}

void CtrBatcher::Index(std::vector<data::CtrSample> samples, uint64_t step, CtrBatch* batch) {
  const int tables = layout_.num_tables();
  for (int t = 0; t < tables; ++t) seen_[t].clear();
  batch->step = step;
  batch->keys.assign(tables, {});
  batch->samples = std::move(samples);
  const int B = static_cast<int>(batch->samples.size());
  int T = 1;
  for (const auto& s : batch->samples) {
    T = std::max(T, std::min<int>(static_cast<int>(s.hist_items.size()), layout_.max_history));
  }
  batch->batch = B;
  batch->history = T;
  batch->item_slot.assign(static_cast<size_t>(B) * (1 + T), -1);
  batch->cate_slot.assign(static_cast<size_t>(B) * (1 + T), -1);
  batch->user_slot.assign(layout_.user_dim > 0 ? B : 0, -1);
  for (int b = 0; b < B; ++b) {
    const data::CtrSample& s = batch->samples[b];
    int32_t* items = &batch->item_slot[static_cast<size_t>(b) * (1 + T)];
    int32_t* cates = &batch->cate_slot[static_cast<size_t>(b) * (1 + T)];
    items[0] = Slot(kItem, s.item, batch);
    cates[0] = Slot(kCate, s.cate, batch);
    const size_t len = s.hist_items.size();
    const size_t first = len > static_cast<size_t>(T) ? len - T : 0;  // the last T items
    for (size_t i = first; i < len; ++i) {
      items[1 + i - first] = Slot(kItem, s.hist_items[i], batch);
      cates[1 + i - first] = Slot(kCate, s.hist_cates[i], batch);
    }
    if (layout_.user_dim > 0) batch->user_slot[b] = Slot(kUser, s.user, batch);
  }
}

void CtrBatcher::Gather(const CtrBatch& batch, models::CtrInputs* in) const {
  const int B = batch.batch, T = batch.history;
  const int di = layout_.item_dim, dc = layout_.cate_dim, D = di + dc;
  in->target.EnsureShape({B, D});
  in->history.EnsureShape({B, T, D});
  in->mask.EnsureShape({B, T});
  if (layout_.user_dim > 0) in->user.EnsureShape({B, layout_.user_dim});
  for (int b = 0; b < B; ++b) {
    const int32_t* items = &batch.item_slot[static_cast<size_t>(b) * (1 + T)];
    const int32_t* cates = &batch.cate_slot[static_cast<size_t>(b) * (1 + T)];
    float* q = in->target.data() + static_cast<size_t>(b) * D;
    CopyRow(batch.rows[kItem], items[0], di, q);
    CopyRow(batch.rows[kCate], cates[0], dc, q + di);
    for (int t = 0; t < T; ++t) {
      float* k = in->history.data() + (static_cast<size_t>(b) * T + t) * D;
      const bool valid = items[1 + t] >= 0;
      in->mask.data()[static_cast<size_t>(b) * T + t] = valid ? 1.0f : 0.0f;
      if (!valid) {
        std::memset(k, 0, sizeof(float) * D);
        continue;
      }
      CopyRow(batch.rows[kItem], items[1 + t], di, k);
      CopyRow(batch.rows[kCate], cates[1 + t], dc, k + di);
    }
    if (layout_.user_dim > 0) {
      CopyRow(batch.rows[kUser], batch.user_slot[b], layout_.user_dim,
              in->user.data() + static_cast<size_t>(b) * layout_.user_dim);
    }
  }
}

void CtrBatcher::Scatter(const models::CtrInputGrads& g, float scale, CtrBatch* batch) const {
  const int B = batch->batch, T = batch->history;
  const int di = layout_.item_dim, dc = layout_.cate_dim, D = di + dc;
  const int tables = layout_.num_tables();
  batch->grads.resize(tables);
  const int dims[3] = {di, dc, layout_.user_dim};
  for (int t = 0; t < tables; ++t) batch->grads[t].assign(batch->keys[t].size() * dims[t], 0.0f);
  for (int b = 0; b < B; ++b) {
    const int32_t* items = &batch->item_slot[static_cast<size_t>(b) * (1 + T)];
    const int32_t* cates = &batch->cate_slot[static_cast<size_t>(b) * (1 + T)];
    const float* dq = g.target.data() + static_cast<size_t>(b) * D;
    AddRow(dq, scale, items[0], di, &batch->grads[kItem]);
    AddRow(dq + di, scale, cates[0], dc, &batch->grads[kCate]);
    for (int t = 0; t < T; ++t) {
      if (items[1 + t] < 0) continue;
      const float* dk = g.history.data() + (static_cast<size_t>(b) * T + t) * D;
      AddRow(dk, scale, items[1 + t], di, &batch->grads[kItem]);
      AddRow(dk + di, scale, cates[1 + t], dc, &batch->grads[kCate]);
    }
    if (layout_.user_dim > 0) {
      AddRow(g.user.data() + static_cast<size_t>(b) * layout_.user_dim, scale, batch->user_slot[b],
             layout_.user_dim, &batch->grads[kUser]);
    }
  }
}

void BatchLabels(const CtrBatch& batch, Tensor* labels) {
  labels->EnsureShape({batch.batch});
  for (int b = 0; b < batch.batch; ++b) labels->data()[b] = batch.samples[b].label;
}

}  // namespace attnps::worker
