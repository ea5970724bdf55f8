#include "worker/sparse_pipeline.h"

#include <glog/logging.h>

#include <utility>

namespace attnps::worker {

SparsePipeline::SparsePipeline(ps::PsClient* client, std::vector<SparseTable> tables, int staleness)
    : client_(client), tables_(std::move(tables)), staleness_(staleness) {
  CHECK_GE(staleness_, 0) << "staleness must be >= 0";
}

SparsePipeline::~SparsePipeline() {
  // Handles in flight reference the batches' buffers: finish them before those go away.
  for (auto* queue : {&pulling_, &pushing_}) {
    for (InFlight& f : *queue) client_->WaitAll(f.handles);
  }
}

void SparsePipeline::Submit(std::unique_ptr<SparseBatch> batch) {
  CHECK_EQ(batch->keys.size(), tables_.size()) << "batch keys for every table";
  waiting_.push_back(InFlight{std::move(batch), next_index_++, {}});
  IssuePulls();
}

void SparsePipeline::IssuePulls() {
  while (!waiting_.empty() && waiting_.front().index <= acked_ + staleness_) {
    InFlight f = std::move(waiting_.front());
    waiting_.pop_front();
    SparseBatch& b = *f.batch;
    b.rows.resize(tables_.size());
    for (size_t t = 0; t < tables_.size(); ++t) {
      const int64_t n = static_cast<int64_t>(b.keys[t].size());
      b.rows[t].resize(n * tables_[t].dim);
      f.handles.push_back(client_->Pull(tables_[t].id, b.keys[t].data(), n, tables_[t].dim, b.step,
                                        b.rows[t].data()));
    }
    pulling_.push_back(std::move(f));
  }
}

Status SparsePipeline::AckOldestPush() {
  CHECK(!pushing_.empty());
  InFlight f = std::move(pushing_.front());
  pushing_.pop_front();
  ATTNPS_RETURN_IF_ERROR(
      client_->WaitAll(f.handles).WithContext("push of step " + std::to_string(f.batch->step)));
  ++acked_;
  IssuePulls();
  return Status::Ok();
}

Status SparsePipeline::Next(std::unique_ptr<SparseBatch>* batch) {
  CHECK(!pulling_.empty() || !waiting_.empty()) << "SparsePipeline::Next without a batch";
  while (pulling_.empty()) ATTNPS_RETURN_IF_ERROR(AckOldestPush());
  InFlight f = std::move(pulling_.front());
  pulling_.pop_front();
  ATTNPS_RETURN_IF_ERROR(
      client_->WaitAll(f.handles).WithContext("pull of step " + std::to_string(f.batch->step)));
  *batch = std::move(f.batch);
  return Status::Ok();
}

Status SparsePipeline::Push(std::unique_ptr<SparseBatch> batch) {
  CHECK_EQ(batch->grads.size(), tables_.size()) << "batch grads for every table";
  InFlight f{std::move(batch), 0, {}};
  SparseBatch& b = *f.batch;
  for (size_t t = 0; t < tables_.size(); ++t) {
    const int64_t n = static_cast<int64_t>(b.keys[t].size());
    CHECK_EQ(b.grads[t].size(), static_cast<size_t>(n * tables_[t].dim));
    f.handles.push_back(client_->Push(tables_[t].id, b.keys[t].data(), n, tables_[t].dim,
                                      b.grads[t].data(), b.step));
  }
  pushing_.push_back(std::move(f));
  // Older pushes beyond the bound are acknowledged now, so their buffers do not pile up.
  while (static_cast<int>(pushing_.size()) > staleness_ + 1)
    ATTNPS_RETURN_IF_ERROR(AckOldestPush());
  return Status::Ok();
}

Status SparsePipeline::Drain() {
  while (!pushing_.empty()) ATTNPS_RETURN_IF_ERROR(AckOldestPush());
  return Status::Ok();
}

}  // namespace attnps::worker
