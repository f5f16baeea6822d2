// The agent's decision loop with a fake clock: reports, validation, the cold-start path,
// ticks, settings changes, warm-up from a stored decision, watchers and lookups.
#include "agent/decision_loop.h"

#include <limits>

#include "common/field_violations.h"
#include "common/settings_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "google/protobuf/util/time_util.h"
#include "tests/testing/fake_clock.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::ChainletKey Key(const std::string& chainlet, const std::string& env = "production") {
  v1::ChainletKey key;
  key.set_chain_id("c");
  key.set_env_name(env);
  key.set_chainlet_name(chainlet);
  return key;
}

CachedChainlet Cached(const std::string& chainlet, int32_t max_replica = 10,
                      std::optional<int32_t> stored_replicas = std::nullopt) {
  CachedChainlet c;
  c.key = Key(chainlet);
  c.settings.max_replica = max_replica;
  c.settings.concurrency_target = 10;
  c.settings.target_utilization_percentage = 70;
  c.settings.autoscaling_window = 10;
  c.settings.scale_down_delay = 2;
  c.revision = 7;
  if (stored_replicas) {
    v1::ScalingDecision d;
    d.set_desired_replicas(*stored_replicas);
    c.decision = d;
  }
  return c;
}

AppliedUpdate Snapshot(std::vector<CachedChainlet> chainlets) {
  AppliedUpdate u;
  u.snapshot = true;
  u.revision = 7;
  u.upserts = std::move(chainlets);
  return u;
}

class DecisionLoopTest : public ::testing::Test {
 protected:
  DecisionLoopTest() : loop_(Options(), clock_) {}

  static DecisionLoopOptions Options() {
    DecisionLoopOptions options;
    options.agent_id = "agent-1";
    options.report_staleness_seconds = 3;
    auto* ref = options.selector.add_chain_environments();
    ref->set_chain_id("c");
    ref->set_env_name("production");
    return options;
  }

  static google::protobuf::RepeatedPtrField<v1::LoadReport> Reports(
      std::vector<std::pair<std::string, double>> loads, const std::string& source = "r1") {
    google::protobuf::RepeatedPtrField<v1::LoadReport> reports;
    for (const auto& [chainlet, in_flight] : loads) {
      v1::LoadReport* r = reports.Add();
      r->set_source_id(source);
      r->set_chain_id("c");
      r->set_env_name("production");
      r->set_chainlet_name(chainlet);
      r->set_in_flight_requests(in_flight);
    }
    return reports;
  }

  // Advances one second, reports `in_flight` for A (unless negative), ticks.
  v1::ScalingDecision Second(double in_flight) {
    clock_.Advance(absl::Seconds(1));
    if (in_flight >= 0) {
      EXPECT_TRUE(loop_.Report(Reports({{"A", in_flight}})).ok());
    }
    loop_.Tick();
    return loop_.Get(Key("A")).value();
  }

  testing::FakeClock clock_;
  DecisionLoop loop_;
};

TEST_F(DecisionLoopTest, LoadAtZeroReplicasIsDecidedAtOnce) {
  loop_.Apply(Snapshot({Cached("A")}));
  std::vector<v1::ScalingDecision> told;
  loop_.AddWatcher([&](const v1::ScalingDecision& d, bool) { told.push_back(d); });
  absl::StatusOr<std::vector<v1::ScalingDecision>> answer = loop_.Report(Reports({{"A", 25}}));
  ASSERT_TRUE(answer.ok()) << answer.status();
  ASSERT_EQ(answer->size(), 1u);
  EXPECT_EQ((*answer)[0].desired_replicas(), 4);  // 25 / (10 × 70 %) → 4, without a tick
  EXPECT_EQ((*answer)[0].status(), v1::ScalingDecision::ACCEPTED);
  EXPECT_EQ((*answer)[0].agent_id(), "agent-1");
  EXPECT_EQ((*answer)[0].settings_revision(), 7);
  EXPECT_THAT((*answer)[0].reason(), HasSubstr("scaled up from 0 to 4"));
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].desired_replicas(), 4);
}

TEST_F(DecisionLoopTest, ScalesDownAfterTheDelayInHalvingSteps) {
  loop_.Apply(Snapshot({Cached("A")}));
  for (int i = 0; i < 12; ++i) Second(25);  // past the warm-up window
  EXPECT_EQ(loop_.Get(Key("A"))->desired_replicas(), 4);
  std::vector<int32_t> steps;
  int queued = 0;
  for (int i = 0; i < 40; ++i) {
    v1::ScalingDecision d = Second(0);  // the replica goes idle and says so
    if (d.status() == v1::ScalingDecision::ACCEPTED) steps.push_back(d.desired_replicas());
    queued += d.status() == v1::ScalingDecision::QUEUED;
  }
  // The load drops to 0; the 10 s window drains, so the target falls while each step
  // waits the 2 s delay and removes at most half.
  EXPECT_THAT(steps, ElementsAre(3, 2, 1, 0));
  EXPECT_GT(queued, 0);
}

TEST_F(DecisionLoopTest, ReportsAreValidatedWholeAndRecordNothingWhenOneIsBad) {
  loop_.Apply(Snapshot({Cached("A"), Cached("B")}));
  auto reports = Reports({{"A", 5}, {"B", std::numeric_limits<double>::quiet_NaN()}});
  reports.Add()->CopyFrom(reports[0]);
  reports[2].set_in_flight_requests(-1);
  reports[2].set_source_id("");
  absl::Status status = loop_.Report(reports).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(status)) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("reports[1].in_flight_requests", "reports[2].source_id",
                                  "reports[2].in_flight_requests"));
  EXPECT_EQ(loop_.Report(Reports({{"A", 2e6}})).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto tokens = Reports({{"A", 1}});
  tokens[0].set_in_flight_tokens(-5);
  EXPECT_EQ(loop_.Report(tokens).status().code(), absl::StatusCode::kInvalidArgument);
  // A valid report beside an unknown chainlet: rejected, and A's load is not recorded.
  status = loop_.Report(Reports({{"A", 50}, {"Nope", 1}})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("c/production/Nope"));
  EXPECT_EQ(loop_.Get(Key("A"))->desired_replicas(), 0);
  loop_.Tick();
  EXPECT_EQ(loop_.Get(Key("A"))->desired_replicas(), 0);
  EXPECT_EQ(loop_.Report({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DecisionLoopTest, AnotherEnvironmentIsFailedPrecondition) {
  loop_.Apply(Snapshot({Cached("A")}));
  auto reports = Reports({{"A", 1}});
  reports[0].set_env_name("staging");
  absl::Status status = loop_.Report(reports).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("does not serve c/staging/A"));
  EXPECT_EQ(loop_.Get(Key("A", "staging")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(loop_.Get(Key("Z")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DecisionLoopTest, SettingsChangesApplyAtTheNextTick) {
  loop_.Apply(Snapshot({Cached("A")}));
  for (int i = 0; i < 12; ++i) Second(25);
  AppliedUpdate change;
  change.revision = 8;
  CachedChainlet lowered = Cached("A", /*max_replica=*/2);
  lowered.revision = 8;
  change.upserts.push_back(lowered);
  loop_.Apply(change);
  EXPECT_EQ(loop_.Get(Key("A"))->desired_replicas(), 4);  // not before the next decision
  v1::ScalingDecision d = Second(25);
  EXPECT_EQ(d.desired_replicas(), 2);
  EXPECT_EQ(d.status(), v1::ScalingDecision::ACCEPTED);
  EXPECT_TRUE(d.capped());
  EXPECT_EQ(d.settings_revision(), 8);
}

TEST_F(DecisionLoopTest, TakeoverStartsFromTheStoredDecisionAndHoldsDuringWarmUp) {
  loop_.Apply(Snapshot({Cached("A", 10, /*stored_replicas=*/4)}));
  EXPECT_EQ(loop_.Get(Key("A"))->desired_replicas(), 4);
  EXPECT_EQ(loop_.Get(Key("A"))->reason(), "taken over at 4 replicas, the stored decision");
  // No load at all; the 10 s window has not been observed yet: hold 4.
  for (int i = 0; i < 9; ++i) {
    v1::ScalingDecision d = Second(0);
    EXPECT_EQ(d.desired_replicas(), 4) << "second " << i + 1;
    EXPECT_TRUE(d.warming_up());
  }
  int32_t replicas = 4;
  for (int i = 0; i < 5 && replicas == 4; ++i) replicas = Second(0).desired_replicas();
  EXPECT_EQ(replicas, 2);
}

TEST_F(DecisionLoopTest, ASnapshotOnReconnectKeepsEachChainletsState) {
  loop_.Apply(Snapshot({Cached("A"), Cached("B")}));
  for (int i = 0; i < 12; ++i) Second(25);
  loop_.Apply(Snapshot({Cached("A")}));  // B was deleted meanwhile
  EXPECT_EQ(loop_.size(), 1u);
  v1::ScalingDecision d = Second(25);
  EXPECT_EQ(d.desired_replicas(), 4);
  EXPECT_FALSE(d.warming_up()) << "a known chainlet does not warm up again";
}

TEST_F(DecisionLoopTest, WatchersHearOfChangesOrOfEveryDecision) {
  loop_.Apply(Snapshot({Cached("A"), Cached("B")}));
  int changed = 0;
  int every = 0;
  loop_.AddWatcher([&](const v1::ScalingDecision&, bool) { ++changed; });
  const int all = loop_.AddWatcher([&](const v1::ScalingDecision&, bool) { ++every; }, true);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    loop_.Tick();
  }
  EXPECT_EQ(every, 10);  // two chainlets, five ticks
  // Watchers are first sent the starting point (0 replicas); ticks that keep it are not
  // changes, so nothing is told twice.
  EXPECT_EQ(changed, 0);
  loop_.RemoveWatcher(all);
  clock_.Advance(absl::Seconds(1));
  loop_.Tick();
  EXPECT_EQ(every, 10);
}

TEST_F(DecisionLoopTest, ListIsOrderedAndFiltered) {
  loop_.Apply(Snapshot({Cached("B"), Cached("A")}));
  std::vector<std::string> names;
  for (const auto& d : loop_.List("c", "production")) names.push_back(d.chainlet_name());
  EXPECT_THAT(names, ElementsAre("A", "B"));
  EXPECT_EQ(loop_.List("", "").size(), 2u);
  EXPECT_TRUE(loop_.List("other", "").empty());
}

}  // namespace
}  // namespace chainscale
