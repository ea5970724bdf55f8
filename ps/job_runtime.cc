#include "ps/job_runtime.h"

#include <glog/logging.h>

#include "ps/ps_server.h"

namespace attnps::ps {

Status JobRuntime::CheckOptions(const RuntimeOptions& options) {
  if (options.servers < 1) {
    return Status::InvalidArgument("--servers=" + std::to_string(options.servers) +
                                   ": need at least one server");
  }
  if (options.shard_threads < 1) {
    return Status::InvalidArgument("shard_threads=" + std::to_string(options.shard_threads) +
                                   ": need at least one");
  }
  return Status::Ok();
}

Status JobRuntime::Create(const MpiSession& mpi, const RuntimeOptions& options,
                          std::unique_ptr<JobRuntime>* out) {
  if (mpi.size() == 1) return CreateLocal(options, out);
  ATTNPS_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<JobRuntime> runtime(new JobRuntime());
  ATTNPS_RETURN_IF_ERROR(runtime->StartMpi(mpi, options));
  *out = std::move(runtime);
  return Status::Ok();
}

Status JobRuntime::CreateLocal(const RuntimeOptions& options, std::unique_ptr<JobRuntime>* out) {
  ATTNPS_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<JobRuntime> runtime(new JobRuntime());
  ATTNPS_RETURN_IF_ERROR(runtime->StartLocal(options));
  *out = std::move(runtime);
  return Status::Ok();
}

Status JobRuntime::StartLocal(const RuntimeOptions& options) {
  if (options.allreduce_backend == AllreduceBackend::kNccl && !NcclAvailable()) {
    return Status::InvalidArgument("NCCL allreduce requested, but attnps was built without CUDA");
  }
  local_ = true;
  const int servers = options.servers;
  roles_ = Roles{servers, 1, false, 0};
  hub_ = std::make_unique<InProcessHub>(servers + 1);
  server_status_.resize(servers);
  for (int s = 0; s < servers; ++s) {
    tables_.push_back(std::make_unique<ShardServer>(options.tables, options.shard_threads));
    server_ends_.push_back(hub_->Endpoint(s));
  }
  for (int s = 0; s < servers; ++s) {
    if (options.serve_inline) {
      inline_servers_.push_back(std::make_unique<RequestHandler>(
          server_ends_[s].get(), tables_[s].get(), ServeOptions{servers, 1}));
      RequestHandler* handler = inline_servers_.back().get();
      hub_->ServeInline(s, [handler](int source, const Buffer& message) {
        return handler->Handle(source, message);
      });
      continue;
    }
    server_threads_.emplace_back([this, s, servers] {
      server_status_[s] = ServeRequests(server_ends_[s].get(), tables_[s].get(), {servers, 1});
    });
  }
  transport_ = hub_->Endpoint(servers);
  PsClientOptions client_options;
  client_options.receive_thread = !options.serve_inline;
  client_ = std::make_unique<PsClient>(transport_.get(), servers, client_options);
  allreduce_ = std::make_unique<SingleWorkerAllreduce>();
  VLOG(1) << "local mode: " << servers << " in-process server(s)"
          << (options.serve_inline ? ", served inline" : "");
  return Status::Ok();
}

Status JobRuntime::StartMpi(const MpiSession& mpi, const RuntimeOptions& options) {
  ATTNPS_RETURN_IF_ERROR(SplitRoles(mpi.size(), mpi.rank(), options.servers, &roles_));
  worker_comm_ = WorkerCommunicator(roles_);  // collective: before any serving
  transport_ = std::make_unique<MpiTransport>(MPI_COMM_WORLD);
  if (roles_.is_server) {
    tables_.push_back(std::make_unique<ShardServer>(options.tables, options.shard_threads));
    return Status::Ok();
  }
  if (options.allreduce_backend == AllreduceBackend::kNccl) {
    ATTNPS_RETURN_IF_ERROR(
        MakeNcclDenseAllreduce(worker_comm_, options.cuda_device, options.allreduce, &allreduce_));
  } else {
    allreduce_ = std::make_unique<MpiDenseAllreduce>(worker_comm_, options.allreduce);
  }
  client_ = std::make_unique<PsClient>(transport_.get(), roles_.servers);
  return Status::Ok();
}

Status JobRuntime::Serve() {
  CHECK(roles_.is_server && !local_) << "JobRuntime::Serve on a worker";
  return ServeRequests(transport_.get(), tables_[0].get(), {roles_.servers, roles_.workers});
}

Status JobRuntime::Finish() {
  CHECK(!roles_.is_server) << "JobRuntime::Finish on a server";
  if (finished_) return Status::Ok();
  finished_ = true;
  Status st = client_->Shutdown();
  for (std::thread& t : server_threads_) t.join();
  server_threads_.clear();
  for (const Status& s : server_status_) {
    if (st.ok() && !s.ok()) st = s.WithContext("in-process server");
  }
  return st;
}

JobRuntime::~JobRuntime() {
  if (local_ && !finished_) {
    const Status st = Finish();
    LOG_IF(WARNING, !st.ok()) << "local mode shutdown: " << st.ToString();
  }
  client_.reset();  // before the transport it receives on
  if (worker_comm_ != MPI_COMM_NULL) MPI_Comm_free(&worker_comm_);
}

}  // namespace attnps::ps
