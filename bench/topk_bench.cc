// topk_bench: full-corpus top-K scoring (users x items inner products, then each user's top K)
// through TopKIndex's exact search (blocked attnps::Gemm + per-query heaps, no FAISS), beside a
// bare sgemm of the same shape (attnps::Gemm, the scores alone, no top-K) and FAISS's exact
// IndexFlatIP (for reference), in the same run.
//
//   build/topk_bench [--users=1024] [--items=100000] [--dim=64] [--k=50] [--rounds=5]
//                    [--qblock=0] [--iblock=0] [--no_faiss]
//
// --qblock / --iblock: TopKIndexOptions::exact_query_block / exact_item_block (0 = defaults).
// Each side runs `rounds` times, alternating; times are medians. Checks that the exact search
// and FAISS agree on the ids (up to near-ties). Prints every GFLOP/s (2 x users x items x dim per
// pass) and, last, `topk_vs_sgemm=<sgemm time / exact top-K time>` for TopKIndex's exact search
// (1 = scoring and selecting as fast as the GEMM alone; issue 14 wants >= 0.5).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <faiss/IndexFlat.h>

#include "ops/blas.h"
#include "worker/topk_index.h"

namespace {

struct Flags {
  int64_t users = 1024, items = 100000, dim = 64;
  int k = 50, rounds = 5;
  int64_t qblock = 0, iblock = 0;
  bool faiss = true;
};

constexpr char kUsage[] =
    "usage: topk_bench [--users=1024] [--items=100000] [--dim=64] [--k=50] [--rounds=5]\n"
    "                  [--qblock=0] [--iblock=0] [--no_faiss]\n"
    "  sgemm [users x dim] x [dim x items] beside TopKIndex's exact top-k and FAISS IndexFlatIP;\n"
    "  --qblock/--iblock: the exact search's query and item blocks (0 = defaults);\n"
    "  --no_faiss: skip FAISS. Last line: topk_vs_sgemm=<sgemm ms / exact top-k ms> (medians).\n";

bool ParseFlag(const char* arg, const char* name, int64_t* out) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *out = std::atoll(arg + n + 1);
  return true;
}

double Seconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    int64_t k = f.k, rounds = f.rounds;
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--no_faiss") == 0) {
      f.faiss = false;
      continue;
    }
    if (ParseFlag(argv[i], "--users", &f.users) || ParseFlag(argv[i], "--items", &f.items) ||
        ParseFlag(argv[i], "--dim", &f.dim) || ParseFlag(argv[i], "--qblock", &f.qblock) ||
        ParseFlag(argv[i], "--iblock", &f.iblock)) {
      continue;
    }
    if (ParseFlag(argv[i], "--k", &k)) {
      f.k = static_cast<int>(k);
      continue;
    }
    if (ParseFlag(argv[i], "--rounds", &rounds)) {
      f.rounds = static_cast<int>(rounds);
      continue;
    }
    std::fprintf(stderr, "topk_bench: unknown flag %s\n%s", argv[i], kUsage);
    return 2;
  }
  if (f.users < 1 || f.items < 1 || f.dim < 1 || f.k < 1 || f.rounds < 1 || f.qblock < 0 ||
      f.iblock < 0) {
    std::fprintf(stderr, "topk_bench: every size must be >= 1 (blocks >= 0)\n");
    return 2;
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  std::vector<float> items(f.items * f.dim), users(f.users * f.dim);
  for (float& x : items) x = g(rng);
  for (float& x : users) x = g(rng);
  std::vector<uint64_t> ids(f.items);
  for (int64_t i = 0; i < f.items; ++i) ids[i] = static_cast<uint64_t>(i + 1);
  std::unique_ptr<attnps::worker::TopKIndex> index;
  attnps::worker::TopKIndexOptions options;
  options.exact_query_block = static_cast<int>(f.qblock);
  options.exact_item_block = static_cast<int>(f.iblock);
  const attnps::Status st =
      attnps::worker::TopKIndex::Build(options, items.data(), f.items, f.dim, ids, &index);
  if (!st.ok()) {
    std::fprintf(stderr, "topk_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  faiss::IndexFlatIP flat(f.dim);
  if (f.faiss) flat.add(f.items, items.data());
  const int64_t kk = std::min<int64_t>(f.k, f.items);
  std::vector<float> scores(f.users * f.items), faiss_scores(f.users * kk);
  std::vector<faiss::Index::idx_t> faiss_labels(f.users * kk);
  std::vector<std::vector<attnps::metrics::ScoredItem>> top;
  std::vector<double> gemm_s, topk_s, faiss_s;
  for (int r = 0; r < f.rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    attnps::Gemm(false, true, f.users, f.items, f.dim, 1.0f, users.data(), f.dim, items.data(),
                 f.dim, 0.0f, scores.data(), f.items);
    gemm_s.push_back(Seconds(t0));
    t0 = std::chrono::steady_clock::now();
    index->Search(users.data(), f.users, f.k, &top);
    topk_s.push_back(Seconds(t0));
    if (f.faiss) {
      t0 = std::chrono::steady_clock::now();
      flat.search(f.users, users.data(), kk, faiss_scores.data(), faiss_labels.data());
      faiss_s.push_back(Seconds(t0));
    }
  }
  // Agreement with FAISS: the same id at each rank, or (rounding) a score within 1e-4.
  int64_t differ = 0;
  if (f.faiss) {
    for (int64_t u = 0; u < f.users; ++u) {
      for (int64_t j = 0; j < kk; ++j) {
        const auto& got = top[u][j];
        const bool same = got.item == static_cast<uint64_t>(faiss_labels[u * kk + j] + 1);
        if (!same && std::abs(got.score - faiss_scores[u * kk + j]) > 1e-4f) ++differ;
      }
    }
  }
  const double flop = 2.0 * f.users * f.items * f.dim;
  const double tg = Median(gemm_s), tk = Median(topk_s);
  std::printf("users=%lld items=%lld dim=%lld k=%d rounds=%d gemm=%s threads=%d\n",
              static_cast<long long>(f.users), static_cast<long long>(f.items),
              static_cast<long long>(f.dim), f.k, f.rounds, attnps::GemmLibrary(),
              attnps::NumThreads());
  std::printf("sgemm (scores only):     %8.2f ms  %7.1f GFLOP/s\n", tg * 1e3, flop / tg * 1e-9);
  if (f.faiss) {
    const double tf = Median(faiss_s);
    std::printf("faiss IndexFlatIP top-%d: %8.2f ms  %7.1f GFLOP/s  (faiss_vs_sgemm=%.3f)\n", f.k,
                tf * 1e3, flop / tf * 1e-9, tg / tf);
    std::printf("exact vs faiss: %lld of %lld ranks differ beyond 1e-4\n",
                static_cast<long long>(differ), static_cast<long long>(f.users * kk));
  }
  std::printf("exact top-%d (TopKIndex): %8.2f ms  %7.1f GFLOP/s\n", f.k, tk * 1e3,
              flop / tk * 1e-9);
  std::printf("topk_vs_sgemm=%.3f\n", tg / tk);
  if (differ > 0) return 1;
  return 0;
}
