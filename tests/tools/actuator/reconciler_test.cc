#include "tools/actuator/reconciler.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Replicas in memory. A stopped replica stays alive until the test lets it exit, as a real
// one does while it drains; every call is recorded.
class FakeBackend final : public Backend {
 public:
  std::string kind() const override { return "fake"; }

  absl::StatusOr<std::vector<Replica>> List() override {
    ++lists;
    if (!list_error.ok()) return list_error;
    return alive;
  }
  absl::StatusOr<Replica> Start() override {
    if (!start_error.ok()) {
      calls.push_back("start failed");
      return start_error;
    }
    Replica r{absl::StrCat("r", next_serial), next_serial, absl::StrCat("replica ", next_serial)};
    ++next_serial;
    alive.push_back(r);
    calls.push_back("start " + r.id);
    return r;
  }
  absl::Status Stop(const Replica& replica, absl::Duration drain_period) override {
    calls.push_back(absl::StrCat("stop ", replica.id, " ", absl::FormatDuration(drain_period)));
    return absl::OkStatus();
  }
  absl::Status Kill(const Replica& replica) override {
    calls.push_back("kill " + replica.id);
    Exit(replica.id);
    return absl::OkStatus();
  }

  // The replica's process ends.
  void Exit(const std::string& id) {
    alive.erase(std::remove_if(alive.begin(), alive.end(),
                               [&](const Replica& r) { return r.id == id; }),
                alive.end());
  }
  std::vector<std::string> TakeCalls() { return std::exchange(calls, {}); }
  std::vector<std::string> AliveIds() const {
    std::vector<std::string> ids;
    for (const Replica& r : alive) ids.push_back(r.id);
    return ids;
  }

  std::vector<Replica> alive;
  std::vector<std::string> calls;
  int64_t next_serial = 1;
  int lists = 0;
  absl::Status list_error;
  absl::Status start_error;
};

ReconcilerOptions Options() {
  ReconcilerOptions options;
  options.drain_period = absl::Seconds(30);
  options.resync_interval = absl::Seconds(5);
  options.retry = {absl::Seconds(1), 2.0, absl::Seconds(8), /*jitter=*/0};
  return options;
}

class ReconcilerTest : public ::testing::Test {
 protected:
  FakeBackend backend_;
  testing::FakeClock clock_;
  Reconciler reconciler_{"demo/production/HelloWorld", &backend_, Options(), &clock_};
};

TEST_F(ReconcilerTest, ScalesUpAtOnce) {
  reconciler_.SetMaxReplica(10);
  reconciler_.SetDecision(3, "scaled up from 0 to 3");
  EXPECT_EQ(reconciler_.Reconcile(), clock_.Now() + absl::Seconds(5));
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("start r1", "start r2", "start r3"));
  const TargetStatus status = reconciler_.status();
  EXPECT_EQ(status.decided, 3);
  EXPECT_EQ(status.desired, 3);
  EXPECT_EQ(status.running, 3);
  EXPECT_EQ(status.starts, 3);
  EXPECT_TRUE(status.backend_up);

  // Nothing to do the next time.
  clock_.Advance(absl::Seconds(5));
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), IsEmpty());
}

TEST_F(ReconcilerTest, ScalesDownNewestFirstAndCountsStopsWhenTheyGo) {
  reconciler_.SetMaxReplica(10);
  reconciler_.SetDecision(4, "up");
  reconciler_.Reconcile();
  backend_.TakeCalls();

  reconciler_.SetDecision(2, "scaled down from 4 to 2");
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("stop r4 30s", "stop r3 30s"));
  TargetStatus status = reconciler_.status();
  EXPECT_EQ(status.running, 2);
  EXPECT_EQ(status.draining, 2);
  EXPECT_EQ(status.stops, 0);

  backend_.Exit("r4");
  backend_.Exit("r3");
  clock_.Advance(absl::Seconds(1));
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), IsEmpty());  // a replica asked to stop is not replaced
  status = reconciler_.status();
  EXPECT_EQ(status.running, 2);
  EXPECT_EQ(status.draining, 0);
  EXPECT_EQ(status.stops, 2);
  EXPECT_EQ(status.kills, 0);
  EXPECT_EQ(status.exits, 0);
  EXPECT_THAT(backend_.AliveIds(), ElementsAre("r1", "r2"));
}

TEST_F(ReconcilerTest, NewestIsTheHighestSerialWhateverTheListOrder) {
  backend_.alive = {{"c", 3, "c"}, {"compose", 0, "compose"}, {"a", 9, "a"}, {"b", 5, "b"}};
  reconciler_.SetMaxReplica(10);
  reconciler_.SetDecision(1, "down");
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("stop a 30s", "stop b 30s", "stop c 30s"));
}

TEST_F(ReconcilerTest, KillsAReplicaStillAliveAtTheEndOfItsDrainPeriod) {
  reconciler_.SetMaxReplica(10);
  reconciler_.SetDecision(3, "up");
  reconciler_.Reconcile();
  backend_.TakeCalls();
  const absl::Time asked = clock_.Now();
  reconciler_.SetDecision(1, "down");
  // The next pass is due when the drain period ends (before the resync would be).
  EXPECT_EQ(reconciler_.Reconcile(), clock_.Now() + absl::Seconds(5));
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("stop r3 30s", "stop r2 30s"));

  // r2 drains in time; r3 does not.
  clock_.Advance(absl::Seconds(10));
  backend_.Exit("r2");
  reconciler_.Reconcile();
  clock_.Advance(absl::Seconds(19));
  EXPECT_EQ(reconciler_.Reconcile(), asked + absl::Seconds(30));
  EXPECT_THAT(backend_.TakeCalls(), IsEmpty());
  EXPECT_EQ(reconciler_.status().draining, 1);

  clock_.Advance(absl::Seconds(1));
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("kill r3"));
  clock_.Advance(absl::Seconds(1));
  reconciler_.Reconcile();
  const TargetStatus status = reconciler_.status();
  EXPECT_EQ(status.running, 1);
  EXPECT_EQ(status.draining, 0);
  EXPECT_EQ(status.stops, 2);
  EXPECT_EQ(status.kills, 1);
  EXPECT_THAT(backend_.AliveIds(), ElementsAre("r1"));
}

TEST_F(ReconcilerTest, NeverRunsMoreThanMaxReplica) {
  reconciler_.SetDecision(5, "up");
  // max_replica not known yet: nothing starts.
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), IsEmpty());
  EXPECT_EQ(reconciler_.status().desired, std::nullopt);

  reconciler_.SetMaxReplica(3);
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("start r1", "start r2", "start r3"));
  TargetStatus status = reconciler_.status();
  EXPECT_EQ(status.decided, 5);
  EXPECT_EQ(status.max_replica, 3);
  EXPECT_EQ(status.desired, 3);

  // The cap comes down: the newest goes.
  reconciler_.SetMaxReplica(2);
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("stop r3 30s"));
  EXPECT_EQ(reconciler_.status().desired, 2);
}

TEST_F(ReconcilerTest, AdoptsWhatRunsAndTouchesNothingBeforeTheFirstDecision) {
  // What a previous actuator started, found running after a restart.
  backend_.alive = {{"p101", 4, "pid 101"}, {"p102", 5, "pid 102"}, {"p103", 6, "pid 103"}};
  backend_.next_serial = 7;
  reconciler_.SetMaxReplica(10);
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), IsEmpty());
  EXPECT_EQ(reconciler_.status().running, 3);
  EXPECT_EQ(reconciler_.status().desired, std::nullopt);

  // The same decision as before the restart: the same replicas, none started or stopped.
  reconciler_.SetDecision(3, "scaled up from 0 to 3");
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), IsEmpty());
  EXPECT_THAT(backend_.AliveIds(), ElementsAre("p101", "p102", "p103"));

  reconciler_.SetDecision(2, "down");
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("stop p103 30s"));
}

TEST_F(ReconcilerTest, RetriesAFailingBackendWithBackoff) {
  backend_.start_error = absl::NotFoundError("command not found: chainscale-replica");
  reconciler_.SetMaxReplica(10);
  reconciler_.SetDecision(2, "up");
  const absl::Time first = clock_.Now();
  EXPECT_EQ(reconciler_.Reconcile(), first + absl::Seconds(1));
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("start failed"));
  TargetStatus status = reconciler_.status();
  EXPECT_FALSE(status.backend_up);
  EXPECT_EQ(status.failures, 1);
  EXPECT_THAT(status.last_error, HasSubstr("command not found: chainscale-replica"));

  // Not before the delay, even when asked.
  clock_.Advance(absl::Milliseconds(500));
  const int lists = backend_.lists;
  EXPECT_EQ(reconciler_.Reconcile(), first + absl::Seconds(1));
  EXPECT_EQ(backend_.lists, lists);
  EXPECT_THAT(backend_.TakeCalls(), IsEmpty());

  // Then again, with a longer delay after each failure.
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_EQ(reconciler_.Reconcile(), clock_.Now() + absl::Seconds(2));
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("start failed"));
  EXPECT_EQ(reconciler_.status().failures, 2);

  // The backend recovers: both start, and the status says so.
  backend_.start_error = absl::OkStatus();
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(reconciler_.Reconcile(), clock_.Now() + absl::Seconds(5));
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("start r1", "start r2"));
  status = reconciler_.status();
  EXPECT_TRUE(status.backend_up);
  EXPECT_EQ(status.failures, 2);
  EXPECT_EQ(status.running, 2);

  // A daemon that cannot be listed is retried the same way, from the first delay again.
  backend_.list_error = absl::UnavailableError("cannot reach the Docker daemon");
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(reconciler_.Reconcile(), clock_.Now() + absl::Seconds(1));
  EXPECT_FALSE(reconciler_.status().backend_up);
  EXPECT_EQ(reconciler_.status().failures, 3);
}

TEST_F(ReconcilerTest, ReplacesAReplicaThatDied) {
  reconciler_.SetMaxReplica(10);
  reconciler_.SetDecision(3, "up");
  reconciler_.Reconcile();
  backend_.TakeCalls();
  backend_.Exit("r2");
  clock_.Advance(absl::Seconds(5));
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("start r4"));
  const TargetStatus status = reconciler_.status();
  EXPECT_EQ(status.exits, 1);
  EXPECT_EQ(status.starts, 4);
  EXPECT_EQ(status.running, 3);
}

TEST_F(ReconcilerTest, ScalesToZero) {
  reconciler_.SetMaxReplica(10);
  reconciler_.SetDecision(2, "up");
  reconciler_.Reconcile();
  backend_.TakeCalls();
  reconciler_.SetDecision(0, "scaled down from 2 to 0");
  reconciler_.Reconcile();
  EXPECT_THAT(backend_.TakeCalls(), ElementsAre("stop r2 30s", "stop r1 30s"));
}

TEST_F(ReconcilerTest, AnInputChangeEndsTheWait) {
  reconciler_.SetDecision(1, "up");
  reconciler_.WaitUntil(absl::InfiniteFuture());  // returns: the decision is new
  reconciler_.Reconcile();
  reconciler_.Shutdown();
  reconciler_.WaitUntil(absl::InfiniteFuture());  // returns: shut down
  EXPECT_TRUE(reconciler_.shut_down());
}

}  // namespace
}  // namespace chainscale
