// The timing of the decision loop as DESIGN §6-§7 state it: only completed seconds are
// averaged, a zero delay steps in the tick that first sees the lower target, the delay is
// compared on the decision schedule, warm-up counts seconds with live sources, and
// silence is not zero. Driven through the agent's DecisionLoop with a fake clock.
#include <optional>
#include <string>
#include <vector>

#include "agent/decision_loop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::ChainletKey Key() {
  v1::ChainletKey key;
  key.set_chain_id("c");
  key.set_env_name("production");
  key.set_chainlet_name("A");
  return key;
}

struct Start {
  int32_t window = 10;
  int32_t delay = 2;
  std::optional<int32_t> stored_replicas;
  int32_t min_replica = 0;
  int32_t max_replica = 20;
};

// One chainlet "c/production/A" with concurrency 10 at 70 % (7 requests per replica) in
// a loop whose reports go stale after 3 s.
class Loop {
 public:
  explicit Loop(const Start& start) : loop_(Options(), clock_) {
    SyncedChainlet c;
    c.key = Key();
    c.settings.min_replica = start.min_replica;
    c.settings.max_replica = start.max_replica;
    c.settings.concurrency_target = 10;
    c.settings.target_utilization_percentage = 70;
    c.settings.autoscaling_window = start.window;
    c.settings.scale_down_delay = start.delay;
    c.revision = 1;
    if (start.stored_replicas) c.decision = StoredDecision{*start.stored_replicas, std::nullopt};
    AppliedUpdate u;
    u.snapshot = true;
    u.revision = 1;
    u.upserts.push_back(c);
    loop_.Apply(u);
  }

  static DecisionLoopOptions Options() {
    DecisionLoopOptions options;
    options.agent_id = "agent-1";
    options.report_staleness_seconds = 3;
    return options;
  }

  void Report(double in_flight) {
    google::protobuf::RepeatedPtrField<v1::LoadReport> reports;
    v1::LoadReport* r = reports.Add();
    r->set_source_id("replica-1");
    r->set_chain_id("c");
    r->set_env_name("production");
    r->set_chainlet_name("A");
    r->set_in_flight_requests(in_flight);
    ASSERT_TRUE(loop_.Report(reports).ok());
  }

  v1::ScalingDecision Tick() {
    loop_.Tick();
    return *loop_.Get(Key());
  }

  void Advance(absl::Duration d) { clock_.Advance(d); }
  absl::Time now() const { return clock_.Now(); }

 private:
  testing::FakeClock clock_;
  DecisionLoop loop_;
};

// The same reports, one loop ticking early in each second and one late: the decision must
// not depend on whether the tick lands before or after the second's report.
TEST(DecisionTimingTest, ATickBeforeOrAfterTheSecondsReportDecidesTheSame) {
  // From one replica up (min_replica 1), so the cold-start path stays out of it.
  Loop early(Start{10, 2, std::nullopt, 1});
  Loop late(Start{10, 2, std::nullopt, 1});
  std::vector<int32_t> early_replicas, late_replicas;
  for (int second = 0; second < 30; ++second) {
    const double load = 7.0 * (1 + second / 3);  // rising in steps of one replica's worth
    // early: tick at .2, report at .5; late: report at .5, tick at .8.
    early.Advance(absl::Milliseconds(200));
    early_replicas.push_back(early.Tick().desired_replicas());
    early.Advance(absl::Milliseconds(300));
    early.Report(load);
    early.Advance(absl::Milliseconds(500));

    late.Advance(absl::Milliseconds(500));
    late.Report(load);
    late.Advance(absl::Milliseconds(300));
    late_replicas.push_back(late.Tick().desired_replicas());
    late.Advance(absl::Milliseconds(200));
  }
  EXPECT_EQ(early_replicas, late_replicas);
  // Rising load is not overshot: the decision at second s sees only seconds before s.
  EXPECT_LE(late_replicas.back(), 10);
}

TEST(DecisionTimingTest, ZeroDelayStepsInTheTickThatFirstSeesTheLowerTarget) {
  Loop loop(Start{10, 0, 8});
  // Past the warm-up: ten seconds with a live source at 8 replicas' worth.
  for (int i = 0; i < 12; ++i) {
    loop.Advance(absl::Milliseconds(500));
    loop.Report(56);
    loop.Advance(absl::Milliseconds(500));
    ASSERT_EQ(loop.Tick().desired_replicas(), 8);
  }
  // The load stops; as the window drains, every tick that first sees a lower target
  // steps in that tick: the descent has no QUEUED decision.
  std::vector<std::string> statuses;
  std::vector<int32_t> replicas;
  for (int i = 0; i < 30; ++i) {
    loop.Advance(absl::Milliseconds(500));
    loop.Report(0);
    loop.Advance(absl::Milliseconds(500));
    const v1::ScalingDecision d = loop.Tick();
    if (d.status() == v1::ScalingDecision::UNCHANGED) continue;
    statuses.push_back(v1::ScalingDecision::Status_Name(d.status()));
    replicas.push_back(d.desired_replicas());
  }
  EXPECT_THAT(statuses, ::testing::Each("ACCEPTED"));
  ASSERT_FALSE(replicas.empty());
  EXPECT_EQ(replicas.back(), 0);
}

// Ticks jitter around the one-second grid (a little early or late). A step due at tick k
// happens at tick k, so a 10 s delay is 10 ticks, and a halving chain does not drift.
TEST(DecisionTimingTest, TheDelayIsComparedOnTheDecisionSchedule) {
  Loop loop(Start{10, 10, 16});
  const absl::Duration jitter[] = {absl::Microseconds(400), -absl::Microseconds(300),
                                   absl::Microseconds(100), -absl::Microseconds(200)};
  absl::Time grid = loop.now();
  int tick = 0;
  std::optional<int> timer_started_at;
  std::vector<int> steps_at;
  std::vector<int32_t> replicas;
  for (; tick < 80; ++tick) {
    // Report zero load at the half second, tick at the grid point plus jitter.
    grid += absl::Seconds(1);
    const absl::Time report_at = grid - absl::Milliseconds(500);
    if (loop.now() < report_at) loop.Advance(report_at - loop.now());
    loop.Report(0);
    const absl::Time tick_at = grid + jitter[tick % 4];
    loop.Advance(tick_at - loop.now());
    const v1::ScalingDecision d = loop.Tick();
    if (!timer_started_at && d.has_scale_down_pending_since() && !d.warming_up()) {
      timer_started_at = tick;
    }
    if (d.status() == v1::ScalingDecision::ACCEPTED) {
      steps_at.push_back(tick);
      replicas.push_back(d.desired_replicas());
    }
  }
  ASSERT_GE(steps_at.size(), 3u);
  EXPECT_THAT(replicas, ElementsAre(8, 4, 2, 1, 0));
  for (size_t i = 1; i < steps_at.size(); ++i) {
    EXPECT_EQ(steps_at[i] - steps_at[i - 1], 10) << "step " << i << " drifted";
  }
}

// A chainlet taken over at 4 replicas while no source reports: wall time passing is not a
// warm-up; it holds 4 (silence is not zero), then holds through one window of seconds
// with a live source before the first step.
TEST(DecisionTimingTest, WarmUpCountsSecondsWithLiveSourcesNotWallTime) {
  Loop loop(Start{10, 2, 4});
  for (int i = 0; i < 30; ++i) {
    loop.Advance(absl::Seconds(1));
    const v1::ScalingDecision d = loop.Tick();
    ASSERT_EQ(d.desired_replicas(), 4) << "silent second " << i;
  }
  int first_step = -1;
  for (int i = 0; i < 30 && first_step < 0; ++i) {
    loop.Advance(absl::Milliseconds(500));
    loop.Report(0);
    loop.Advance(absl::Milliseconds(500));
    const v1::ScalingDecision d = loop.Tick();
    if (d.desired_replicas() < 4) first_step = i;
  }
  // The tick of i = 9 is the first after ten live seconds (reports in i = 0 .. 9); the
  // 2 s delay started with the first of them, so the step comes right then.
  EXPECT_EQ(first_step, 9);
}

TEST(DecisionTimingTest, SilenceIsNotZero) {
  Loop loop(Start{10, 2, std::nullopt});
  for (int i = 0; i < 20; ++i) {
    loop.Advance(absl::Milliseconds(500));
    loop.Report(28);  // 4 replicas' worth
    loop.Advance(absl::Milliseconds(500));
    loop.Tick();
  }
  ASSERT_EQ(loop.Tick().desired_replicas(), 4);
  // The reporter breaks. Its last value counts for 3 s; then nothing is live, and the
  // count holds however long the silence lasts.
  v1::ScalingDecision d;
  for (int i = 0; i < 60; ++i) {
    loop.Advance(absl::Seconds(1));
    d = loop.Tick();
    ASSERT_EQ(d.desired_replicas(), 4) << "silent second " << i;
  }
  EXPECT_THAT(d.reason(), HasSubstr("no source"));
  // Reports of zero (an idle fleet says so) do scale it down.
  int32_t replicas = 4;
  for (int i = 0; i < 40; ++i) {
    loop.Advance(absl::Milliseconds(500));
    loop.Report(0);
    loop.Advance(absl::Milliseconds(500));
    replicas = loop.Tick().desired_replicas();
  }
  EXPECT_EQ(replicas, 0);
}

TEST(DecisionTimingTest, AChainletAtZeroWithoutReportsStaysAtZero) {
  Loop loop(Start{10, 0, std::nullopt});
  for (int i = 0; i < 30; ++i) {
    loop.Advance(absl::Seconds(1));
    ASSERT_EQ(loop.Tick().desired_replicas(), 0);
  }
}

// The cold-start path decides at once on the second in progress; the ticks after it do
// not undo that before a whole second of reports has completed.
TEST(DecisionTimingTest, ColdStartIsNotUndoneBeforeItsSecondCompletes) {
  Loop loop(Start{10, 0, std::nullopt});
  loop.Advance(absl::Milliseconds(100));
  loop.Report(20);
  loop.Advance(absl::Milliseconds(100));
  EXPECT_EQ(loop.Tick().desired_replicas(), 3);  // decided by the report itself
  loop.Advance(absl::Milliseconds(300));
  EXPECT_EQ(loop.Tick().desired_replicas(), 3);
  loop.Advance(absl::Milliseconds(600));  // second 1: second 0 completed at 20
  loop.Report(20);
  EXPECT_EQ(loop.Tick().desired_replicas(), 3);
}

}  // namespace
}  // namespace chainscale
