// Client, server loop and wire protocol together over the in-process transport.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "ps/ps_client.h"
#include "ps/ps_server.h"
#include "ps/sharding.h"
#include "ps/wire.h"

namespace attnps::ps {
namespace {

namespace fs = std::filesystem;

std::vector<TableConfig> Tables() {
  TableConfig t;
  t.name = "items";
  t.id = 1;
  t.dim = 4;
  t.optimizer.kind = SparseOptimizerKind::kSgd;
  t.optimizer.learning_rate = 0.5f;
  return {t};
}

// How the servers get their requests: a thread per server running ServeRequests, or inline on
// the sending thread (InProcessHub::ServeInline, clients without a receive thread).
enum class Serving { kThreads, kInline };

// S servers (ranks 0..S-1), W worker endpoints (ranks S..S+W-1).
class Job {
 public:
  Job(int servers, int workers, Serving serving)
      : hub_(servers + workers), servers_(servers), workers_(workers) {
    for (int s = 0; s < servers; ++s) {
      tables_.push_back(std::make_unique<ShardServer>(Tables(), 2));
      endpoints_.push_back(hub_.Endpoint(s));
    }
    for (int s = 0; s < servers; ++s) {
      if (serving == Serving::kInline) {
        handlers_.push_back(std::make_unique<RequestHandler>(endpoints_[s].get(), tables_[s].get(),
                                                             ServeOptions{servers_, workers_}));
        RequestHandler* h = handlers_.back().get();
        hub_.ServeInline(s, [h](int source, const Buffer& m) { return h->Handle(source, m); });
        continue;
      }
      threads_.emplace_back([this, s] {
        const Status st =
            ServeRequests(endpoints_[s].get(), tables_[s].get(), {servers_, workers_});
        EXPECT_TRUE(st.ok()) << st.ToString();
      });
    }
    PsClientOptions options;
    options.receive_thread = serving == Serving::kThreads;
    for (int w = 0; w < workers; ++w) {
      worker_endpoints_.push_back(hub_.Endpoint(servers + w));
      clients_.push_back(
          std::make_unique<PsClient>(worker_endpoints_.back().get(), servers, options));
    }
  }
  ~Job() {
    for (auto& c : clients_) EXPECT_TRUE(c->Shutdown().ok());
    for (auto& t : threads_) t.join();  // every server loop ends after all shutdowns
  }
  PsClient& client(int w) { return *clients_[w]; }
  Transport& worker_endpoint(int w) { return *worker_endpoints_[w]; }

 private:
  InProcessHub hub_;
  int servers_, workers_;
  std::vector<std::unique_ptr<ShardServer>> tables_;
  std::vector<std::unique_ptr<Transport>> endpoints_, worker_endpoints_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<RequestHandler>> handlers_;
  std::vector<std::unique_ptr<PsClient>> clients_;
};

class PsRuntimeTest : public ::testing::TestWithParam<Serving> {};

std::vector<uint64_t> Keys(int n) {
  std::vector<uint64_t> keys;
  for (int i = 0; i < n; ++i) keys.push_back(i * 7919ull + 3);
  return keys;
}

std::vector<float> Pull(PsClient& c, const std::vector<uint64_t>& keys) {
  std::vector<float> out(keys.size() * 4);
  EXPECT_TRUE(
      c.Wait(c.Pull(1, keys.data(), static_cast<int64_t>(keys.size()), 4, 1, out.data())).ok());
  return out;
}

TEST_P(PsRuntimeTest, PullMatchesALocalTableAcrossServers) {
  Job job(2, 1, GetParam());
  const auto keys = Keys(500);
  EmbeddingShard local(Tables()[0]);
  std::vector<float> want(keys.size() * 4);
  local.Pull(keys.data(), static_cast<int64_t>(keys.size()), 1, want.data());
  EXPECT_EQ(Pull(job.client(0), keys), want);
}

TEST_P(PsRuntimeTest, ConcurrentSgdPushesFromTwoWorkersSumLikeSerialOnes) {
  Job job(2, 2, GetParam());
  const auto keys = Keys(300);
  const auto initial = Pull(job.client(0), keys);
  const int rounds = 10;
  auto push_rounds = [&](int w) {
    const std::vector<float> grads(keys.size() * 4, 0.1f);
    for (int r = 0; r < rounds; ++r) {
      auto h =
          job.client(w).Push(1, keys.data(), static_cast<int64_t>(keys.size()), 4, grads.data(), r);
      EXPECT_TRUE(job.client(w).Wait(h).ok());
    }
    EXPECT_TRUE(job.client(w).Barrier().ok());
  };
  std::thread other(push_rounds, 1);
  push_rounds(0);
  other.join();
  const auto after = Pull(job.client(0), keys);
  for (size_t i = 0; i < after.size(); ++i) {
    ASSERT_NEAR(after[i], initial[i] - 2 * rounds * 0.5f * 0.1f, 1e-5f) << "element " << i;
  }
}

TEST_P(PsRuntimeTest, PullAfterPushWaitSeesThePush) {
  Job job(2, 1, GetParam());
  PsClient& c = job.client(0);
  const auto keys = Keys(64);
  const auto before = Pull(c, keys);
  const std::vector<float> grads(keys.size() * 4, 1.0f);
  ASSERT_TRUE(c.Wait(c.Push(1, keys.data(), 64, 4, grads.data(), 2)).ok());
  const auto after = Pull(c, keys);
  for (size_t i = 0; i < after.size(); ++i) ASSERT_FLOAT_EQ(after[i], before[i] - 0.5f);
}

TEST_P(PsRuntimeTest, ManyRequestsInFlight) {
  Job job(2, 1, GetParam());
  PsClient& c = job.client(0);
  const auto keys = Keys(200);
  std::vector<std::vector<float>> outs(20, std::vector<float>(keys.size() * 4));
  std::vector<PsClient::Handle> handles;
  for (auto& out : outs) handles.push_back(c.Pull(1, keys.data(), 200, 4, 1, out.data()));
  for (auto h : handles) ASSERT_TRUE(c.Wait(h).ok());
  for (const auto& out : outs) EXPECT_EQ(out, outs[0]);
}

TEST_P(PsRuntimeTest, MalformedRequestsGetErrorsAndTheServerKeepsServing) {
  Job job(1, 1, GetParam());
  PsClient& c = job.client(0);
  const auto keys = Keys(8);
  std::vector<float> out(8 * 4);
  Status st = c.Wait(c.Pull(7, keys.data(), 8, 4, 1, out.data()));
  EXPECT_NE(st.message().find("table 7 is unknown"), std::string::npos) << st.ToString();
  st = c.Wait(c.Pull(1, keys.data(), 8, 3, 1, out.data()));
  EXPECT_NE(st.message().find("has dim 4, request says 3"), std::string::npos) << st.ToString();
  // Raw garbage straight to the server: refused (logged and answered), not a crash.
  ASSERT_TRUE(
      job.worker_endpoint(0).Send(0, Tag::kRequest, Buffer::Copy("garbage that is no frame")).ok());
  EXPECT_EQ(Pull(c, keys).size(), 32u);
}

TEST_P(PsRuntimeTest, SaveWithTwoServersLoadWithOne) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("runtime_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const auto keys = Keys(400);
  std::vector<float> saved;
  {
    Job job(2, 1, GetParam());
    PsClient& c = job.client(0);
    saved = Pull(c, keys);
    const std::vector<float> grads(keys.size() * 4, 0.25f);
    ASSERT_TRUE(c.Wait(c.Push(1, keys.data(), 400, 4, grads.data(), 3)).ok());
    saved = Pull(c, keys);
    const Status st = c.Save(dir.string(), 3);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  Job job(1, 1, GetParam());
  PsClient& c = job.client(0);
  const Status st = c.Load(dir.string());
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::map<uint32_t, uint64_t> rows;
  ASSERT_TRUE(c.Stats(&rows).ok());
  EXPECT_EQ(rows[1], 400u);
  EXPECT_EQ(Pull(c, keys), saved);
  fs::remove_all(dir);
}

// Each worker's count of its traffic with each server equals the server's count of the same
// traffic, and the bytes go where the keys are: keys of server 0 only load server 0.
TEST_P(PsRuntimeTest, PerServerTrafficMatchesWhatEachServerCounted) {
  Job job(2, 2, GetParam());
  std::vector<uint64_t> on_server0;
  for (uint64_t k = 1; on_server0.size() < 300; ++k) {
    if (ServerOf(k, 2) == 0) on_server0.push_back(k);
  }
  const auto spread = Keys(300);
  auto work = [&](int w) {
    PsClient& c = job.client(w);
    const auto& keys = w == 0 ? on_server0 : spread;
    const std::vector<float> grads(keys.size() * 4, 0.1f);
    for (int r = 0; r < 5; ++r) {
      Pull(c, keys);
      EXPECT_TRUE(c.Wait(c.Push(1, keys.data(), 300, 4, grads.data(), r)).ok());
    }
    EXPECT_TRUE(c.Barrier().ok());
  };
  std::thread other(work, 1);
  work(0);
  other.join();
  for (int w = 0; w < 2; ++w) {
    std::map<uint32_t, uint64_t> rows;
    std::vector<PeerTraffic> counted;
    ASSERT_TRUE(job.client(w).Stats(&rows, &counted).ok());
    const std::vector<PeerTraffic> mine = job.client(w).Traffic();
    ASSERT_EQ(counted.size(), 2u);
    for (int s = 0; s < 2; ++s) {
      SCOPED_TRACE("worker " + std::to_string(w) + " server " + std::to_string(s));
      EXPECT_EQ(mine[s].sent_bytes, counted[s].received_bytes);
      EXPECT_EQ(mine[s].sent_messages, counted[s].received_messages);
      const uint64_t keyed = w == 0 && s == 1 ? 0 : 5 * 2;  // pulls and pushes (none: no keys)
      EXPECT_EQ(counted[s].received_messages, keyed + 2);   // and the barrier and the stats
      // The stats reply is in this client's count and not yet in the server's.
      EXPECT_EQ(mine[s].received_messages, counted[s].sent_messages + 1);
      EXPECT_GT(mine[s].received_bytes, counted[s].sent_bytes);
    }
  }
  const std::vector<PeerTraffic> skewed = job.client(0).Traffic();
  EXPECT_GT(skewed[0].sent_bytes, 50 * skewed[1].sent_bytes);  // server 1: control messages only
  const std::vector<PeerTraffic> even = job.client(1).Traffic();
  EXPECT_NEAR(static_cast<double>(even[0].sent_bytes) / even[1].sent_bytes, 1.0, 0.3);
}

INSTANTIATE_TEST_SUITE_P(Serving, PsRuntimeTest,
                         ::testing::Values(Serving::kThreads, Serving::kInline),
                         [](const ::testing::TestParamInfo<Serving>& info) {
                           return info.param == Serving::kThreads ? "Threads" : "Inline";
                         });

// An inline server whose handler fails: that send and every later one to it return the failure.
TEST(InProcessHubTest, AFailedInlineHandlerFailsLaterSends) {
  InProcessHub hub(2);
  int calls = 0;
  hub.ServeInline(0, [&calls](int, const Buffer&) {
    ++calls;
    return Status::Unavailable("server gone");
  });
  auto worker = hub.Endpoint(1);
  EXPECT_EQ(worker->Send(0, Tag::kRequest, Buffer::Copy("a")).code(), Status::Code::kUnavailable);
  EXPECT_EQ(worker->Send(0, Tag::kRequest, Buffer::Copy("b")).code(), Status::Code::kUnavailable);
  EXPECT_EQ(calls, 1);
  // Replies still go to the mailbox.
  auto server = hub.Endpoint(0);
  ASSERT_TRUE(server->Send(1, Tag::kReply, Buffer::Copy("r")).ok());
  int source = -1;
  Buffer got;
  ASSERT_TRUE(worker->Recv(Tag::kReply, 100, &source, &got).ok());
  EXPECT_EQ(source, 0);
}

}  // namespace
}  // namespace attnps::ps
