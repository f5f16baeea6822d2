// Pins the decision algorithm of DESIGN §7 with its worked examples.
#include "common/replica_scaler.h"

#include "common/chainlet_decider.h"

#include <cmath>
#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kStaleness = 10;

// One chainlet driven second by second through the decider both the agent and the
// simulator run: a single replica reports the load in each second, and each tick decides
// on the seconds completed before it.
class Chainlet {
 public:
  Chainlet(AutoscalingSettings settings, int32_t replicas, bool warm = true)
      : decider_(settings, Options(), DeciderStart{replicas, std::nullopt, !warm},
                 clock_.Now()) {}

  static DeciderOptions Options() {
    DeciderOptions options;
    options.report_staleness_seconds = kStaleness;
    options.delay_tolerance = absl::ZeroDuration();
    return options;
  }

  // Sets the in-flight load reported from now on.
  void SetLoad(double in_flight, std::optional<int64_t> tokens = std::nullopt) {
    load_milli_ = std::llround(in_flight * 1000);
    tokens_ = tokens;
  }

  // Reports the current load at the current instant and decides on the spot, counting
  // the second in progress (the cold-start path).
  ScaleDecision DecideNow() {
    EXPECT_TRUE(decider_.Report("replica-0", LoadSample{load_milli_, tokens_}, clock_.Now()).ok());
    return decider_.DecideColdStart(clock_.Now());
  }

  // Reports the load for the current second, advances one second and decides at the tick.
  ScaleDecision Tick() {
    EXPECT_TRUE(decider_.Report("replica-0", LoadSample{load_milli_, tokens_}, clock_.Now()).ok());
    clock_.Advance(absl::Seconds(1));
    return decider_.Decide(clock_.Now());
  }

  // Ticks `n` times and returns every decision.
  std::vector<ScaleDecision> Ticks(int n) {
    std::vector<ScaleDecision> out;
    for (int i = 0; i < n; ++i) out.push_back(Tick());
    return out;
  }

  void SetSettings(const AutoscalingSettings& s) { decider_.set_settings(s); }
  const AutoscalingSettings& settings() const { return decider_.settings(); }
  absl::Time now() const { return clock_.Now(); }
  void Advance(absl::Duration d) { clock_.Advance(d); }

 private:
  testing::FakeClock clock_;
  ChainletDecider decider_;
  int64_t load_milli_ = 0;
  std::optional<int64_t> tokens_;
};

AutoscalingSettings Settings(int32_t min, int32_t max) {
  AutoscalingSettings s;
  s.min_replica = min;
  s.max_replica = max;
  return s;
}

template <typename Change>
void ChangeSetting(Chainlet& c, Change change) {
  AutoscalingSettings s = c.settings();
  change(s);
  c.SetSettings(s);
}

WindowLoad Load(double avg_requests, int64_t seconds = 60) {
  WindowLoad load;
  load.request_millis_sum = std::llround(avg_requests * 1000) * seconds;
  load.seconds = seconds;
  return load;
}

TEST(ReplicasForLoadTest, TwentyFiveAtConcurrencyTenAndSeventyPercentNeedsFour) {
  AutoscalingSettings s;
  s.concurrency_target = 10;
  s.target_utilization_percentage = 70;
  EXPECT_EQ(ReplicasForLoad(s, Load(25)), 4);
}

TEST(ReplicasForLoadTest, CeilIsExactForExactMultiples) {
  AutoscalingSettings s;
  s.concurrency_target = 10;
  s.target_utilization_percentage = 70;
  EXPECT_EQ(ReplicasForLoad(s, Load(7)), 1);
  EXPECT_EQ(ReplicasForLoad(s, Load(14)), 2);
  EXPECT_EQ(ReplicasForLoad(s, Load(14.001)), 3);
  // Capacity 0.7 is not exact in binary floating point; 7 / 0.7 must still be 10.
  AutoscalingSettings defaults;
  EXPECT_EQ(ReplicasForLoad(defaults, Load(7)), 10);
  EXPECT_EQ(ReplicasForLoad(defaults, Load(0.7)), 1);
}

TEST(ReplicasForLoadTest, ZeroLoadOrNoObservationNeedsNone) {
  AutoscalingSettings s;
  EXPECT_EQ(ReplicasForLoad(s, Load(0)), 0);
  EXPECT_EQ(ReplicasForLoad(s, WindowLoad{}), 0);
}

TEST(ReplicasForLoadTest, TokenTargetTakesTheLargerOfTheTwo) {
  AutoscalingSettings s;
  s.concurrency_target = 10;
  s.target_utilization_percentage = 100;
  s.target_in_flight_tokens = 1000;
  WindowLoad load = Load(10);  // 1 replica by requests
  load.has_tokens = true;
  load.token_sum = 3500 * load.seconds;  // 4 replicas by tokens
  EXPECT_EQ(ReplicasForLoad(s, load), 4);
  load.token_sum = 500 * load.seconds;  // 1 by tokens; requests say 1 too
  EXPECT_EQ(ReplicasForLoad(s, load), 1);
  load.request_millis_sum = 25'000 * load.seconds;  // 3 by requests wins
  EXPECT_EQ(ReplicasForLoad(s, load), 3);
  s.target_in_flight_tokens.reset();
  load.token_sum = 1'000'000 * load.seconds;  // ignored without a token target
  EXPECT_EQ(ReplicasForLoad(s, load), 3);
}

TEST(ReplicaScalerTest, ScalesUpAtTheNextDecision) {
  AutoscalingSettings s = Settings(0, 10);
  s.concurrency_target = 10;
  s.target_utilization_percentage = 70;
  Chainlet c(s, 1);
  c.SetLoad(25);
  ScaleDecision d = c.Tick();
  EXPECT_EQ(d.status, DecisionStatus::kAccepted);
  EXPECT_EQ(d.reason, DecisionReason::kScaleUp);
  EXPECT_EQ(d.previous_replicas, 1);
  EXPECT_EQ(d.desired_replicas, 4);
  EXPECT_DOUBLE_EQ(d.avg_in_flight_requests, 25.0);
  EXPECT_FALSE(d.capped);
  EXPECT_FALSE(d.scale_down_pending_since.has_value());
  EXPECT_EQ(DescribeDecision(d, s),
            "scaled up from 1 to 4: average 25.00 in-flight requests at 7.00 per replica "
            "needs 4");
  // Steady load: nothing more to do.
  d = c.Tick();
  EXPECT_EQ(d.status, DecisionStatus::kUnchanged);
  EXPECT_EQ(d.desired_replicas, 4);
}

// Defaults with 8 replicas and zero load, min 1: 8 for 900 s (QUEUED), then 4, then 2
// after another 900 s, then 1.
TEST(ReplicaScalerTest, EightDrainsToFourToTwoToOneWithAFullDelayBeforeEachStep) {
  Chainlet c(Settings(1, 10), 8);
  c.SetLoad(0);
  const absl::Time start = c.now();
  std::vector<std::pair<int64_t, int32_t>> steps;  // (seconds since start, replicas)
  std::optional<absl::Time> first_pending;
  for (const ScaleDecision& d : c.Ticks(4 * 900)) {
    if (!first_pending) first_pending = d.scale_down_pending_since;
    if (d.status == DecisionStatus::kAccepted) {
      EXPECT_EQ(d.reason, DecisionReason::kScaleDownStep);
      steps.emplace_back(absl::ToInt64Seconds(d.decided_at - start), d.desired_replicas);
    } else if (d.desired_replicas > 1) {
      EXPECT_EQ(d.status, DecisionStatus::kQueued);
    } else {
      EXPECT_EQ(d.status, DecisionStatus::kUnchanged);
    }
  }
  ASSERT_TRUE(first_pending.has_value());
  EXPECT_EQ(*first_pending, start + absl::Seconds(1));  // the first tick starts the timer
  const std::vector<std::pair<int64_t, int32_t>> expected = {
      {1 + 900, 4}, {1 + 1800, 2}, {1 + 2700, 1}};
  EXPECT_EQ(steps, expected);
}

TEST(ReplicaScalerTest, QueuedDecisionsCarryThePendingSinceTime) {
  Chainlet c(Settings(1, 10), 8);
  c.SetLoad(0);
  ScaleDecision first = c.Tick();
  ScaleDecision later = c.Ticks(100).back();
  EXPECT_EQ(first.status, DecisionStatus::kQueued);
  EXPECT_EQ(first.reason, DecisionReason::kScaleDownPending);
  ASSERT_TRUE(later.scale_down_pending_since.has_value());
  EXPECT_EQ(*later.scale_down_pending_since, first.decided_at);
  EXPECT_EQ(later.desired_replicas, 8);
}

TEST(ReplicaScalerTest, LoadThatRecoversInsideTheDelayCancelsTheStep) {
  AutoscalingSettings s = Settings(1, 10);
  s.autoscaling_window = 10;
  s.scale_down_delay = 60;
  Chainlet c(s, 8);
  c.SetLoad(8 * 0.7);  // exactly 8 replicas' worth
  for (const ScaleDecision& d : c.Ticks(20)) EXPECT_EQ(d.status, DecisionStatus::kUnchanged);
  c.SetLoad(0);
  int queued = 0;
  for (const ScaleDecision& d : c.Ticks(30)) {  // well inside the 60 s delay
    EXPECT_NE(d.status, DecisionStatus::kAccepted);
    queued += d.status == DecisionStatus::kQueued;
  }
  EXPECT_GT(queued, 0);
  c.SetLoad(8 * 0.7);
  bool cleared = false;
  for (const ScaleDecision& d : c.Ticks(120)) {
    EXPECT_EQ(d.desired_replicas, 8);
    EXPECT_NE(d.status, DecisionStatus::kAccepted);
    if (d.status == DecisionStatus::kUnchanged) {
      cleared = true;
      EXPECT_FALSE(d.scale_down_pending_since.has_value());
    }
  }
  EXPECT_TRUE(cleared);
  // A later drop starts a fresh timer: the step needs a whole new delay.
  c.SetLoad(0);
  std::optional<absl::Time> pending_since;
  std::optional<ScaleDecision> step;
  for (const ScaleDecision& d : c.Ticks(200)) {
    if (!pending_since && d.scale_down_pending_since) pending_since = d.scale_down_pending_since;
    if (d.status == DecisionStatus::kAccepted) {
      step = d;
      break;
    }
  }
  ASSERT_TRUE(pending_since.has_value());
  ASSERT_TRUE(step.has_value());
  EXPECT_EQ(step->decided_at - *pending_since, absl::Seconds(60));
  EXPECT_EQ(step->desired_replicas, 4);
}

TEST(ReplicaScalerTest, OnePercentRateRemovesOneReplicaPerStep) {
  AutoscalingSettings s = Settings(0, 200);
  s.max_scale_down_rate = 1;
  s.scale_down_delay = 10;
  Chainlet c(s, 150);
  c.SetLoad(0);
  std::vector<int32_t> after_steps;
  for (const ScaleDecision& d : c.Ticks(35)) {
    if (d.status == DecisionStatus::kAccepted) after_steps.push_back(d.desired_replicas);
  }
  // floor(150 × 1%) = 1, floor(149 × 1%) = 1, floor(148 × 1%) = 1: one per delay.
  EXPECT_EQ(after_steps, (std::vector<int32_t>{149, 148, 147}));
}

TEST(ReplicaScalerTest, FiftyPercentRateHalvesAndNeverRemovesLessThanOne) {
  AutoscalingSettings s = Settings(0, 200);
  s.scale_down_delay = 1;
  Chainlet c(s, 101);
  c.SetLoad(0);
  std::vector<int32_t> after_steps;
  for (const ScaleDecision& d : c.Ticks(20)) {
    if (d.status == DecisionStatus::kAccepted) after_steps.push_back(d.desired_replicas);
  }
  // floor(101 / 2) = 50 removed, ... 3 → 2 (floor 1.5 = 1), 1 → 0 (max(1, floor 0.5)).
  EXPECT_EQ(after_steps, (std::vector<int32_t>{51, 26, 13, 7, 4, 2, 1, 0}));
}

TEST(ReplicaScalerTest, RateCapAppliesOnlyWhenTheExcessIsLarger) {
  AutoscalingSettings s = Settings(0, 20);
  s.concurrency_target = 1;
  s.target_utilization_percentage = 100;
  s.scale_down_delay = 5;
  s.autoscaling_window = 10;
  Chainlet c(s, 10);
  c.SetLoad(9);  // target 9: the excess of 1 is below the 50 % cap of 5
  std::vector<int32_t> after_steps;
  for (const ScaleDecision& d : c.Ticks(30)) {
    if (d.status == DecisionStatus::kAccepted) after_steps.push_back(d.desired_replicas);
  }
  EXPECT_EQ(after_steps, (std::vector<int32_t>{9}));
}

// A zero delay steps in the tick that first sees the lower target (DESIGN §7).
TEST(ReplicaScalerTest, ZeroDelayStepsInTheTickThatFirstSeesTheDrop) {
  AutoscalingSettings s = Settings(1, 10);
  s.scale_down_delay = 0;
  Chainlet c(s, 8);
  c.SetLoad(0);
  std::vector<DecisionStatus> statuses;
  std::vector<int32_t> replicas;
  for (const ScaleDecision& d : c.Ticks(5)) {
    statuses.push_back(d.status);
    replicas.push_back(d.desired_replicas);
  }
  EXPECT_EQ(statuses, (std::vector<DecisionStatus>{
                          DecisionStatus::kAccepted, DecisionStatus::kAccepted,
                          DecisionStatus::kAccepted, DecisionStatus::kUnchanged,
                          DecisionStatus::kUnchanged}));
  EXPECT_EQ(replicas, (std::vector<int32_t>{4, 2, 1, 1, 1}));
}

TEST(ReplicaScalerTest, LoweringMaxBelowTheCountMovesItAtOnce) {
  Chainlet c(Settings(0, 10), 8);
  c.SetLoad(8 * 0.7);
  EXPECT_EQ(c.Tick().status, DecisionStatus::kUnchanged);
  ChangeSetting(c, [](AutoscalingSettings& s) { s.max_replica = 3; });
  ScaleDecision d = c.Tick();
  EXPECT_EQ(d.status, DecisionStatus::kAccepted);
  EXPECT_EQ(d.reason, DecisionReason::kLoweredToMaxReplica);
  EXPECT_EQ(d.previous_replicas, 8);
  EXPECT_EQ(d.desired_replicas, 3);
  EXPECT_TRUE(d.capped);
}

TEST(ReplicaScalerTest, LoweringMaxKeepsAPendingScaleDownRunning) {
  AutoscalingSettings s = Settings(0, 10);
  s.scale_down_delay = 100;
  Chainlet c(s, 8);
  c.SetLoad(0);
  const ScaleDecision first = c.Tick();
  ASSERT_EQ(first.status, DecisionStatus::kQueued);
  c.Ticks(50);
  ChangeSetting(c, [](AutoscalingSettings& s) { s.max_replica = 6; });
  ScaleDecision d = c.Tick();
  EXPECT_EQ(d.status, DecisionStatus::kAccepted);
  EXPECT_EQ(d.desired_replicas, 6);
  ASSERT_TRUE(d.scale_down_pending_since.has_value());
  EXPECT_EQ(*d.scale_down_pending_since, first.decided_at);
  // The step comes 100 s after the load first dropped, not 100 s after max moved.
  std::optional<ScaleDecision> step;
  for (const ScaleDecision& next : c.Ticks(100)) {
    if (next.status == DecisionStatus::kAccepted) {
      step = next;
      break;
    }
  }
  ASSERT_TRUE(step.has_value());
  EXPECT_EQ(step->decided_at - first.decided_at, absl::Seconds(100));
  EXPECT_EQ(step->desired_replicas, 3);
}

TEST(ReplicaScalerTest, RaisingMinAboveTheCountMovesItAtOnce) {
  Chainlet c(Settings(0, 10), 1);
  c.SetLoad(0.5);
  EXPECT_EQ(c.Tick().status, DecisionStatus::kUnchanged);
  ChangeSetting(c, [](AutoscalingSettings& s) { s.min_replica = 5; });
  ScaleDecision d = c.Tick();
  EXPECT_EQ(d.status, DecisionStatus::kAccepted);
  EXPECT_EQ(d.reason, DecisionReason::kRaisedToMinReplica);
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.replicas_for_load, 1);
  // The load needs 1, but min holds 5 without a pending scale-down.
  d = c.Tick();
  EXPECT_EQ(d.status, DecisionStatus::kUnchanged);
  EXPECT_FALSE(d.scale_down_pending_since.has_value());
}

TEST(ReplicaScalerTest, DemandAboveMaxReplicaIsCappedAndFlagged) {
  AutoscalingSettings s = Settings(0, 5);
  s.concurrency_target = 10;
  s.target_utilization_percentage = 70;
  Chainlet c(s, 1);
  c.SetLoad(100);
  ScaleDecision d = c.Tick();
  EXPECT_EQ(d.desired_replicas, 5);
  EXPECT_EQ(d.replicas_for_load, 15);
  EXPECT_TRUE(d.capped);
  EXPECT_THAT(DescribeDecision(d, s), HasSubstr("capped at max_replica 5, requests queue"));
  c.SetLoad(30);
  d = c.Tick();  // average (100 + 30) / 2 = 65 still needs 10
  EXPECT_TRUE(d.capped);
  EXPECT_EQ(d.status, DecisionStatus::kUnchanged);
}

TEST(ReplicaScalerTest, TokenTargetDrivesScaleUp) {
  AutoscalingSettings s = Settings(0, 10);
  s.concurrency_target = 32;
  s.target_utilization_percentage = 100;
  s.target_in_flight_tokens = 10'000;
  Chainlet c(s, 1);
  c.SetLoad(4, 45'000);
  ScaleDecision d = c.Tick();
  EXPECT_EQ(d.desired_replicas, 5);
  ASSERT_TRUE(d.avg_in_flight_tokens.has_value());
  EXPECT_DOUBLE_EQ(*d.avg_in_flight_tokens, 45'000);
  EXPECT_THAT(DescribeDecision(d, s), HasSubstr("45000 in-flight tokens at 10000 per replica"));
}

TEST(ReplicaScalerTest, ScalesToZeroAfterTheDelayWhenMinIsZero) {
  AutoscalingSettings s = Settings(0, 5);
  s.scale_down_delay = 30;
  s.autoscaling_window = 10;
  Chainlet c(s, 1);
  c.SetLoad(0);
  std::vector<ScaleDecision> decisions = c.Ticks(40);
  int zero_at = -1;
  for (size_t i = 0; i < decisions.size(); ++i) {
    if (decisions[i].desired_replicas == 0) {
      zero_at = static_cast<int>(i);
      break;
    }
  }
  EXPECT_EQ(zero_at, 30);  // timer set on tick 0, step on tick 30
  EXPECT_EQ(decisions[30].status, DecisionStatus::kAccepted);
  EXPECT_EQ(decisions.back().status, DecisionStatus::kUnchanged);
}

// The agent decides at once when load reaches a chainlet at zero (its cold-start path);
// here: whenever that decision happens, any load at all asks for a replica.
TEST(ReplicaScalerTest, FromZeroAnyLoadScalesUpAtTheNextDecision) {
  AutoscalingSettings s = Settings(0, 5);
  Chainlet c(s, 0);
  c.SetLoad(0);
  EXPECT_EQ(c.Ticks(100).back().desired_replicas, 0);
  // Half a second into the next tick a single request arrives; decided on the spot.
  c.Advance(absl::Milliseconds(500));
  c.SetLoad(1);
  ScaleDecision d = c.DecideNow();
  EXPECT_EQ(d.status, DecisionStatus::kAccepted);
  EXPECT_EQ(d.previous_replicas, 0);
  EXPECT_EQ(d.desired_replicas, 1);
}

TEST(ReplicaScalerTest, WarmUpHoldsScaleDownUntilAWholeWindowIsObserved) {
  AutoscalingSettings s = Settings(0, 10);
  s.scale_down_delay = 0;
  s.autoscaling_window = 60;
  Chainlet c(s, 8, /*warm=*/false);  // takes over a chainlet stored at 8 replicas
  const absl::Time start = c.now();
  c.SetLoad(0);
  std::optional<absl::Time> first_step;
  for (const ScaleDecision& d : c.Ticks(70)) {
    if (d.decided_at - start < absl::Seconds(60)) {
      EXPECT_TRUE(d.warming_up);
      EXPECT_EQ(d.desired_replicas, 8);
      EXPECT_EQ(d.status, DecisionStatus::kQueued);
      if (d.decided_at - start > absl::Seconds(1)) {
        EXPECT_EQ(d.reason, DecisionReason::kWarmUpHold);
      }
    } else if (!first_step && d.status == DecisionStatus::kAccepted) {
      first_step = d.decided_at;
      EXPECT_EQ(d.desired_replicas, 4);
      EXPECT_FALSE(d.warming_up);
    }
  }
  ASSERT_TRUE(first_step.has_value());
  EXPECT_EQ(*first_step - start, absl::Seconds(60));
}

TEST(ReplicaScalerTest, WarmUpStillScalesUp) {
  AutoscalingSettings s = Settings(0, 10);
  Chainlet c(s, 2, /*warm=*/false);
  c.SetLoad(5 * 0.7);
  ScaleDecision d = c.Tick();
  EXPECT_TRUE(d.warming_up);
  EXPECT_EQ(d.status, DecisionStatus::kAccepted);
  EXPECT_EQ(d.desired_replicas, 5);
}

TEST(DecisionStatusTest, NamesMatchTheApi) {
  EXPECT_STREQ(DecisionStatusName(DecisionStatus::kAccepted), "ACCEPTED");
  EXPECT_STREQ(DecisionStatusName(DecisionStatus::kQueued), "QUEUED");
  EXPECT_STREQ(DecisionStatusName(DecisionStatus::kUnchanged), "UNCHANGED");
}

}  // namespace
}  // namespace chainscale
