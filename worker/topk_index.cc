#include "worker/topk_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace attnps::worker {
namespace {

Status CheckOptions(const TopKIndexOptions& o, int64_t n, int64_t d, size_t ids) {
  if (n < 1) return Status::InvalidArgument("top-K index: no vectors (n = 0)");
  if (d < 1)
    return Status::InvalidArgument("top-K index: dim must be >= 1, got " + std::to_string(d));
  if (ids != static_cast<size_t>(n)) {
    return Status::InvalidArgument("top-K index: " + std::to_string(ids) + " ids for " +
                                   std::to_string(n) + " vectors");
  }
  if (o.hnsw_m < 2) return Status::InvalidArgument("hnsw_m must be >= 2");
  if (o.hnsw_ef_search < 1) return Status::InvalidArgument("hnsw_ef_search must be >= 1");
  if (o.ivf_lists < 0) return Status::InvalidArgument("ivf_lists must be >= 0");
  if (o.ivf_lists > n) {
    return Status::InvalidArgument("ivf_lists " + std::to_string(o.ivf_lists) + " exceeds the " +
                                   std::to_string(n) + " vectors");
  }
  if (o.ivf_probe < 1) return Status::InvalidArgument("ivf_probe must be >= 1");
  return Status::Ok();
}

std::unique_ptr<faiss::Index> MakeIndex(const TopKIndexOptions& o, const float* x, int64_t n,
                                        int64_t d) {
  using Kind = TopKIndexOptions::Kind;
  if (o.kind == Kind::kHnsw) {
    auto index = std::make_unique<faiss::IndexHNSWFlat>(static_cast<int>(d), o.hnsw_m,
                                                        faiss::METRIC_INNER_PRODUCT);
    index->hnsw.efSearch = o.hnsw_ef_search;  // faiss searches with max(efSearch, k)
    index->add(n, x);
    return index;
  }
  if (o.kind == Kind::kIvf) {
    const int64_t lists =
        o.ivf_lists > 0
            ? o.ivf_lists
            : std::clamp<int64_t>(std::llround(4 * std::sqrt(static_cast<double>(n))), 1, n);
    auto quantizer = new faiss::IndexFlatIP(d);  // owned by the IVF index (own_fields)
    auto index =
        std::make_unique<faiss::IndexIVFFlat>(quantizer, d, lists, faiss::METRIC_INNER_PRODUCT);
    index->own_fields = true;
    index->cp.seed = static_cast<int>(o.seed);
    index->cp.verbose = false;
    index->verbose = false;
    index->train(n, x);
    index->add(n, x);
    index->nprobe = static_cast<size_t>(std::min<int64_t>(o.ivf_probe, lists));
    return index;
  }
  auto index = std::make_unique<faiss::IndexFlatIP>(d);
  index->add(n, x);
  return index;
}

}  // namespace

TopKIndex::TopKIndex(std::unique_ptr<faiss::Index> index, std::vector<uint64_t> ids, int64_t d)
    : index_(std::move(index)), ids_(std::move(ids)), d_(d) {}

TopKIndex::~TopKIndex() = default;

Status TopKIndex::Build(const TopKIndexOptions& options, const float* vectors, int64_t n, int64_t d,
                        std::vector<uint64_t> ids, std::unique_ptr<TopKIndex>* out) {
  ATTNPS_RETURN_IF_ERROR(CheckOptions(options, n, d, ids.size()));
  try {
    std::unique_ptr<faiss::Index> index = MakeIndex(options, vectors, n, d);
    out->reset(new TopKIndex(std::move(index), std::move(ids), d));
  } catch (const faiss::FaissException& e) {
    return Status::InvalidArgument(std::string("top-K index: faiss: ") + e.what());
  }
  return Status::Ok();
}

void TopKIndex::Search(const float* queries, int64_t q, int k,
                       std::vector<std::vector<metrics::ScoredItem>>* out) const {
  out->assign(static_cast<size_t>(std::max<int64_t>(q, 0)), {});
  const int64_t kk = std::min<int64_t>(std::max(k, 0), size());
  if (q <= 0 || kk == 0) return;
  std::vector<float> scores(static_cast<size_t>(q * kk));
  std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(q * kk));
  index_->search(q, queries, kk, scores.data(), labels.data());
  for (int64_t i = 0; i < q; ++i) {
    auto& list = (*out)[i];
    for (int64_t j = 0; j < kk; ++j) {
      const faiss::Index::idx_t label = labels[i * kk + j];
      if (label < 0) continue;  // an approximate index found fewer
      list.push_back({ids_[static_cast<size_t>(label)], scores[i * kk + j]});
    }
  }
}

}  // namespace attnps::worker
