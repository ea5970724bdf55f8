#include "worker/ctr_batch.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>

#include "ops/random.h"
#include "worker/checkpoint.h"
#include "worker/config/job_config.h"
#include "worker/data/text.h"

namespace attnps::worker {
namespace {

void CopyRow(const std::vector<float>& rows, int32_t slot, int dim, float* dst) {
  std::memcpy(dst, rows.data() + static_cast<size_t>(slot) * dim, sizeof(float) * dim);
}

void AddRow(const float* src, float scale, int32_t slot, int dim, std::vector<float>* grads) {
  float* dst = grads->data() + static_cast<size_t>(slot) * dim;
  for (int d = 0; d < dim; ++d) dst[d] += scale * src[d];
}

// The ids a context slot reads from a sample: the user (column 2) or an extra column. A SINGLE
// slot takes the field's first id (0 when the field is empty).
const uint64_t* ContextIds(const data::CtrSample& s, const CtrSlot& slot, size_t* n) {
  static constexpr uint64_t kNone = 0;
  if (slot.column == config::kUserColumn) {
    *n = 1;
    return &s.user;
  }
  const std::vector<uint64_t>& ids = s.extra[slot.column - config::kFirstExtraColumn];
  if (!slot.sequence) {
    *n = 1;
    return ids.empty() ? &kNone : ids.data();
  }
  *n = ids.size();
  return ids.data();
}

}  // namespace

int CtrLayout::user_dim() const {
  int u = 0;
  for (const CtrSlot& c : context) u += c.dim;
  return u;
}

CtrLayout MakeCtrLayout(const config::JobConfig& config) {
  const std::vector<ps::TableConfig> ps_tables = config::ToPsTables(config);
  CtrLayout layout;
  std::vector<int> pipeline_index(ps_tables.size(), -1);
  for (const config::SlotOptions& o : config::ToSlotOptions(config)) {
    if (pipeline_index[o.table] < 0) {
      pipeline_index[o.table] = static_cast<int>(layout.tables.size());
      layout.tables.push_back({ps_tables[o.table].id, o.dim});
    }
    const CtrSlot slot{o.name, pipeline_index[o.table], o.dim, o.sequence, o.column};
    switch (o.column) {
      case config::kTargetItemColumn:
        layout.target_item = slot;
        break;
      case config::kTargetCateColumn:
        layout.target_cate = slot;
        break;
      case config::kHistItemsColumn:
        layout.hist_items = slot;
        break;
      case config::kHistCatesColumn:
        layout.hist_cates = slot;
        break;
      default:
        layout.context.push_back(slot);
    }
  }
  layout.max_history = config.data().max_history();
  layout.extra_columns = config::ExtraColumns(config);
  return layout;
}

CtrBatcher::CtrBatcher(CtrLayout layout) : layout_(std::move(layout)) {
  seen_.resize(layout_.tables.size());
}

int32_t CtrBatcher::Slot(int table, uint64_t key, CtrBatch* batch) {
  ++batch->lookups;
  auto [it, inserted] = seen_[table].try_emplace(key, 0);
  if (inserted) {
    it->second = static_cast<int32_t>(batch->keys[table].size());
    batch->keys[table].push_back(key);
  }
  return it->second;
}

void CtrBatcher::IndexContext(const data::CtrSample& s, CtrBatch* batch) {
  for (size_t c = 0; c < layout_.context.size(); ++c) {
    const CtrSlot& slot = layout_.context[c];
    CtrBatch::Context& ctx = batch->context[c];
    size_t n = 0;
    const uint64_t* ids = ContextIds(s, slot, &n);
    for (size_t i = 0; i < n; ++i) ctx.index.push_back(Slot(slot.table, ids[i], batch));
    ctx.offsets.push_back(static_cast<int32_t>(ctx.index.size()));
  }
}

void CtrBatcher::SetNegativePool(std::vector<ItemCate> pool, uint64_t seed) {
  negative_pool_ = std::move(pool);
  negative_seed_ = seed;
}

// Up to 8 draws until one differs from the clicked item (the pool may hold only that one).
void CtrBatcher::DrawNegative(uint64_t key, uint64_t clicked, CtrBatch* batch) {
  const uint64_t size = negative_pool_.size();
  const ItemCate* pick = nullptr;
  for (uint64_t attempt = 0; attempt < 8; ++attempt) {
    pick = &negative_pool_[StreamBits(key, attempt) % size];
    if (pick->item != clicked) break;
  }
  batch->neg_item.push_back(Slot(layout_.target_item.table, pick->item, batch));
  batch->neg_cate.push_back(Slot(layout_.target_cate.table, pick->cate, batch));
}

void CtrBatcher::Index(std::vector<data::CtrSample> samples, uint64_t step, CtrBatch* batch,
                       bool draw_negatives) {
  for (auto& seen : seen_) seen.clear();
  batch->step = step;
  batch->lookups = 0;
  batch->keys.assign(layout_.tables.size(), {});
  batch->samples = std::move(samples);
  const int B = static_cast<int>(batch->samples.size());
  batch->num_samples = B;
  batch->target_item.resize(B);
  batch->target_cate.resize(B);
  batch->history_offsets.assign(1, 0);
  batch->hist_item.clear();
  batch->hist_cate.clear();
  batch->neg_item.clear();
  batch->neg_cate.clear();
  const bool negatives = draw_negatives && !negative_pool_.empty();
  batch->context.assign(layout_.context.size(), {});
  for (CtrBatch::Context& ctx : batch->context) ctx.offsets.assign(1, 0);
  const int item_table = layout_.target_item.table, cate_table = layout_.target_cate.table;
  const size_t max_history = static_cast<size_t>(layout_.max_history);
  for (int b = 0; b < B; ++b) {
    const data::CtrSample& s = batch->samples[b];
    batch->target_item[b] = Slot(item_table, s.item, batch);
    batch->target_cate[b] = Slot(cate_table, s.cate, batch);
    const size_t len = s.hist_items.size();
    for (size_t i = len > max_history ? len - max_history : 0; i < len; ++i) {  // the last ones
      batch->hist_item.push_back(Slot(item_table, s.hist_items[i], batch));
      batch->hist_cate.push_back(Slot(cate_table, s.hist_cates[i], batch));
      if (negatives) {
        DrawNegative(StreamKey(negative_seed_, step, StreamKey(b, i, s.user)), s.hist_items[i],
                     batch);
      }
    }
    batch->history_offsets.push_back(static_cast<int32_t>(batch->hist_item.size()));
    IndexContext(s, batch);
  }
}

void CtrBatcher::Gather(const CtrBatch& batch, models::CtrInputs* in) const {
  const int B = batch.num_samples, N = static_cast<int>(batch.hist_item.size());
  const int di = layout_.item_dim(), dc = layout_.cate_dim(), D = di + dc;
  const int U = layout_.user_dim();
  const auto& item_rows = batch.rows[layout_.target_item.table];
  const auto& cate_rows = batch.rows[layout_.target_cate.table];
  in->target.EnsureCapacity({B, D});
  in->history.EnsureCapacity({N, D});
  in->history_offsets = batch.history_offsets;
  if (U > 0) in->user.EnsureCapacity({B, U});
  for (int b = 0; b < B; ++b) {
    float* q = in->target.data() + static_cast<size_t>(b) * D;
    CopyRow(item_rows, batch.target_item[b], di, q);
    CopyRow(cate_rows, batch.target_cate[b], dc, q + di);
  }
  for (int n = 0; n < N; ++n) {
    float* k = in->history.data() + static_cast<size_t>(n) * D;
    CopyRow(item_rows, batch.hist_item[n], di, k);
    CopyRow(cate_rows, batch.hist_cate[n], dc, k + di);
  }
  if (batch.neg_item.empty()) {
    in->negatives = Tensor();
  } else {
    in->negatives.EnsureCapacity({N, D});
    for (int n = 0; n < N; ++n) {
      float* k = in->negatives.data() + static_cast<size_t>(n) * D;
      CopyRow(item_rows, batch.neg_item[n], di, k);
      CopyRow(cate_rows, batch.neg_cate[n], dc, k + di);
    }
  }
  for (int b = 0; b < B; ++b) {
    float* u = U > 0 ? in->user.data() + static_cast<size_t>(b) * U : nullptr;
    for (size_t c = 0; c < layout_.context.size(); ++c) {
      const CtrSlot& slot = layout_.context[c];
      const CtrBatch::Context& ctx = batch.context[c];
      const auto& rows = batch.rows[slot.table];
      const int32_t begin = ctx.offsets[b], end = ctx.offsets[b + 1];
      if (!slot.sequence) {
        CopyRow(rows, ctx.index[begin], slot.dim, u);
      } else {
        std::memset(u, 0, sizeof(float) * slot.dim);
        for (int32_t i = begin; i < end; ++i) {
          const float* r = rows.data() + static_cast<size_t>(ctx.index[i]) * slot.dim;
          for (int d = 0; d < slot.dim; ++d) u[d] += r[d];
        }
      }
      u += slot.dim;
    }
  }
}

void CtrBatcher::Scatter(const models::CtrInputGrads& g, float scale, CtrBatch* batch) const {
  const int B = batch->num_samples, N = static_cast<int>(batch->hist_item.size());
  const int di = layout_.item_dim(), dc = layout_.cate_dim(), D = di + dc;
  const int U = layout_.user_dim();
  const size_t tables = layout_.tables.size();
  batch->grads.resize(tables);
  for (size_t t = 0; t < tables; ++t) {
    batch->grads[t].assign(batch->keys[t].size() * layout_.tables[t].dim, 0.0f);
  }
  auto& item_grads = batch->grads[layout_.target_item.table];
  auto& cate_grads = batch->grads[layout_.target_cate.table];
  for (int b = 0; b < B; ++b) {
    const float* dq = g.target.data() + static_cast<size_t>(b) * D;
    AddRow(dq, scale, batch->target_item[b], di, &item_grads);
    AddRow(dq + di, scale, batch->target_cate[b], dc, &cate_grads);
  }
  for (int n = 0; n < N && !g.history.empty(); ++n) {
    const float* dk = g.history.data() + static_cast<size_t>(n) * D;
    AddRow(dk, scale, batch->hist_item[n], di, &item_grads);
    AddRow(dk + di, scale, batch->hist_cate[n], dc, &cate_grads);
  }
  const bool negatives = !g.negatives.empty() && !batch->neg_item.empty();
  for (int n = 0; n < N && negatives; ++n) {
    const float* dk = g.negatives.data() + static_cast<size_t>(n) * D;
    AddRow(dk, scale, batch->neg_item[n], di, &item_grads);
    AddRow(dk + di, scale, batch->neg_cate[n], dc, &cate_grads);
  }
  for (int b = 0; b < B; ++b) {
    const float* du = U > 0 ? g.user.data() + static_cast<size_t>(b) * U : nullptr;
    for (size_t c = 0; c < layout_.context.size(); ++c) {
      const CtrSlot& slot = layout_.context[c];
      const CtrBatch::Context& ctx = batch->context[c];
      for (int32_t i = ctx.offsets[b]; i < ctx.offsets[b + 1]; ++i) {
        AddRow(du, scale, ctx.index[i], slot.dim, &batch->grads[slot.table]);
      }
      du += slot.dim;
    }
  }
}

void BatchLabels(const CtrBatch& batch, Tensor* labels) {
  labels->EnsureShape({batch.num_samples});
  for (int b = 0; b < batch.num_samples; ++b) labels->data()[b] = batch.samples[b].label;
}

Status ReadItemCates(const std::string& path, const std::string& purpose,
                     std::vector<ItemCate>* pool) {
  std::string text;
  ATTNPS_RETURN_IF_ERROR(ReadFile(path, &text));
  size_t line_no = 0;
  for (std::string_view rest = text; !rest.empty();) {
    const size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t tab = line.find('\t');
    ItemCate ic;
    if (tab == std::string_view::npos || !data::ParseUint64(line.substr(0, tab), &ic.item) ||
        !data::ParseUint64(line.substr(tab + 1), &ic.cate)) {
      return Status::InvalidArgument(
          "data.item_cates_path " + path + ":" + std::to_string(line_no) +
          ": expected \"item<TAB>cate\" (two unsigned integers), got \"" +
          std::string(line.substr(0, 80)) + "\"");
    }
    pool->push_back(ic);
  }
  if (pool->empty()) {
    return Status::InvalidArgument("data.item_cates_path " + path + ": no items (" + purpose + ")");
  }
  return Status::Ok();
}

}  // namespace attnps::worker
