#include "worker/topk_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "ops/blas.h"
#include "ops/parallel.h"

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
  if (o.exact_query_block < 0) return Status::InvalidArgument("exact_query_block must be >= 0");
  if (o.exact_item_block < 0) return Status::InvalidArgument("exact_item_block must be >= 0");
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
  return nullptr;  // kExact: our own search over a copy of the vectors
}

// ---- exact search: blocked GEMM + per-query heap -------------------------------------------

// The default blocks: the scratch [query block, item block] (512 KB) stays in a core's L2. On the
// 2-core AVX-512 dev VM (oneDNN sgemm, d 64, 1024 x 50000, k 50) 64..256 x 512..2048 all run
// within ~10% of each other; 128 x 1024 was among the best (docs/retrieval.md).
constexpr int kDefaultQueryBlock = 128;
constexpr int kDefaultItemBlock = 1024;
// A task's selection buffers hold at most this many entries (large k: fewer queries per task).
constexpr int64_t kMaxHeapEntries = int64_t{1} << 20;

struct Entry {
  float score;
  uint64_t id;
};

// a ranks below b: a lower score, or the same score and a larger id.
inline bool Worse(const Entry& a, const Entry& b) {
  return a.score < b.score || (a.score == b.score && a.id > b.id);
}
inline bool Better(const Entry& a, const Entry& b) { return Worse(b, a); }

// One query's best k so far: a buffer of up to 2k candidates; when it fills, nth_element keeps
// the best k and their worst becomes the bar a later item must beat (a heap's sift per insert
// costs more once k is in the hundreds).
struct Selection {
  Entry* buf;  // [2k]
  int64_t k;
  int64_t count = 0;
  float threshold = -std::numeric_limits<float>::infinity();  // scores below it cannot enter
  uint64_t worst_id = 0;  // after the first compaction: the k-th best's id (ties: smaller id wins)
  bool compacted = false;

  void Compact() {
    std::nth_element(buf, buf + k - 1, buf + count, Better);
    count = k;
    threshold = buf[k - 1].score;
    worst_id = buf[k - 1].id;
    compacted = true;
  }
  void Add(float s, uint64_t id) {
    if (!(s >= threshold)) return;  // NaN never enters
    if (compacted && s == threshold && id >= worst_id) return;
    buf[count++] = {s, id};
    if (count == 2 * k) Compact();
  }
  // The best min(k, added) by (score desc, id asc) in buf[0, count).
  void Finish() {
    if (count > k) Compact();
    std::sort(buf, buf + count, Better);
  }
};

// Offers scores[0, nb) of the items ids[0, nb) to sel; a SIMD compare skips every score below
// the current bar.
void Offer(const float* scores, const uint64_t* ids, int64_t nb, Selection* sel) {
  auto consider = [&](int64_t j) { sel->Add(scores[j], ids[j]); };
  [[maybe_unused]] const float& threshold = sel->threshold;  // rises as sel compacts
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 64 <= nb; j += 64) {
    const __m512 a = _mm512_loadu_ps(scores + j), b = _mm512_loadu_ps(scores + j + 16);
    const __m512 c = _mm512_loadu_ps(scores + j + 32), d = _mm512_loadu_ps(scores + j + 48);
    const __m512 t = _mm512_set1_ps(threshold);
    // max ignores a NaN operand when the other is a number; the exact test is in consider.
    // (maskz_max, not max: GCC 12 warns about _mm512_max_ps's undefined pass-through.)
    const __mmask16 all = 0xFFFF;
    const __m512 m =
        _mm512_maskz_max_ps(all, _mm512_maskz_max_ps(all, a, b), _mm512_maskz_max_ps(all, c, d));
    if (_mm512_cmp_ps_mask(m, t, _CMP_GE_OQ) == 0) continue;
    for (int64_t jj = j; jj < j + 64; jj += 16) {
      unsigned mask =
          _mm512_cmp_ps_mask(_mm512_loadu_ps(scores + jj), _mm512_set1_ps(threshold), _CMP_GE_OQ);
      while (mask != 0) {
        consider(jj + __builtin_ctz(mask));
        mask &= mask - 1;
      }
    }
  }
#elif defined(__AVX2__)
  for (; j + 32 <= nb; j += 32) {
    const __m256 a = _mm256_loadu_ps(scores + j), b = _mm256_loadu_ps(scores + j + 8);
    const __m256 c = _mm256_loadu_ps(scores + j + 16), d = _mm256_loadu_ps(scores + j + 24);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(a, b), _mm256_max_ps(c, d));
    if (_mm256_movemask_ps(_mm256_cmp_ps(m, _mm256_set1_ps(threshold), _CMP_GE_OQ)) == 0) continue;
    for (int64_t jj = j; jj < j + 32; jj += 8) {
      unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_loadu_ps(scores + jj), _mm256_set1_ps(threshold), _CMP_GE_OQ)));
      while (mask != 0) {
        consider(jj + __builtin_ctz(mask));
        mask &= mask - 1;
      }
    }
  }
#endif
  for (; j < nb; ++j) consider(j);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

TopKIndex::TopKIndex(std::unique_ptr<faiss::Index> index, std::vector<float> vectors,
                     std::vector<uint64_t> ids, int64_t d, int query_block, int item_block)
    : index_(std::move(index)),
      vectors_(std::move(vectors)),
      ids_(std::move(ids)),
      d_(d),
      query_block_(query_block > 0 ? query_block : kDefaultQueryBlock),
      item_block_(item_block > 0 ? item_block : kDefaultItemBlock) {}

TopKIndex::~TopKIndex() = default;

Status TopKIndex::Build(const TopKIndexOptions& options, const float* vectors, int64_t n, int64_t d,
                        std::vector<uint64_t> ids, std::unique_ptr<TopKIndex>* out) {
  ATTNPS_RETURN_IF_ERROR(CheckOptions(options, n, d, ids.size()));
  try {
    std::unique_ptr<faiss::Index> index = MakeIndex(options, vectors, n, d);
    std::vector<float> copy;
    if (index == nullptr) copy.assign(vectors, vectors + n * d);
    out->reset(new TopKIndex(std::move(index), std::move(copy), std::move(ids), d,
                             options.exact_query_block, options.exact_item_block));
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
  if (index_ == nullptr) {
    SearchExact(queries, q, kk, out);
    return;
  }
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

void TopKIndex::SearchExact(const float* queries, int64_t q, int64_t kk,
                            std::vector<std::vector<metrics::ScoredItem>>* out) const {
  const int64_t n = size(), d = d_;
  const int64_t threads = std::max(1, NumThreads());
  // Query chunks: at most query_block_ queries (fewer for a large k), a multiple of the threads.
  const int64_t block = std::clamp<int64_t>(kMaxHeapEntries / (2 * kk), 1, query_block_);
  int64_t chunks = std::max(CeilDiv(q, block), std::min(q, threads));
  if (chunks > threads) chunks = std::min(q, CeilDiv(chunks, threads) * threads);
  const int64_t qc = CeilDiv(q, chunks);
  chunks = CeilDiv(q, qc);
  // Fewer chunks than threads (few queries): the items split into ranges too, merged after.
  const int64_t splits =
      std::clamp<int64_t>(CeilDiv(threads, chunks), 1, std::max<int64_t>(1, n / item_block_));
  const int64_t range = CeilDiv(n, splits);
  std::vector<std::vector<Entry>> partial(splits > 1 ? static_cast<size_t>(q * splits) : 0);
  const int64_t tasks = chunks * splits;
  ParallelFor(tasks, qc * range * d, [&](int64_t t) {
    const int64_t c = t / splits, s = t % splits;
    const int64_t q0 = c * qc, qn = std::min(qc, q - q0);
    const int64_t lo = s * range, hi = std::min(n, lo + range);
    if (qn <= 0 || lo >= hi) return;
    const int64_t ib = std::min<int64_t>(item_block_, hi - lo);
    std::unique_ptr<float[]> scratch(new float[static_cast<size_t>(qn * ib)]);
    std::vector<Entry> buffers(static_cast<size_t>(qn * 2 * kk));
    std::vector<Selection> sel(static_cast<size_t>(qn));
    for (int64_t r = 0; r < qn; ++r) {
      sel[r].buf = buffers.data() + r * 2 * kk;
      sel[r].k = kk;
    }
    for (int64_t i0 = lo; i0 < hi; i0 += ib) {
      const int64_t nb = std::min(ib, hi - i0);
      // Inside the parallel region Gemm runs on this thread alone (ops/blas.h).
      Gemm(false, true, qn, nb, d, 1.0f, queries + q0 * d, d, vectors_.data() + i0 * d, d, 0.0f,
           scratch.get(), nb);
      for (int64_t r = 0; r < qn; ++r) {
        Offer(scratch.get() + r * nb, ids_.data() + i0, nb, &sel[r]);
      }
    }
    for (int64_t r = 0; r < qn; ++r) {
      sel[r].Finish();
      const Entry* h = sel[r].buf;
      const int64_t count = sel[r].count;
      if (splits > 1) {
        partial[(q0 + r) * splits + s].assign(h, h + count);
        continue;
      }
      auto& list = (*out)[q0 + r];
      list.resize(count);
      for (int64_t j = 0; j < count; ++j) list[j] = {h[j].id, h[j].score};
    }
  });
  if (splits == 1) return;
  ParallelFor(q, splits * kk * 8, [&](int64_t i) {
    std::vector<Entry> all;
    for (int64_t s = 0; s < splits; ++s) {
      const auto& p = partial[i * splits + s];
      all.insert(all.end(), p.begin(), p.end());
    }
    const size_t keep = std::min<size_t>(all.size(), static_cast<size_t>(kk));
    std::partial_sort(all.begin(), all.begin() + keep, all.end(), Better);
    auto& list = (*out)[i];
    list.resize(keep);
    for (size_t j = 0; j < keep; ++j) list[j] = {all[j].id, all[j].score};
  });
}

}  // namespace attnps::worker
