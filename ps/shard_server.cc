#include "ps/shard_server.h"

#include <glog/logging.h>

#include <cstring>

#include "ps/shard_storage.h"
#include "ps/sharding.h"

namespace attnps::ps {

// A shard thread and the tables it owns.
struct ShardServer::Shard {
  std::map<uint32_t, std::unique_ptr<EmbeddingShard>> tables;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> queue;
  bool stopping = false;

  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        task = std::move(queue.front());
        queue.pop_front();
      }
      task();
    }
  }

  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu);
      queue.push_back(std::move(task));
    }
    cv.notify_one();
  }

  EmbeddingShard& Table(uint32_t id) {
    auto it = tables.find(id);
    CHECK(it != tables.end()) << "unknown table id " << id;
    return *it->second;
  }
};

ShardServer::ShardServer(const std::vector<TableConfig>& tables, int num_shards) {
  CHECK_GT(num_shards, 0) << "ShardServer needs at least one shard";
  for (const TableConfig& t : tables) {
    CHECK(dims_.emplace(t.id, t.dim).second)
        << "duplicate table id " << t.id << " (" << t.name << ")";
  }
  for (int s = 0; s < num_shards; ++s) {
    auto shard = std::make_unique<Shard>();
    for (const TableConfig& t : tables) shard->tables[t.id] = std::make_unique<EmbeddingShard>(t);
    shard->thread = std::thread([raw = shard.get()] { raw->Loop(); });
    shards_.push_back(std::move(shard));
  }
  offsets_.resize(num_shards + 1);
}

ShardServer::~ShardServer() {
  for (auto& shard : shards_) {
    {
      std::lock_guard<std::mutex> lock(shard->mu);
      shard->stopping = true;
    }
    shard->cv.notify_one();
  }
  for (auto& shard : shards_) shard->thread.join();
}

int ShardServer::Dim(uint32_t table_id) const {
  auto it = dims_.find(table_id);
  CHECK(it != dims_.end()) << "unknown table id " << table_id;
  return it->second;
}

std::vector<uint32_t> ShardServer::TableIds() const {
  std::vector<uint32_t> ids;
  for (const auto& [id, dim] : dims_) ids.push_back(id);
  return ids;
}

void ShardServer::RunOnShards(const std::vector<int>& shards,
                              const std::function<void(int shard)>& task) {
  // The caller holds call_mu_, so no other task touches any shard until this returns: the last
  // shard's part runs right here (no hand-off latency; all of it for a one-shard server).
  if (shards.empty()) return;
  std::mutex done_mu;
  std::condition_variable done_cv;
  size_t pending = shards.size() - 1;
  for (size_t i = 0; i + 1 < shards.size(); ++i) {
    const int s = shards[i];
    shards_[s]->Post([&, s] {
      task(s);
      std::lock_guard<std::mutex> lock(done_mu);
      if (--pending == 0) done_cv.notify_one();
    });
  }
  task(shards.back());
  std::unique_lock<std::mutex> lock(done_mu);
  done_cv.wait(lock, [&] { return pending == 0; });
}

const uint64_t* ShardServer::Partition(const uint64_t* keys, int64_t n) {
  const int num = num_shards();
  std::fill(offsets_.begin(), offsets_.end(), 0);
  if (num == 1) {  // already grouped: no copy, order_ unused
    offsets_[1] = n;
    return keys;
  }
  order_.resize(n);
  shard_keys_.resize(n);
  std::vector<int>& owner = partition_owner_;
  owner.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    owner[i] = ShardOf(keys[i], num);
    ++offsets_[owner[i] + 1];
  }
  for (int s = 0; s < num; ++s) offsets_[s + 1] += offsets_[s];
  std::vector<int64_t> cursor(offsets_.begin(), offsets_.end() - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = cursor[owner[i]]++;
    order_[at] = i;
    shard_keys_[at] = keys[i];
  }
  return shard_keys_.data();
}

std::vector<int> ShardServer::NonEmptyShards() const {
  std::vector<int> busy;
  for (int s = 0; s < num_shards(); ++s) {
    if (offsets_[s + 1] > offsets_[s]) busy.push_back(s);
  }
  return busy;
}

void ShardServer::Pull(uint32_t table_id, const uint64_t* keys, int64_t n, uint64_t step,
                       float* out) {
  const int dim = Dim(table_id);
  std::lock_guard<std::mutex> lock(call_mu_);
  const uint64_t* grouped = Partition(keys, n);
  const bool direct = num_shards() == 1;  // one shard: rows land in place
  if (!direct) shard_values_.resize(static_cast<size_t>(n) * dim);
  RunOnShards(NonEmptyShards(), [&](int s) {
    const int64_t begin = offsets_[s], count = offsets_[s + 1] - begin;
    float* dst = direct ? out : shard_values_.data() + begin * dim;
    shards_[s]->Table(table_id).Pull(grouped + begin, count, step, dst);
    if (direct) return;
    for (int64_t i = 0; i < count; ++i) {
      std::memcpy(out + order_[begin + i] * dim, dst + i * dim, sizeof(float) * dim);
    }
  });
}

int64_t ShardServer::Push(uint32_t table_id, const uint64_t* keys, int64_t n, const float* grads,
                          uint64_t step) {
  const int dim = Dim(table_id);
  std::lock_guard<std::mutex> lock(call_mu_);
  const uint64_t* grouped = Partition(keys, n);
  const bool direct = num_shards() == 1;
  if (!direct) shard_values_.resize(static_cast<size_t>(n) * dim);
  std::vector<int64_t> updated(num_shards(), 0);
  RunOnShards(NonEmptyShards(), [&](int s) {
    const int64_t begin = offsets_[s], count = offsets_[s + 1] - begin;
    const float* src = grads;
    if (!direct) {
      float* staged = shard_values_.data() + begin * dim;
      for (int64_t i = 0; i < count; ++i) {
        std::memcpy(staged + i * dim, grads + order_[begin + i] * dim, sizeof(float) * dim);
      }
      src = staged;
    }
    updated[s] = shards_[s]->Table(table_id).Push(grouped + begin, count, src, step);
  });
  int64_t total = 0;
  for (int64_t u : updated) total += u;
  return total;
}

std::vector<int> ShardServer::AllShards() const {
  std::vector<int> all(num_shards());
  for (int s = 0; s < num_shards(); ++s) all[s] = s;
  return all;
}

int64_t ShardServer::NumRows(uint32_t table_id) {
  Dim(table_id);
  std::lock_guard<std::mutex> lock(call_mu_);
  std::vector<int64_t> rows(num_shards(), 0);
  RunOnShards(AllShards(), [&](int s) { rows[s] = shards_[s]->Table(table_id).num_rows(); });
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  return total;
}

int64_t ShardServer::Evict(uint64_t current_step) {
  std::lock_guard<std::mutex> lock(call_mu_);
  std::vector<int64_t> evicted(num_shards(), 0);
  RunOnShards(AllShards(), [&](int s) {
    for (auto& [id, table] : shards_[s]->tables) evicted[s] += table->Evict(current_step);
  });
  int64_t total = 0;
  for (int64_t e : evicted) total += e;
  return total;
}

Status ShardServer::Save(const std::string& dir, uint64_t current_step) {
  std::lock_guard<std::mutex> lock(call_mu_);
  std::vector<Status> results(num_shards());
  RunOnShards(AllShards(), [&](int s) {
    std::vector<const EmbeddingShard*> tables;
    for (const auto& [id, table] : shards_[s]->tables) {
      table->Evict(current_step);
      tables.push_back(table.get());
    }
    results[s] = SaveShard(dir + "/shard-" + std::to_string(s), tables);
  });
  for (const Status& st : results) ATTNPS_RETURN_IF_ERROR(st);
  return Status::Ok();
}

Status ShardServer::Load(const std::vector<std::string>& shard_dirs,
                         const std::function<bool(uint64_t)>& keep) {
  // Read once on this thread: the shard threads are idle while call_mu_ is held, and the queue
  // mutex of their next task orders these writes before their reads.
  std::lock_guard<std::mutex> lock(call_mu_);
  const int num = num_shards();
  std::vector<std::vector<EmbeddingShard*>> tables(num);
  for (int s = 0; s < num; ++s) {
    for (const auto& [id, table] : shards_[s]->tables) tables[s].push_back(table.get());
  }
  return LoadShards(
      shard_dirs, [&](uint64_t key) { return !keep || keep(key) ? ShardOf(key, num) : -1; },
      tables);
}

}  // namespace attnps::ps
