// TopKIndex: maximum-inner-product search over item vectors: an exact index for evaluation (our
// own blocked GEMM + selection, no FAISS), an approximate one (FAISS HNSW or IVF, both
// inner-product, Debian's libfaiss-dev) for serving.
//
// Exact search (kExact): the items are kept as a row-major [n, d] copy. Search splits the queries
// into chunks (and, when there are fewer query chunks than threads, the items into ranges), one
// OpenMP task per (chunk, range); each task scores item blocks with a single-threaded
// attnps::Gemm(false, true) into a cache-sized scratch [query block, item block] and keeps each
// query's best k: only scores that beat the current k-th best enter (an AVX-512 / AVX2 compare
// skips the rest) a 2k buffer that nth_element cuts back to k when full. Order: descending score,
// ties by the smaller id (not the row); the result is deterministic (the same whatever the blocks
// and the thread count, given the same GEMM scores). Items whose score is NaN are never returned.
//
// Ownership: the index copies the vectors it is built from. Thread-safety: Search is const and
// may run concurrently; it uses OpenMP threads inside a call (FAISS too). Errors: Status naming
// the setting (Build), never a crash on bad options.
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
  // Exact: queries and items per GEMM block (the scratch is their product in floats);
  // 0 = the defaults (tuned with bench/topk_bench.cc, see docs/retrieval.md).
  int exact_query_block = 0;
  int exact_item_block = 0;
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

  // queries [q, d] -> (*out)[i] the top min(k, n) items of query i by descending inner product,
  // ties by the smaller id (exact; an approximate index keeps FAISS's order and may return fewer).
  void Search(const float* queries, int64_t q, int k,
              std::vector<std::vector<metrics::ScoredItem>>* out) const;

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t dim() const { return d_; }

 private:
  TopKIndex(std::unique_ptr<faiss::Index> index, std::vector<float> vectors,
            std::vector<uint64_t> ids, int64_t d, int query_block, int item_block);
  void SearchExact(const float* queries, int64_t q, int64_t k,
                   std::vector<std::vector<metrics::ScoredItem>>* out) const;

  std::unique_ptr<faiss::Index> index_;  // HNSW or IVF; null for kExact
  std::vector<float> vectors_;           // kExact: [n, d] row-major
  std::vector<uint64_t> ids_;
  int64_t d_;
  int query_block_, item_block_;
};

}  // namespace attnps::worker

#endif  // ATTNPS_WORKER_TOPK_INDEX_H_
