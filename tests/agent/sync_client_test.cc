// The Sync stream end to end, in the spirit of etcd's watch robustness tests: a real
// control plane on a loopback port, agents' SyncClients, every committed revision and
// every revision each agent applied recorded, and the agent's history checked to be
// ordered, unique, gap-free, atomic and resumable.
#include "agent/sync_client.h"

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/chainlet_key.h"
#include "control_plane/server.h"
#include "control_plane/sync_hub.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;
using Response = v1::UpdateChainletEnvironmentAutoscalingSettingsResponse;

constexpr char kKey[] = "management-key";
constexpr char kToken[] = "agent-token";

using testing::WaitFor;

// Everything one agent applied, in order, and the chainlets it adds up to (what the
// agent's DecisionLoop holds).
class AppliedLog {
 public:
  explicit AppliedLog(SettingsCache* cache) {
    cache->AddListener([this](const AppliedUpdate& update) {
      absl::MutexLock lock(&mu_);
      updates_.push_back(update);
    });
  }
  std::vector<AppliedUpdate> updates() const {
    absl::MutexLock lock(&mu_);
    return updates_;
  }
  std::map<std::string, SyncedChainlet> chainlets() const {
    std::map<std::string, SyncedChainlet> state;
    for (const AppliedUpdate& update : updates()) {
      if (update.snapshot) state.clear();
      for (const SyncedChainlet& c : update.upserts) state[EncodeChainletKey(c.key)] = c;
      for (const v1::ChainletKey& key : update.removals) state.erase(EncodeChainletKey(key));
    }
    return state;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<AppliedUpdate> updates_ ABSL_GUARDED_BY(mu_);
};

// One agent: a cache, its applied log and a client.
struct Agent {
  Agent(const std::string& address, const std::string& id, v1::Selector selector = {},
        const std::string& token = kToken)
      : log(&cache) {
    Connect(address, id, selector, token);
  }
  void Connect(const std::string& address, const std::string& id, v1::Selector selector = {},
               const std::string& token = kToken) {
    if (client) client->Stop();
    SyncClientOptions options;
    options.control_plane = address;
    options.agent_id = id;
    options.token = token;
    options.selector = selector;
    options.backoff.initial = absl::Milliseconds(10);
    options.backoff.max = absl::Milliseconds(200);
    client = std::make_unique<SyncClient>(options, &cache);
    client->Start();
  }
  SettingsCache cache;
  AppliedLog log;
  std::unique_ptr<SyncClient> client;
};

v1::Selector Select(const std::string& chain, const std::string& env) {
  v1::Selector selector;
  auto* ref = selector.add_chain_environments();
  ref->set_chain_id(chain);
  ref->set_env_name(env);
  return selector;
}

class SyncTest : public ::testing::Test {
 protected:
  void SetUp() override { StartControlPlane(dir_.str()); }

  void StartControlPlane(const std::string& data_dir, int64_t log_retention = 100'000,
                         const std::string& listen = "127.0.0.1:0") {
    ControlPlaneOptions options;
    options.listen = listen;
    options.http_listen = "";
    options.data_dir = data_dir;
    options.api_keys = ApiKeys({kKey});
    options.agent_tokens = ApiKeys({kToken});
    options.ack_timeout = ack_timeout_;
    options.log_retention = log_retention;
    options.sync.progress_interval = absl::Milliseconds(50);
    absl::StatusOr<std::unique_ptr<ControlPlaneServer>> server =
        ControlPlaneServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = absl::StrCat("127.0.0.1:", server_->grpc_port());
    stub_ = v1::ControlPlane::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata("authorization", std::string("Api-Key ") + kKey);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return context;
  }

  void CreateChain(const std::string& id, std::vector<std::string> chainlets) {
    v1::CreateChainRequest request;
    request.set_chain_id(id);
    for (const auto& c : chainlets) request.add_chainlet_names(c);
    v1::Chain chain;
    grpc::Status status = stub_->CreateChain(Context().get(), request, &chain);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Sets max_replica of each named chainlet in one request.
  Response Update(const std::string& chain, const std::string& env,
                  const std::map<std::string, int32_t>& max_replicas) {
    v1::UpdateChainletEnvironmentAutoscalingSettingsRequest request;
    request.set_chain_id(chain);
    request.set_env_name(env);
    for (const auto& [name, max] : max_replicas) {
      auto* update = request.add_updates();
      update->set_chainlet_name(name);
      update->mutable_autoscaling_settings()->set_max_replica(max);
    }
    Response response;
    grpc::Status status =
        stub_->UpdateChainletEnvironmentAutoscalingSettings(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Waits until the agent has applied everything committed.
  bool CaughtUp(const Agent& agent) {
    return WaitFor([&] { return agent.cache.applied_revision() >= server_->store().revision(); });
  }

  // The store's current settings of every chainlet `selector` selects, by key.
  std::map<std::string, int32_t> StoredMaxReplicas(const v1::Selector& selector = {}) {
    std::map<std::string, int32_t> out;
    const StoreSnapshot snapshot = server_->store().ReadSnapshot().value();
    for (const v1::ChainletState& s : snapshot.chainlets) {
      if (SelectorMatches(selector, s.key().chain_id(), s.key().env_name())) {
        out[EncodeChainletKey(s.key())] = s.settings().max_replica();
      }
    }
    return out;
  }

  static std::map<std::string, int32_t> CachedMaxReplicas(const Agent& agent) {
    std::map<std::string, int32_t> out;
    for (const auto& [key, c] : agent.log.chainlets()) out[key] = c.settings.max_replica;
    return out;
  }

  // Checks an agent's applied history against the committed log: strictly increasing
  // revisions; after a snapshot, every later committed revision that touches a selected
  // chainlet applied exactly once, in order, with exactly the selected part of its
  // changes (atomic).
  void ExpectValidHistory(const Agent& agent, const v1::Selector& selector = {}) {
    const std::vector<v1::SyncChange> committed =
        server_->store().ChangesSince(0, 1'000'000).value();
    std::map<int64_t, const v1::SyncChange*> by_revision;
    for (const v1::SyncChange& c : committed) by_revision[c.revision()] = &c;
    const std::vector<AppliedUpdate> applied = agent.log.updates();
    ASSERT_FALSE(applied.empty());
    ASSERT_TRUE(applied.front().snapshot) << "the first apply must be a snapshot";
    int64_t last = 0;
    for (const AppliedUpdate& update : applied) {
      ASSERT_GT(update.revision, last) << "revisions must strictly increase";
      if (!update.snapshot) {
        // Every selected revision between the previous apply and this one was applied.
        for (auto it = by_revision.upper_bound(last); it != by_revision.end() &&
                                                      it->first < update.revision;
             ++it) {
          for (const v1::ChainletState& s : it->second->upserts()) {
            EXPECT_FALSE(SelectorMatches(selector, s.key().chain_id(), s.key().env_name()))
                << "revision " << it->first << " was skipped";
          }
        }
        auto it = by_revision.find(update.revision);
        ASSERT_NE(it, by_revision.end()) << "applied a revision never committed";
        int selected = 0;
        for (const v1::ChainletState& s : it->second->upserts()) {
          selected += SelectorMatches(selector, s.key().chain_id(), s.key().env_name());
        }
        EXPECT_EQ(static_cast<int>(update.upserts.size()), selected)
            << "revision " << update.revision << " arrived split or merged";
      }
      last = update.revision;
    }
  }

  absl::Duration ack_timeout_ = absl::Seconds(5);
  testing::ScopedTempDir dir_;
  std::unique_ptr<ControlPlaneServer> server_;
  std::string address_;
  std::unique_ptr<v1::ControlPlane::Stub> stub_;
};

TEST_F(SyncTest, NewAgentGetsASnapshotThenEveryChangeInOrder) {
  CreateChain("c", {"A", "B"});
  Agent agent(address_, "agent-1");
  ASSERT_TRUE(CaughtUp(agent));
  EXPECT_EQ(agent.log.chainlets().size(), 4u);  // two chainlets in production and development
  for (int i = 0; i < 30; ++i) {
    Response r = Update("c", "production", {{i % 2 ? "A" : "B", 2 + i}});
    EXPECT_EQ(r.status(), Response::ACCEPTED) << r.message();
    EXPECT_THAT(r.message(), HasSubstr("applied by every agent"));
  }
  Response both = Update("c", "production", {{"A", 100}, {"B", 200}});
  EXPECT_EQ(both.status(), Response::ACCEPTED);
  ASSERT_TRUE(CaughtUp(agent));
  ExpectValidHistory(agent);
  const std::vector<AppliedUpdate> applied = agent.log.updates();
  EXPECT_EQ(applied.size(), 32u);  // one snapshot, 31 changes
  EXPECT_EQ(applied.back().upserts.size(), 2u);  // one request, one message
  EXPECT_EQ(CachedMaxReplicas(agent), StoredMaxReplicas());
  EXPECT_EQ(agent.client->stats().snapshots, 1);
  EXPECT_EQ(agent.client->stats().rejected, 0);
}

TEST_F(SyncTest, AcceptedNeedsEveryServingAgentAndQueuedOtherwise) {
  CreateChain("c", {"A"});
  Response r = Update("c", "production", {{"A", 2}});
  EXPECT_EQ(r.status(), Response::QUEUED);
  EXPECT_THAT(r.message(), HasSubstr("no agent serving c/production is connected"));

  Agent staging(address_, "staging-agent", Select("c", "development"));
  ASSERT_TRUE(CaughtUp(staging));
  r = Update("c", "production", {{"A", 3}});
  EXPECT_EQ(r.status(), Response::QUEUED) << "an agent of another environment does not count";

  Agent production(address_, "production-agent", Select("c", "production"));
  ASSERT_TRUE(CaughtUp(production));
  r = Update("c", "production", {{"A", 4}});
  EXPECT_EQ(r.status(), Response::ACCEPTED) << r.message();
  EXPECT_EQ(production.log.chainlets()[EncodeChainletKey("c", "production", "A")]
                .settings.max_replica,
            4);
  ExpectValidHistory(production, Select("c", "production"));
  ExpectValidHistory(staging, Select("c", "development"));
  EXPECT_EQ(staging.log.chainlets().size(), 1u);  // only its environment
}

TEST_F(SyncTest, AnAgentThatDoesNotAckInTimeMakesTheUpdateQueued) {
  server_.reset();
  ack_timeout_ = absl::Milliseconds(200);
  StartControlPlane(dir_.str());
  CreateChain("c", {"A"});
  Agent slow(address_, "slow-agent");
  ASSERT_TRUE(CaughtUp(slow));
  absl::Notification release;
  slow.cache.AddListener([&](const AppliedUpdate& u) {
    if (!u.snapshot) release.WaitForNotificationWithTimeout(absl::Seconds(20));
  });
  Response r = Update("c", "production", {{"A", 7}});
  EXPECT_EQ(r.status(), Response::QUEUED);
  EXPECT_THAT(r.message(), HasSubstr("not every agent applied it within 200ms"));
  release.Notify();
  ASSERT_TRUE(CaughtUp(slow));
  EXPECT_EQ(CachedMaxReplicas(slow), StoredMaxReplicas());
}

TEST_F(SyncTest, CutStreamsResumeFromTheLogWithoutGapsOrDuplicates) {
  CreateChain("c", {"A", "B", "C"});
  Agent agent(address_, "agent-1");
  ASSERT_TRUE(CaughtUp(agent));
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int i = 0; i < 150; ++i) Update("c", "production", {{std::string(1, 'A' + i % 3), 2 + i}});
    writing = false;
  });
  for (int cut = 0; cut < 8 && writing; ++cut) {
    ASSERT_TRUE(WaitFor([&] { return agent.client->connected() || !writing; }));
    agent.client->DropStream();
    absl::SleepFor(absl::Milliseconds(20));  // let some updates commit while it is away
  }
  writer.join();
  ASSERT_TRUE(CaughtUp(agent));
  ExpectValidHistory(agent);
  EXPECT_EQ(CachedMaxReplicas(agent), StoredMaxReplicas());
  EXPECT_GE(agent.client->stats().streams, 2);
  EXPECT_EQ(agent.client->stats().snapshots, 1) << "resumes come from the log";
  EXPECT_EQ(agent.client->stats().rejected, 0);
}

TEST_F(SyncTest, ResumingFromACompactedRevisionTakesASnapshot) {
  server_.reset();
  StartControlPlane(dir_.str(), /*log_retention=*/5);
  CreateChain("c", {"A"});
  Agent agent(address_, "agent-1");
  ASSERT_TRUE(CaughtUp(agent));
  agent.client->Stop();
  for (int i = 0; i < 20; ++i) Update("c", "production", {{"A", 2 + i}});
  agent.Connect(address_, "agent-1");
  ASSERT_TRUE(CaughtUp(agent));
  EXPECT_EQ(agent.client->stats().snapshots, 1);  // the new client's resume was a snapshot
  const std::vector<AppliedUpdate> applied = agent.log.updates();
  EXPECT_TRUE(applied.back().snapshot);
  EXPECT_EQ(applied.back().revision, 21);
  EXPECT_EQ(CachedMaxReplicas(agent), StoredMaxReplicas());
}

TEST_F(SyncTest, AnotherClusterIdReplacesTheAgentsState) {
  CreateChain("old", {"A"});
  Agent agent(address_, "agent-1");
  ASSERT_TRUE(CaughtUp(agent));
  const std::string old_cluster = agent.cache.cluster_id();
  agent.client->Stop();
  server_.reset();
  testing::ScopedTempDir other;
  StartControlPlane(other.str());
  CreateChain("new", {"X", "Y"});
  for (int i = 0; i < 3; ++i) Update("new", "production", {{"X", 2 + i}});
  agent.Connect(address_, "agent-1");
  ASSERT_TRUE(WaitFor([&] { return agent.cache.cluster_id() != old_cluster; }));
  ASSERT_TRUE(CaughtUp(agent));
  EXPECT_EQ(CachedMaxReplicas(agent), StoredMaxReplicas());
  EXPECT_EQ(agent.log.chainlets().size(), 4u);  // nothing of the old cluster is left
}

TEST_F(SyncTest, DecisionsFlowBackAndReachTheNextAgent) {
  CreateChain("c", {"A"});
  Agent agent(address_, "agent-1");
  ASSERT_TRUE(CaughtUp(agent));
  v1::GetChainEnvironmentRequest get;
  get.set_chain_id("c");
  get.set_env_name("production");
  // The only agent owns the environment; its decisions carry the epoch (DESIGN §11).
  v1::ChainEnvironment owned;
  ASSERT_TRUE(WaitFor([&] {
    return stub_->GetChainEnvironment(Context().get(), get, &owned).ok() &&
           owned.owner().agent_id() == "agent-1";
  }));
  EXPECT_GT(owned.owner().epoch(), 0);
  v1::ScalingDecision decision;
  decision.set_chain_id("c");
  decision.set_env_name("production");
  decision.set_chainlet_name("A");
  decision.set_desired_replicas(3);
  decision.set_status(v1::ScalingDecision::ACCEPTED);
  decision.set_epoch(owned.owner().epoch());
  agent.client->SendDecisions({decision});
  ASSERT_TRUE(WaitFor([&] {
    v1::ChainEnvironment env;
    return stub_->GetChainEnvironment(Context().get(), get, &env).ok() &&
           env.chainlet_settings(0).decision().desired_replicas() == 3;
  }));
  Agent successor(address_, "agent-2");
  ASSERT_TRUE(CaughtUp(successor));
  const std::map<std::string, SyncedChainlet> chainlets = successor.log.chainlets();
  auto it = chainlets.find(EncodeChainletKey("c", "production", "A"));
  ASSERT_NE(it, chainlets.end());
  ASSERT_TRUE(it->second.decision.has_value());
  EXPECT_EQ(it->second.decision->desired_replicas, 3);
}

TEST_F(SyncTest, ShutdownEndsStreamsWithUnavailable) {
  Agent agent(address_, "agent-1");
  // The snapshot arrived: the control plane holds the stream.
  ASSERT_TRUE(WaitFor([&] { return !agent.cache.cluster_id().empty(); }));
  server_->Shutdown();
  ASSERT_TRUE(WaitFor([&] { return agent.client->stats().last_end_code != -1; }));
  EXPECT_EQ(agent.client->stats().last_end_code, grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SyncTest, AWrongTokenIsUnauthenticated) {
  Agent agent(address_, "intruder", {}, "not-the-token");
  ASSERT_TRUE(WaitFor([&] { return agent.client->stats().last_end_code != -1; }));
  EXPECT_EQ(agent.client->stats().last_end_code, grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(agent.log.chainlets().empty());
}

}  // namespace
}  // namespace chainscale
