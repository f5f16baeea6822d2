// SyncHub without gRPC: sinks that record what each subscription is sent, in order.
#include "control_plane/sync_hub.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "control_plane/committer.h"
#include "control_plane/store.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

// Every message any sink was sent, in the order the hub sent them.
class SendLog {
 public:
  void Add(const std::string& agent, const v1::SyncResponse& message) {
    absl::MutexLock lock(&mu_);
    entries_.push_back({agent, message.kind_case()});
  }
  struct Entry {
    std::string agent;
    v1::SyncResponse::KindCase kind;
  };
  std::vector<Entry> entries() const {
    absl::MutexLock lock(&mu_);
    return entries_;
  }
  bool WaitFor(const std::string& agent, v1::SyncResponse::KindCase kind) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (const Entry& e : entries_) {
        if (e.agent == agent && e.kind == kind) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(10));
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

// Records each message and finishes its write at once, unless it holds the first one until
// released (standing in for a stream whose write is slow).
class RecordingSink : public SyncSink {
 public:
  RecordingSink(std::string agent, SendLog* log, bool hold_first)
      : agent_(std::move(agent)), log_(log), hold_first_(hold_first) {}

  void Attach(SyncHub* hub, SyncHub::SubscriptionId id) {
    hub_ = hub;
    id_ = id;
    attached_.Notify();
  }
  void Release() {
    if (!released_.HasBeenNotified()) released_.Notify();
  }
  absl::Notification& holding() { return holding_; }

  void Send(v1::SyncResponse message) override {
    attached_.WaitForNotificationWithTimeout(absl::Seconds(10));
    log_->Add(agent_, message);
    if (hold_first_ && !holding_.HasBeenNotified()) {
      holding_.Notify();
      released_.WaitForNotificationWithTimeout(absl::Seconds(10));
    }
    hub_->WriteDone(id_);
  }
  void End(const absl::Status&) override {}

 private:
  const std::string agent_;
  SendLog* const log_;
  const bool hold_first_;
  SyncHub* hub_ = nullptr;
  SyncHub::SubscriptionId id_ = 0;
  absl::Notification attached_;
  absl::Notification holding_;
  absl::Notification released_;
};

class SyncHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.path = dir_.path();
    options.sync_writes = false;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    committer_ = std::make_unique<Committer>(
        store_.get(), [this](const std::vector<std::shared_ptr<const v1::SyncChange>>& changes) {
          if (hub_ != nullptr) hub_->Published(changes);
        });
    SyncHubOptions hub_options;
    hub_options.dispatch_threads = 1;  // the order of sends is the order of the run queue
    hub_options.progress_interval = absl::Hours(1);
    hub_ = std::make_unique<SyncHub>(store_.get(), committer_.get(), hub_options);
    Commit("seed");  // a revision to resume from
  }
  void TearDown() override {
    for (const auto& sink : sinks_) sink->Release();
    hub_.reset();
    committer_.reset();
  }

  void Commit(const std::string& chain) {
    StoreMutation mutation;
    v1::ChainletState* state = mutation.change.add_upserts();
    state->mutable_key()->set_chain_id(chain);
    state->mutable_key()->set_env_name("production");
    state->mutable_key()->set_chainlet_name("model");
    state->mutable_settings()->set_max_replica(2);
    ASSERT_TRUE(committer_->Commit(&mutation).ok());
  }

  // An agent serving `chain`/production that is up to date at the current revision.
  RecordingSink* Subscribe(const std::string& agent, const std::string& chain,
                           bool hold_first = false) {
    v1::SyncHello hello;
    hello.set_agent_id(agent);
    hello.set_cluster_id(store_->cluster_id());
    hello.set_last_applied_revision(store_->revision());
    v1::ChainEnvironmentRef* ref = hello.mutable_selector()->add_chain_environments();
    ref->set_chain_id(chain);
    ref->set_env_name("production");
    auto sink = std::make_shared<RecordingSink>(agent, &log_, hold_first);
    absl::StatusOr<SyncHub::SubscriptionId> id = hub_->Subscribe(hello, sink);
    EXPECT_TRUE(id.ok()) << id.status();
    sink->Attach(hub_.get(), *id);
    sinks_.push_back(sink);
    return sink.get();
  }

  chainscale::testing::ScopedTempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<SyncHub> hub_;
  SendLog log_;
  std::vector<std::shared_ptr<RecordingSink>> sinks_;
};

// A change goes before progress messages: with many idle streams due a progress message
// (as every second), an update waits for none of them (DESIGN §5: progress only when idle).
TEST_F(SyncHubTest, AChangeIsSentBeforeQueuedProgressMessages) {
  constexpr int kIdle = 200;
  Subscribe("target", "target");
  ASSERT_TRUE(log_.WaitFor("target", v1::SyncResponse::kProgress));
  // The one dispatch thread is held in a write while the others queue their progress.
  RecordingSink* blocker = Subscribe("blocker", "blocker", /*hold_first=*/true);
  ASSERT_TRUE(blocker->holding().WaitForNotificationWithTimeout(absl::Seconds(10)));
  for (int i = 0; i < kIdle; ++i) Subscribe("idle-" + std::to_string(i), "other");
  Commit("target");
  const size_t before = log_.entries().size();
  blocker->Release();
  ASSERT_TRUE(log_.WaitFor("target", v1::SyncResponse::kChange));

  const std::vector<SendLog::Entry> entries = log_.entries();
  int progress_first = 0;
  for (size_t i = before; i < entries.size(); ++i) {
    if (entries[i].agent == "target") break;
    ++progress_first;
  }
  std::printf("idle streams due progress: %d; messages sent before the change: %d\n", kIdle,
              progress_first);
  EXPECT_EQ(progress_first, 0);
  // Every idle stream still hears its progress.
  int progress = 0;
  for (int i = 0; i < kIdle; ++i) {
    if (log_.WaitFor("idle-" + std::to_string(i), v1::SyncResponse::kProgress)) ++progress;
  }
  EXPECT_EQ(progress, kIdle);
}

}  // namespace
}  // namespace chainscale
