// The agent's decision loop with a fake clock: reports, validation, the cold-start path,
// ticks, settings changes, warm-up from a stored decision, watchers and lookups.
#include "agent/decision_loop.h"

#include <limits>

#include "absl/strings/str_cat.h"

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

SyncedChainlet Cached(const std::string& chainlet, int32_t max_replica = 10,
                      std::optional<int32_t> stored_replicas = std::nullopt) {
  SyncedChainlet c;
  c.key = Key(chainlet);
  c.settings.max_replica = max_replica;
  c.settings.concurrency_target = 10;
  c.settings.target_utilization_percentage = 70;
  c.settings.autoscaling_window = 10;
  c.settings.scale_down_delay = 2;
  c.revision = 7;
  if (stored_replicas) c.decision = StoredDecision{*stored_replicas, std::nullopt};
  return c;
}

AppliedUpdate Snapshot(std::vector<SyncedChainlet> chainlets) {
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
  loop_.AddWatcher([&](const DecisionBatchPtr& batch) {
    for (const v1::ScalingDecision& d : batch->decisions) told.push_back(d);
  });
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
  SyncedChainlet lowered = Cached("A", /*max_replica=*/2);
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

TEST_F(DecisionLoopTest, ANewClusterIdDiscardsWindowsAndDecisions) {
  loop_.Apply(Snapshot({Cached("A")}));
  for (int i = 0; i < 3; ++i) Second(25);
  ASSERT_EQ(loop_.Get(Key("A"))->desired_replicas(), 4);
  // The same chainlet from another cluster's snapshot: nothing of the old state remains
  // (DESIGN §5), neither the window of 25 in flight nor the decision of 4.
  AppliedUpdate other = Snapshot({Cached("A")});
  other.new_cluster = true;
  loop_.Apply(other);
  const v1::ScalingDecision after = loop_.Get(Key("A")).value();
  EXPECT_EQ(after.desired_replicas(), 0);
  EXPECT_EQ(after.avg_in_flight_requests(), 0);
  const v1::ScalingDecision ticked = Second(-1);
  EXPECT_EQ(ticked.desired_replicas(), 0);
  EXPECT_EQ(ticked.avg_in_flight_requests(), 0);
}

TEST_F(DecisionLoopTest, WatchersHearOnceOfAChainletThatAppearsAfterThem) {
  loop_.Apply(Snapshot({Cached("A")}));
  std::vector<v1::ScalingDecision> told;
  loop_.AddWatcher([&](const DecisionBatchPtr& batch) {
    for (const v1::ScalingDecision& d : batch->decisions) told.push_back(d);
  });
  AppliedUpdate created;
  created.revision = 2;
  created.upserts.push_back(Cached("B"));
  loop_.Apply(created);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].chainlet_name(), "B");
  EXPECT_EQ(told[0].desired_replicas(), 0);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    loop_.Tick();
  }
  EXPECT_EQ(told.size(), 1u) << "a held starting point is not told again";
}

TEST_F(DecisionLoopTest, WatchersHearOfChangesOrOfEveryDecision) {
  loop_.Apply(Snapshot({Cached("A"), Cached("B")}));
  int changed = 0;
  int every = 0;
  loop_.AddWatcher([&](const DecisionBatchPtr& batch) {
    EXPECT_TRUE(batch->changed);
    changed += static_cast<int>(batch->decisions.size());
  });
  const int all = loop_.AddWatcher(
      [&](const DecisionBatchPtr& batch) { every += static_cast<int>(batch->decisions.size()); },
      true);
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

TEST_F(DecisionLoopTest, ANewSourceNamedTwiceInOneBatchCountsOnceTowardTheCap) {
  DecisionLoopOptions options = Options();
  options.max_sources_per_chainlet = 2;
  DecisionLoop loop(options, clock_);
  loop.Apply(Snapshot({Cached("A")}));
  ASSERT_TRUE(loop.Report(Reports({{"A", 1}}, "r1")).ok());
  auto twice = Reports({{"A", 1}, {"A", 2}}, "new");
  EXPECT_TRUE(loop.Report(twice).ok()) << "one known source and one new one fit a cap of 2";
  absl::Status third = loop.Report(Reports({{"A", 1}}, "third")).status();
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.message(), HasSubstr("more than 2 sources report for c/production/A"));
}

TEST_F(DecisionLoopTest, ControlCharactersInASourceIdAreRefused) {
  loop_.Apply(Snapshot({Cached("A")}));
  auto reports = Reports({{"A", 1}}, "r1\x1b[31m");
  absl::Status status = loop_.Report(reports).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(FieldViolationsOf(status).size(), 1u);
  EXPECT_EQ(FieldViolationsOf(status)[0].field, "reports[0].source_id");
  EXPECT_THAT(FieldViolationsOf(status)[0].description, HasSubstr("control characters"));
  absl::StatusOr<std::vector<absl::Status>> each = loop_.ReportEach(Reports({{"A", 1}}, "\n"));
  ASSERT_TRUE(each.ok());
  EXPECT_EQ((*each)[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FieldViolationsOf((*each)[0])[0].field, "reports[0].source_id");
}

TEST_F(DecisionLoopTest, MalformedNamesNeverAliasAnotherChainlet) {
  loop_.Apply(Snapshot({Cached("A")}));
  // "c\0production" / "" / "A" would join to the key of c/production/A.
  v1::ChainletKey alias;
  alias.set_chain_id(std::string("c\0production", 12));
  alias.set_chainlet_name("A");
  absl::Status status = loop_.Get(alias).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(status)) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("chain_id", "env_name"));
  v1::ChainletKey nul_in_chainlet = Key("A");
  nul_in_chainlet.set_chainlet_name(std::string("A\0", 2));
  EXPECT_EQ(loop_.Get(nul_in_chainlet).status().code(), absl::StatusCode::kInvalidArgument);

  auto report = Reports({{std::string("A\0", 2), 1}});
  status = loop_.Report(report).status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FieldViolationsOf(status)[0].field, "reports[0].chainlet_name");
  absl::StatusOr<std::vector<absl::Status>> each = loop_.ReportEach(report);
  ASSERT_TRUE(each.ok());
  EXPECT_EQ((*each)[0].code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(ValidateDecisionFilter(std::string("c\0production", 12), "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateDecisionFilter("c", std::string("production\0", 11)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateDecisionFilter("c", "production").ok());
  v1::ListScalingDecisionsRequest list;
  list.set_chain_id(std::string("c\0production", 12));
  EXPECT_EQ(loop_.ListPage(list).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DecisionLoopTest, AStreamedBatchOverTheCapIsRefusedWhole) {
  DecisionLoopOptions options = Options();
  options.max_reports_per_batch = 3;
  DecisionLoop loop(options, clock_);
  loop.Apply(Snapshot({Cached("A")}));
  absl::StatusOr<std::vector<absl::Status>> each =
      loop.ReportEach(Reports({{"A", 30}, {"A", 30}, {"A", 30}, {"A", 30}}));
  ASSERT_EQ(each.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(each.status().message(), HasSubstr("at most 3 reports per message, got 4"));
  clock_.Advance(absl::Seconds(1));
  loop.Tick();
  EXPECT_EQ(loop.Get(Key("A"))->desired_replicas(), 0) << "nothing of the batch counted";
}

TEST_F(DecisionLoopTest, ListingsFollowChangesInKeyOrder) {
  loop_.Apply(Snapshot({Cached("C"), Cached("A")}));
  AppliedUpdate change;
  change.revision = 8;
  change.upserts = {Cached("B"), Cached("D")};
  change.removals = {Key("C")};
  loop_.Apply(change);
  std::vector<std::string> names;
  for (const auto& d : loop_.List("c", "")) names.push_back(d.chainlet_name());
  EXPECT_THAT(names, ElementsAre("A", "B", "D"));
  EXPECT_EQ(loop_.size(), 3u);
  v1::ListScalingDecisionsRequest request;
  request.set_page_size(2);
  absl::StatusOr<v1::ListScalingDecisionsResponse> page = loop_.ListPage(request);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->decisions_size(), 2);
  EXPECT_EQ(page->decisions(1).chainlet_name(), "B");
  request.set_page_token(page->next_page_token());
  page = loop_.ListPage(request);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->decisions_size(), 1);
  EXPECT_EQ(page->decisions(0).chainlet_name(), "D");
  EXPECT_TRUE(page->next_page_token().empty());
  EXPECT_EQ(loop_.Get(Key("C")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DecisionLoopTest, ManyChainletsAcrossShardsAreEachDecided) {
  std::vector<SyncedChainlet> chainlets;
  for (int i = 0; i < 1000; ++i) chainlets.push_back(Cached(absl::StrCat("n", i)));
  loop_.Apply(Snapshot(chainlets));
  google::protobuf::RepeatedPtrField<v1::LoadReport> reports;
  for (int i = 0; i < 1000; ++i) *reports.Add() = Reports({{absl::StrCat("n", i), i % 50}})[0];
  absl::StatusOr<std::vector<absl::Status>> each = loop_.ReportEach(reports);
  ASSERT_TRUE(each.ok());
  for (const absl::Status& s : *each) ASSERT_TRUE(s.ok()) << s;
  clock_.Advance(absl::Seconds(1));
  loop_.Tick();
  for (int i = 0; i < 1000; ++i) {
    v1::ChainletKey key = Key(absl::StrCat("n", i));
    // Load i % 50 at 7 requests per replica.
    EXPECT_EQ(loop_.Get(key)->desired_replicas(), std::min(10, (i % 50 + 6) / 7)) << i;
  }
  EXPECT_EQ(loop_.List("c", "production").size(), 1000u);
}

}  // namespace
}  // namespace chainscale
