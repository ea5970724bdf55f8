// A job that checks the distributed runtime end to end: roles, PS protocol over MPI, concurrent
// SGD pushes from every worker, a malformed request, dense allreduce over the workers, orderly
// shutdown. Exits non-zero (on the failing rank, so mpirun does too) on any mismatch.
//
//   mpirun -np 4 ps_mpi_check --servers=2 [--kill_rank=R]   (R dies by SIGKILL mid-run)
//   ps_mpi_check --servers=2                                 (local mode: one process)
#include <glog/logging.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ps/job_runtime.h"

namespace attnps::ps {
namespace {

constexpr float kLearningRate = 0.5f;
constexpr float kGrad = 0.125f;
constexpr int kRounds = 20;
constexpr int kDim = 8;

std::vector<TableConfig> Tables() {
  TableConfig t;
  t.name = "items";
  t.id = 1;
  t.dim = kDim;
  t.optimizer.kind = SparseOptimizerKind::kSgd;
  t.optimizer.learning_rate = kLearningRate;
  return {t};
}

int Fail(const Roles& roles, const std::string& what) {
  std::fprintf(stderr, "ps_mpi_check worker %d: FAILED: %s\n", roles.worker_index, what.c_str());
  return 1;
}

void MaybeDie(int rank, int kill_rank) {
  if (rank == kill_rank) {
    std::fprintf(stderr, "ps_mpi_check: rank %d kills itself (SIGKILL)\n", rank);
    std::raise(SIGKILL);
  }
}

int RunWorker(JobRuntime* runtime, int rank, int kill_rank) {
  const Roles& roles = runtime->roles();
  PsClient& client = *runtime->client();
  std::vector<uint64_t> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back(i * 104729ull + 11);
  const int64_t n = static_cast<int64_t>(keys.size());
  std::vector<float> initial(n * kDim), after(n * kDim), grads(n * kDim, kGrad);
  Status st = client.Wait(client.Pull(1, keys.data(), n, kDim, 0, initial.data()));
  if (!st.ok()) return Fail(roles, st.ToString());
  if (!(st = client.Barrier()).ok()) return Fail(roles, st.ToString());
  MaybeDie(rank, kill_rank);
  for (int r = 0; r < kRounds; ++r) {
    if (!(st = client.Wait(client.Push(1, keys.data(), n, kDim, grads.data(), r + 1))).ok()) {
      return Fail(roles, st.ToString());
    }
  }
  if (!(st = client.Barrier()).ok()) return Fail(roles, st.ToString());
  st = client.Wait(client.Pull(1, keys.data(), n, kDim, kRounds + 1, after.data()));
  if (!st.ok()) return Fail(roles, st.ToString());
  const float step = roles.workers * kRounds * kLearningRate * kGrad;
  for (int64_t i = 0; i < n * kDim; ++i) {
    if (std::fabs(after[i] - (initial[i] - step)) > 1e-4f) {
      return Fail(roles, "element " + std::to_string(i) + ": " + std::to_string(after[i]) +
                             " != serial result " + std::to_string(initial[i] - step));
    }
  }
  // A malformed request is answered with an error and the server keeps serving.
  if (roles.worker_index == 0) {
    runtime->transport()->Send(0, Tag::kRequest, Buffer::Copy("not an attnps frame"));
    std::vector<float> wrong(n * 3);
    st = client.Wait(client.Pull(1, keys.data(), n, 3, 0, wrong.data()));
    if (st.ok()) return Fail(roles, "a pull with the wrong dim succeeded");
    st = client.Wait(client.Pull(1, keys.data(), n, kDim, 0, after.data()));
    if (!st.ok()) return Fail(roles, "server stopped serving: " + st.ToString());
  }
  // Dense allreduce over the workers only.
  DenseAllreduce& allreduce = *runtime->allreduce();
  std::vector<float> dense(100003);
  for (size_t i = 0; i < dense.size(); ++i) dense[i] = (roles.worker_index + 1) * 0.001f * (i % 97);
  allreduce.Average(dense.data(), dense.size());
  const float mean_factor = (roles.workers + 1) / 2.0f;
  for (size_t i = 0; i < dense.size(); ++i) {
    const float want = mean_factor * 0.001f * (i % 97);
    if (std::fabs(dense[i] - want) > 1e-5f) {
      return Fail(roles, "allreduce element " + std::to_string(i) + ": " +
                             std::to_string(dense[i]) + " != " + std::to_string(want));
    }
  }
  if (!(st = runtime->Finish()).ok()) return Fail(roles, st.ToString());
  if (roles.worker_index == 0) {
    std::printf("ps_mpi_check: OK (%s%d servers, %d workers, %d rounds of SGD pushes summed)\n",
                runtime->local() ? "local mode, " : "", roles.servers, roles.workers, kRounds);
  }
  return 0;
}

int Main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  MpiSession mpi(&argc, &argv);
  int servers = 1, kill_rank = -1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--servers=", 10) == 0) servers = std::atoi(argv[i] + 10);
    if (std::strncmp(argv[i], "--kill_rank=", 12) == 0) kill_rank = std::atoi(argv[i] + 12);
  }
  RuntimeOptions options;
  options.servers = servers;
  options.shard_threads = 2;
  options.tables = Tables();
  std::unique_ptr<JobRuntime> runtime;
  const Status created = JobRuntime::Create(mpi, options, &runtime);
  if (!created.ok()) {
    if (mpi.rank() == 0) std::fprintf(stderr, "ps_mpi_check: %s\n", created.ToString().c_str());
    return 2;
  }
  if (!runtime->is_server()) return RunWorker(runtime.get(), mpi.rank(), kill_rank);
  MaybeDie(mpi.rank(), kill_rank);
  const Status st = runtime->Serve();
  if (!st.ok()) {
    std::fprintf(stderr, "server %d: %s\n", mpi.rank(), st.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace attnps::ps

int main(int argc, char** argv) { return attnps::ps::Main(argc, argv); }
