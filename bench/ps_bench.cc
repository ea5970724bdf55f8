// ps_bench: pull and push throughput of a ShardServer on a 10M-row table (dim 16 and 64, uniform
// and Zipf(1.1) keys, 1 and 2 shard threads), beside a plain memcpy and a random gather of the
// same bytes from a flat array, measured in the same run. Last line:
//   pull_vs_gather=<r> push_adagrad_vs_gather=<r> mem_overhead=<r>
// (1M Zipf keys, 10M rows, dim 16, one thread; memory: resident bytes of the dim-16 Adagrad table
// over the raw bytes of its keys, embeddings and accumulators).
//
//   ps_bench [--rows=10000000] [--batch=1000000] [--dims=16,64] [--repeats=5]
#include <omp.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ops/random.h"
#include "ps/shard_server.h"

namespace attnps::ps {
namespace {

struct Flags {
  int64_t rows = 10'000'000;
  int64_t batch = 1'000'000;
  std::vector<int> dims = {16, 64};
  int repeats = 5;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const size_t n = std::strlen(name);
      return a.compare(0, n, name) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = value("--rows=")) {
      f.rows = std::atoll(v);
    } else if (const char* v = value("--batch=")) {
      f.batch = std::atoll(v);
    } else if (const char* v = value("--repeats=")) {
      f.repeats = std::atoi(v);
    } else if (const char* v = value("--dims=")) {
      f.dims.clear();
      for (const char* p = v; *p;) {
        f.dims.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else {
      std::fprintf(stderr, "ps_bench: unknown flag %s\n", a.c_str());
      std::exit(2);
    }
  }
  return f;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of `repeats` runs of fn(), in seconds.
template <typename Fn>
double BestTime(int repeats, const Fn& fn) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = Now();
    fn();
    best = std::min(best, Now() - t0);
  }
  return best;
}

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

uint64_t KeyOfRank(int64_t rank) { return Mix64(static_cast<uint64_t>(rank) + 12345); }

// Row ranks: uniform, or Zipf(s) by inverting the CDF.
std::vector<int64_t> DrawRanks(int64_t rows, int64_t n, double zipf_s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out(n);
  if (zipf_s <= 0) {
    std::uniform_int_distribution<int64_t> u(0, rows - 1);
    for (auto& r : out) r = u(rng);
    return out;
  }
  std::vector<double> cdf(rows);
  double sum = 0;
  for (int64_t i = 0; i < rows; ++i)
    cdf[i] = (sum += std::pow(static_cast<double>(i + 1), -zipf_s));
  std::uniform_real_distribution<double> u(0, sum);
  for (auto& r : out) r = std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
  return out;
}

TableConfig BenchTable(int dim, SparseOptimizerKind kind) {
  TableConfig c;
  c.name = "bench";
  c.id = 1;
  c.dim = dim;
  c.initializer.kind = InitializerKind::kUniform;
  c.optimizer.kind = kind;
  return c;
}

void Fill(ShardServer* server, int64_t rows, int dim) {
  const int64_t chunk = 1 << 20;
  std::vector<uint64_t> keys(chunk);
  std::vector<float> out(chunk * dim);
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t n = std::min(chunk, rows - begin);
    for (int64_t i = 0; i < n; ++i) keys[i] = KeyOfRank(begin + i);
    server->Pull(1, keys.data(), n, 0, out.data());
  }
}

struct Result {
  double pull_vs_gather = 0, push_vs_gather = 0;
};

void Line(const char* what, int dim, const char* dist, int threads, int64_t n, double seconds) {
  const double bytes = static_cast<double>(n) * dim * sizeof(float);
  std::printf("%-14s dim=%-3d keys=%-7s threads=%d  %8.2f Mkeys/s  %6.2f GB/s\n", what, dim, dist,
              threads, n / seconds / 1e6, bytes / seconds / 1e9);
}

Result RunConfig(const Flags& f, int dim, int threads, const char* dist,
                 const std::vector<int64_t>& ranks, ShardServer* server, const float* flat) {
  const int64_t n = static_cast<int64_t>(ranks.size());
  std::vector<uint64_t> keys(n);
  for (int64_t i = 0; i < n; ++i) keys[i] = KeyOfRank(ranks[i]);
  std::vector<float> out(n * dim), grads(n * dim, 1e-3f);
  omp_set_num_threads(threads);
  const double t_memcpy = BestTime(f.repeats, [&] {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) std::memcpy(&out[i * dim], flat + i * dim, sizeof(float) * dim);
  });
  const double t_gather = BestTime(f.repeats, [&] {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&out[i * dim], flat + ranks[i] * dim, sizeof(float) * dim);
    }
  });
  const double t_pull =
      BestTime(f.repeats, [&] { server->Pull(1, keys.data(), n, 1, out.data()); });
  const double t_push =
      BestTime(f.repeats, [&] { server->Push(1, keys.data(), n, grads.data(), 2); });
  Line("memcpy", dim, dist, threads, n, t_memcpy);
  Line("gather", dim, dist, threads, n, t_gather);
  Line("pull", dim, dist, threads, n, t_pull);
  Line("push adagrad", dim, dist, threads, n, t_push);
  std::printf("%-14s pull_vs_gather=%.3f push_adagrad_vs_gather=%.3f\n", "", t_gather / t_pull,
              t_gather / t_push);
  return {t_gather / t_pull, t_gather / t_push};
}

int Main(int argc, char** argv) {
  const Flags f = ParseFlags(argc, argv);
  std::printf("ps_bench: rows=%ld batch=%ld repeats=%d (best of)\n", static_cast<long>(f.rows),
              static_cast<long>(f.batch), f.repeats);
  const std::vector<int64_t> zipf = DrawRanks(f.rows, f.batch, 1.1, 7);
  const std::vector<int64_t> uniform = DrawRanks(f.rows, f.batch, 0, 8);
  Result headline;
  double mem_overhead = 0;
  for (int dim : f.dims) {
    std::vector<float> flat(static_cast<size_t>(f.rows) * dim, 0.5f);
    for (int threads : {1, 2}) {
      const int64_t before = ResidentBytes();
      const double t0 = Now();
      ShardServer server({BenchTable(dim, SparseOptimizerKind::kAdagrad)}, threads);
      Fill(&server, f.rows, dim);
      const double raw = static_cast<double>(f.rows) * (8 + 2 * dim * sizeof(float));
      const double overhead = (ResidentBytes() - before) / raw;
      std::printf("\ntable dim=%d shards=%d: %ld rows built in %.1f s, resident/raw = %.3f\n", dim,
                  threads, static_cast<long>(server.NumRows(1)), Now() - t0, overhead);
      const Result z = RunConfig(f, dim, threads, "zipf1.1", zipf, &server, flat.data());
      RunConfig(f, dim, threads, "uniform", uniform, &server, flat.data());
      if (dim == 16 && threads == 1) {
        headline = z;
        mem_overhead = overhead;
      }
    }
  }
  std::printf("pull_vs_gather=%.3f push_adagrad_vs_gather=%.3f mem_overhead=%.3f\n",
              headline.pull_vs_gather, headline.push_vs_gather, mem_overhead);
  return 0;
}

}  // namespace
}  // namespace attnps::ps

int main(int argc, char** argv) { return attnps::ps::Main(argc, argv); }
