// transport_bench: the PS protocol over MPI against raw MPI moving the same bytes, in one run.
//
//   mpirun -np 4 --oversubscribe transport_bench [--keys=65536] [--dim=16] [--iters=40]
//                              [--rounds=3] [--shard_threads=1] [--max_keys_per_request=16384]
//                              [--phase1_only]
//
// Phase 1, 1 server + 1 worker (ranks 0 and 2; the others sleep): a pull of `keys` keys beside an
//   MPI ping-pong of the same sizes (keys out, rows back), and a push beside a ping-pong of
//   (keys + gradients) out, a short reply back.
// Phase 2, 2 servers + 2 workers: both workers pull and push at once, each request split over
//   both servers; the ping-pong baseline sends each worker's parts to both servers at once.
// Phase 3, the 2 workers: 1, 16 and 64 MB through DenseAllreduce (Sum, the trainer's call, and
//   Average) vs MPI_Allreduce, interleaved call by call.
// Times are medians over `iters`, best of `rounds` (baseline and PS alternate each round).
// Ratios are baseline time / attnps time (1 = as fast as raw MPI). The last line is
//   pull_vs_pingpong=<1+1 pull ratio> allreduce_vs_mpi=<lowest Sum ratio over the three sizes>
#include <glog/logging.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ps/dense_allreduce.h"
#include "ps/mpi_transport.h"
#include "ps/ps_client.h"
#include "ps/ps_server.h"
#include "ps/sharding.h"

namespace attnps::ps {
namespace {

struct Flags {
  int64_t keys = 65536;
  int dim = 16;
  int iters = 40;
  int rounds = 3;
  int shard_threads = 1;
  int64_t max_keys_per_request = PsClientOptions().max_keys_per_request;
  bool only_phase1 = false;  // --phase1_only: for profiling the 1+1 pull and push
};

constexpr int kPullPingTag = 77, kPushPingTag = 78;  // apart: a worker may run ahead
constexpr uint32_t kTable = 1;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A barrier that sleeps instead of spinning, so idle ranks leave the cores to the measured ones.
void SleepyBarrier(MPI_Comm comm) {
  MPI_Request request;
  ATTNPS_MPI_CHECK(MPI_Ibarrier(comm, &request));
  for (int done = 0; !done; usleep(500)) {
    ATTNPS_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
  }
}

// The largest value of x over the ranks of comm, on every rank.
double MaxOver(MPI_Comm comm, double x) {
  double out = 0;
  ATTNPS_MPI_CHECK(MPI_Allreduce(&x, &out, 1, MPI_DOUBLE, MPI_MAX, comm));
  return out;
}

struct Sizes {
  std::vector<int64_t> keys_per_server;  // of one worker's request
};

// Which share of `keys` goes to each of `servers` servers (as PsClient splits them).
Sizes SplitKeys(const std::vector<uint64_t>& keys, int servers) {
  Sizes s;
  s.keys_per_server.assign(servers, 0);
  for (uint64_t k : keys) ++s.keys_per_server[ServerOf(k, servers)];
  return s;
}

// Worker side of a ping-pong: sends out_bytes(part) to every server at once and waits for every
// back_bytes(part) reply. Returns the median iteration time.
template <typename OutBytes, typename BackBytes>
double PingPongWorker(MPI_Comm comm, int tag, int servers, const Sizes& sizes, int iters,
                      OutBytes out_bytes, BackBytes back_bytes) {
  std::vector<std::vector<char>> out(servers), back(servers);
  for (int s = 0; s < servers; ++s) {
    out[s].resize(out_bytes(sizes.keys_per_server[s]));
    back[s].resize(back_bytes(sizes.keys_per_server[s]));
  }
  std::vector<double> times;
  std::vector<MPI_Request> requests(2 * servers);
  for (int it = 0; it < iters + 2; ++it) {
    const double t0 = Now();
    for (int s = 0; s < servers; ++s) {
      ATTNPS_MPI_CHECK(MPI_Irecv(back[s].data(), static_cast<int>(back[s].size()), MPI_BYTE, s, tag,
                                 comm, &requests[2 * s]));
      ATTNPS_MPI_CHECK(MPI_Isend(out[s].data(), static_cast<int>(out[s].size()), MPI_BYTE, s, tag,
                                 comm, &requests[2 * s + 1]));
    }
    ATTNPS_MPI_CHECK(MPI_Waitall(2 * servers, requests.data(), MPI_STATUSES_IGNORE));
    if (it >= 2) times.push_back(Now() - t0);  // two warm-up iterations
  }
  return Median(times);
}

// Server side: answers `messages` ping messages with a reply of back_bytes(keys in the message).
template <typename KeysOf, typename BackBytes>
void PingPongServer(MPI_Comm comm, int tag, int messages, KeysOf keys_of, BackBytes back_bytes) {
  std::vector<char> in, back;
  for (int m = 0; m < messages; ++m) {
    MPI_Status status;
    ATTNPS_MPI_CHECK(MPI_Probe(MPI_ANY_SOURCE, tag, comm, &status));
    int bytes = 0;
    ATTNPS_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &bytes));
    in.resize(bytes);
    ATTNPS_MPI_CHECK(
        MPI_Recv(in.data(), bytes, MPI_BYTE, status.MPI_SOURCE, tag, comm, MPI_STATUS_IGNORE));
    back.resize(back_bytes(keys_of(bytes)));
    ATTNPS_MPI_CHECK(MPI_Send(back.data(), static_cast<int>(back.size()), MPI_BYTE,
                              status.MPI_SOURCE, tag, comm));
  }
}

struct PhaseTimes {
  double pull_pingpong = 1e30, pull = 1e30, push_pingpong = 1e30, push = 1e30;
};

std::vector<TableConfig> Tables(int dim) {
  TableConfig t;
  t.name = "bench";
  t.id = kTable;
  t.dim = dim;
  t.optimizer.kind = SparseOptimizerKind::kAdagrad;
  return {t};
}

// One PS phase on `comm`: ranks [0, servers) serve, the rest work. Every rank returns the same
// (slowest worker's) times.
PhaseTimes RunPhase(MPI_Comm comm, int servers, const Flags& f) {
  int rank = 0, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int workers = size - servers;
  const bool is_server = rank < servers;
  std::mt19937_64 rng(1234 + rank);
  std::vector<uint64_t> keys(f.keys);
  for (uint64_t& k : keys) k = rng();
  const Sizes sizes = SplitKeys(keys, servers);
  const int64_t dim = f.dim;
  auto pull_out = [](int64_t n) { return n * 8; };
  auto pull_back = [dim](int64_t n) { return n * dim * 4; };
  auto push_out = [dim](int64_t n) { return n * (8 + dim * 4); };
  auto push_back = [](int64_t) { return int64_t{64}; };

  MpiTransport transport(comm);
  std::unique_ptr<ShardServer> tables;
  std::unique_ptr<PsClient> client;
  if (is_server) {
    tables = std::make_unique<ShardServer>(Tables(f.dim), f.shard_threads);
  } else {
    client =
        std::make_unique<PsClient>(&transport, servers, PsClientOptions{f.max_keys_per_request});
  }
  std::vector<float> rows(keys.size() * f.dim), grads(keys.size() * f.dim, 1e-3f);
  PhaseTimes best;
  for (int round = 0; round < f.rounds; ++round) {
    // Raw MPI baselines.
    const int messages = workers * (f.iters + 2);
    if (is_server) {
      auto pull_keys = [](int64_t bytes) { return bytes / 8; };
      auto push_keys = [dim](int64_t bytes) { return bytes / (8 + dim * 4); };
      PingPongServer(comm, kPullPingTag, messages, pull_keys, pull_back);
      PingPongServer(comm, kPushPingTag, messages, push_keys, push_back);
    } else {
      best.pull_pingpong = std::min(
          best.pull_pingpong,
          PingPongWorker(comm, kPullPingTag, servers, sizes, f.iters, pull_out, pull_back));
      best.push_pingpong = std::min(
          best.push_pingpong,
          PingPongWorker(comm, kPushPingTag, servers, sizes, f.iters, push_out, push_back));
    }
    SleepyBarrier(comm);
    // The same bytes through the PS protocol.
    if (is_server) {
      const Status st = ServeRequests(&transport, tables.get(), {servers, workers});
      CHECK(st.ok()) << st.ToString();
    } else {
      std::vector<double> pulls, pushes;
      CHECK(client->Wait(client->Pull(kTable, keys.data(), f.keys, f.dim, 0, rows.data())).ok());
      CHECK(client->Barrier().ok());
      for (int it = 0; it < f.iters; ++it) {
        const double t0 = Now();
        CHECK(client->Wait(client->Pull(kTable, keys.data(), f.keys, f.dim, it, rows.data())).ok());
        pulls.push_back(Now() - t0);
      }
      for (int it = 0; it < f.iters; ++it) {
        const double t0 = Now();
        CHECK(
            client->Wait(client->Push(kTable, keys.data(), f.keys, f.dim, grads.data(), it)).ok());
        pushes.push_back(Now() - t0);
      }
      best.pull = std::min(best.pull, Median(pulls));
      best.push = std::min(best.push, Median(pushes));
      CHECK(client->Shutdown().ok());
    }
    SleepyBarrier(comm);
  }
  best.pull_pingpong = MaxOver(comm, is_server ? 0 : best.pull_pingpong);
  best.pull = MaxOver(comm, is_server ? 0 : best.pull);
  best.push_pingpong = MaxOver(comm, is_server ? 0 : best.push_pingpong);
  best.push = MaxOver(comm, is_server ? 0 : best.push);
  return best;
}

// Median seconds of each of fns over iters rounds, the calls interleaved (A B C A B C ...) so
// that machine noise hits them alike; each call gets a freshly filled buffer.
std::vector<double> TimeInterleaved(std::vector<float>* data, int iters,
                                    const std::vector<std::function<void(float*, size_t)>>& fns) {
  std::vector<std::vector<double>> times(fns.size());
  for (int it = 0; it < iters + 1; ++it) {
    for (size_t f = 0; f < fns.size(); ++f) {
      std::fill(data->begin(), data->end(), 1.0f);
      const double t0 = Now();
      fns[f](data->data(), data->size());
      if (it > 0) times[f].push_back(Now() - t0);  // one warm-up round
    }
  }
  std::vector<double> medians;
  for (auto& t : times) medians.push_back(Median(t));
  return medians;
}

// Returns the lowest MPI_Allreduce / DenseAllreduce::Sum time ratio over the sizes (Sum is what
// the trainer calls: its loss is pre-scaled by 1/workers); prints Average's ratio beside it.
double RunAllreduce(MPI_Comm workers, bool report) {
  MpiDenseAllreduce interface(workers);
  double lowest = 1e30;
  for (int mb : {1, 16, 64}) {
    std::vector<float> data(static_cast<size_t>(mb) << 18);
    const int iters = mb == 64 ? 15 : 40;
    std::vector<double> t =
        TimeInterleaved(&data, iters,
                        {[&](float* p, size_t n) {
                           ATTNPS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, static_cast<int>(n),
                                                          MPI_FLOAT, MPI_SUM, workers));
                         },
                         [&](float* p, size_t n) { CHECK(interface.Sum(p, n).ok()); },
                         [&](float* p, size_t n) { CHECK(interface.Average(p, n).ok()); }});
    for (double& x : t) x = MaxOver(workers, x);
    lowest = std::min(lowest, t[0] / t[1]);
    if (report) {
      std::printf(
          "allreduce %2d MB: MPI_Allreduce %8.3f ms  Sum %8.3f ms (ratio %.3f)  "
          "Average %8.3f ms (ratio %.3f)\n",
          mb, t[0] * 1e3, t[1] * 1e3, t[0] / t[1], t[2] * 1e3, t[0] / t[2]);
    }
  }
  return lowest;
}

void Report(const char* name, const PhaseTimes& t, const Flags& f) {
  std::printf("%s pull %lld keys x dim %d: ping-pong %7.3f ms  attnps %7.3f ms  ratio %.3f\n", name,
              static_cast<long long>(f.keys), f.dim, t.pull_pingpong * 1e3, t.pull * 1e3,
              t.pull_pingpong / t.pull);
  std::printf("%s push %lld keys x dim %d: ping-pong %7.3f ms  attnps %7.3f ms  ratio %.3f\n", name,
              static_cast<long long>(f.keys), f.dim, t.push_pingpong * 1e3, t.push * 1e3,
              t.push_pingpong / t.push);
  std::fflush(stdout);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::string prefix = std::string("--") + name + "=";
      return a.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    if (const char* v = value("keys"))
      f.keys = std::atoll(v);
    else if (const char* v = value("dim"))
      f.dim = std::atoi(v);
    else if (const char* v = value("iters"))
      f.iters = std::atoi(v);
    else if (const char* v = value("rounds"))
      f.rounds = std::atoi(v);
    else if (const char* v = value("shard_threads"))
      f.shard_threads = std::atoi(v);
    else if (const char* v = value("max_keys_per_request"))
      f.max_keys_per_request = std::atoll(v);
    else if (a == "--phase1_only")
      f.only_phase1 = true;
    else
      LOG(FATAL) << "unknown flag " << a
                 << " (--keys --dim --iters --rounds --shard_threads --max_keys_per_request "
                    "--phase1_only)";
  }
  return f;
}

int Main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  MpiSession mpi(&argc, &argv);
  if (mpi.size() != 4) {
    if (mpi.rank() == 0) std::fprintf(stderr, "transport_bench: run it as mpirun -np 4\n");
    return 2;
  }
  const Flags f = ParseFlags(argc, argv);
  const int rank = mpi.rank();
  const bool reporter = rank == 2;  // a worker in every phase
  if (reporter)
    std::printf("transport_bench: 4 ranks, %d iterations, best of %d rounds\n", f.iters, f.rounds);

  // Phase 1: ranks 0 (server) and 2 (worker).
  MPI_Comm pair = MPI_COMM_NULL;
  ATTNPS_MPI_CHECK(
      MPI_Comm_split(MPI_COMM_WORLD, rank == 0 || rank == 2 ? 0 : MPI_UNDEFINED, rank, &pair));
  PhaseTimes one;
  if (pair != MPI_COMM_NULL) {
    one = RunPhase(pair, 1, f);
    MPI_Comm_free(&pair);
  }
  SleepyBarrier(MPI_COMM_WORLD);
  if (reporter) Report("1 server + 1 worker:", one, f);
  if (f.only_phase1) {
    if (reporter) std::printf("pull_vs_pingpong=%.3f\n", one.pull_pingpong / one.pull);
    return 0;
  }

  // Phase 2: ranks 0, 1 serve; 2, 3 work.
  const PhaseTimes two = RunPhase(MPI_COMM_WORLD, 2, f);
  if (reporter) Report("2 servers + 2 workers:", two, f);

  // Phase 3: the workers' allreduce.
  Roles roles;
  CHECK(SplitRoles(4, rank, 2, &roles).ok());
  MPI_Comm workers = WorkerCommunicator(roles);
  double allreduce_ratio = 0;
  if (workers != MPI_COMM_NULL) {
    allreduce_ratio = RunAllreduce(workers, reporter);
    MPI_Comm_free(&workers);
  }
  SleepyBarrier(MPI_COMM_WORLD);
  if (reporter) {
    std::printf("pull_vs_pingpong=%.3f allreduce_vs_mpi=%.3f\n", one.pull_pingpong / one.pull,
                allreduce_ratio);
  }
  return 0;
}

}  // namespace
}  // namespace attnps::ps

int main(int argc, char** argv) { return attnps::ps::Main(argc, argv); }
