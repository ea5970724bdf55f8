// topk_bench: full-corpus top-K scoring (users x items inner products, then each user's top K)
// through TopKIndex's exact FAISS index, beside a bare sgemm of the same shape (attnps::Gemm,
// the scores alone, no top-K), in the same run.
//
//   build/topk_bench [--users=1024] [--items=100000] [--dim=64] [--k=50] [--rounds=5]
//
// Each side runs `rounds` times, alternating; times are medians. Prints both GFLOP/s
// (2 x users x items x dim per pass) and, last, `topk_vs_sgemm=<sgemm time / top-K time>`
// (1 = scoring and selecting as fast as the GEMM alone; issue 14 wants >= 0.5).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/blas.h"
#include "worker/topk_index.h"

namespace {

struct Flags {
  int64_t users = 1024, items = 100000, dim = 64;
  int k = 50, rounds = 5;
};

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
    if (ParseFlag(argv[i], "--users", &f.users) || ParseFlag(argv[i], "--items", &f.items) ||
        ParseFlag(argv[i], "--dim", &f.dim)) {
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
    std::fprintf(stderr, "topk_bench: unknown flag %s\n", argv[i]);
    return 2;
  }
  if (f.users < 1 || f.items < 1 || f.dim < 1 || f.k < 1 || f.rounds < 1) {
    std::fprintf(stderr, "topk_bench: every size must be >= 1\n");
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
  const attnps::Status st =
      attnps::worker::TopKIndex::Build({}, items.data(), f.items, f.dim, ids, &index);
  if (!st.ok()) {
    std::fprintf(stderr, "topk_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  std::vector<float> scores(f.users * f.items);
  std::vector<std::vector<attnps::metrics::ScoredItem>> top;
  std::vector<double> gemm_s, topk_s;
  for (int r = 0; r < f.rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    attnps::Gemm(false, true, f.users, f.items, f.dim, 1.0f, users.data(), f.dim, items.data(),
                 f.dim, 0.0f, scores.data(), f.items);
    gemm_s.push_back(Seconds(t0));
    t0 = std::chrono::steady_clock::now();
    index->Search(users.data(), f.users, f.k, &top);
    topk_s.push_back(Seconds(t0));
  }
  const double flop = 2.0 * f.users * f.items * f.dim;
  const double tg = Median(gemm_s), tk = Median(topk_s);
  std::printf("users=%lld items=%lld dim=%lld k=%d rounds=%d\n", static_cast<long long>(f.users),
              static_cast<long long>(f.items), static_cast<long long>(f.dim), f.k, f.rounds);
  std::printf("sgemm (scores only):     %8.2f ms  %7.1f GFLOP/s\n", tg * 1e3, flop / tg * 1e-9);
  std::printf("faiss exact top-%d:      %8.2f ms  %7.1f GFLOP/s\n", f.k, tk * 1e3,
              flop / tk * 1e-9);
  std::printf("topk_vs_sgemm=%.3f\n", tg / tk);
  return 0;
}
