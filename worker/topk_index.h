// TopKIndex: maximum-inner-product search over item vectors through FAISS (Debian's
// libfaiss-dev): an exact index (IndexFlatIP) for evaluation, an approximate one (HNSW or IVF,
// both inner-product) for serving.
//
// Ownership: the index copies the vectors it is built from. Thread-safety: Search is const and
// may run concurrently; FAISS itself uses OpenMP threads inside a call. Errors: Status naming the
// setting (Build), never a crash on bad options.
#ifndef ATTNPS_WORKER_TOPK_INDEX_H_
#define ATTNPS_WORKER_TOPK_INDEX_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "ops/status.h"
#include "worker/metrics/retrieval_metrics.h"

namespace faiss {
struct Index;
}

namespace attnps::worker {

struct TopKIndexOptions {
  enum class Kind { kExact, kHnsw, kIvf };
  Kind kind = Kind::kExact;
  int hnsw_m = 32;           // HNSW: neighbours per node
  int hnsw_ef_search = 128;  // HNSW: candidate list at search time (>= k is enforced)
  int ivf_lists = 0;         // IVF: inverted lists; 0 = about 4 sqrt(N)
  int ivf_probe = 16;        // IVF: lists visited per query
  uint64_t seed = 1;         // IVF: the k-means seed
};

class TopKIndex {
 public:
  // vectors [n, d] row-major with ids[i] the id of row i; n >= 1, d >= 1, ids.size() = n.
  // InvalidArgument naming the field for bad sizes or options.
  static Status Build(const TopKIndexOptions& options, const float* vectors, int64_t n, int64_t d,
                      std::vector<uint64_t> ids, std::unique_ptr<TopKIndex>* out);
  ~TopKIndex();
  TopKIndex(const TopKIndex&) = delete;
  TopKIndex& operator=(const TopKIndex&) = delete;

  // queries [q, d] -> (*out)[i] the top min(k, n) items of query i by descending inner product.
  // An approximate index may return fewer.
  void Search(const float* queries, int64_t q, int k,
              std::vector<std::vector<metrics::ScoredItem>>* out) const;

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t dim() const { return d_; }

 private:
  TopKIndex(std::unique_ptr<faiss::Index> index, std::vector<uint64_t> ids, int64_t d);

  std::unique_ptr<faiss::Index> index_;
  std::vector<uint64_t> ids_;
  int64_t d_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_TOPK_INDEX_H_
