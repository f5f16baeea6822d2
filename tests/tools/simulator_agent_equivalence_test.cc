// One implementation (DESIGN §7): the same per-second reports fed to the agent's
// DecisionLoop (through its public API, on a fake clock) and to the simulator give the
// same decision at every tick and on every cold start — replicas, status, reason, capped
// flag and pending scale-down — on the bundled sample trace and on every scenario, under
// several settings (scale_down_delay 0 among them).
#include <memory>
#include <string>
#include <vector>

#include "agent/decision_loop.h"
#include "common/settings_proto.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tools/loadgen/load_pattern.h"
#include "tools/simulator/scenarios.h"
#include "tools/simulator/simulation.h"

namespace chainscale {
namespace {

using google::protobuf::util::TimeUtil;

// Longer scenarios are cut to this many seconds: the diurnal day's first hours rise and
// fall enough to scale both ways.
constexpr int64_t kMaxSeconds = 4 * 3600;

struct Load {
  std::string name;
  std::vector<InFlight> per_second;
  AutoscalingSettings own_settings;  // the scenario's own
};

struct Case {
  std::string load;
  std::string settings_name;
};

void PrintTo(const Case& c, std::ostream* out) { *out << c.load << " / " << c.settings_name; }

std::vector<InFlight> Sample(const LoadPattern& pattern, int64_t seconds) {
  std::vector<InFlight> out;
  for (int64_t i = 0; i < seconds; ++i) out.push_back(pattern.At(absl::Seconds(i)));
  return out;
}

const std::vector<Load>& Loads() {
  static const auto* loads = [] {
    auto* out = new std::vector<Load>();
    absl::StatusOr<std::unique_ptr<LoadPattern>> trace = ParseLoadPattern(
        std::string("trace:") + CHAINSCALE_SOURCE_DIR + "/tools/testdata/sample_trace.csv",
        ServiceTimeModel{});
    if (!trace.ok()) {
      ADD_FAILURE() << trace.status();
    } else {
      // The trace, then half an hour idle to see the scale-down.
      out->push_back({"sample_trace",
                      Sample(**trace, absl::ToInt64Seconds((*trace)->length()) + 1800),
                      AutoscalingSettings{}});
    }
    for (const v1::SimulationScenario& s : SimulationScenarios()) {
      absl::StatusOr<std::unique_ptr<LoadPattern>> shape = ParseLoadShape(s.request().pattern());
      if (!shape.ok()) {
        ADD_FAILURE() << s.name() << ": " << shape.status();
        continue;
      }
      absl::StatusOr<AutoscalingSettings> settings =
          MergeAndValidate(DefaultSettings("production"),
                           UpdateFromProto(s.request().autoscaling_settings()), "production", {});
      if (!settings.ok()) {
        ADD_FAILURE() << s.name() << ": " << settings.status();
        continue;
      }
      out->push_back({s.name(),
                      Sample(**shape, std::min<int64_t>(s.request().duration_seconds(),
                                                        kMaxSeconds)),
                      *settings});
    }
    return out;
  }();
  return *loads;
}

// The settings each load runs under: its own, and five more.
AutoscalingSettings SettingsFor(const Load& load, const std::string& name) {
  AutoscalingSettings s;  // the documented defaults
  if (name == "own") return load.own_settings;
  if (name == "defaults") return s;
  if (name == "delay_300") {
    s.max_replica = 20;
    s.concurrency_target = 4;
    s.scale_down_delay = 300;
  } else if (name == "delay_0_window_10") {
    s.max_replica = 20;
    s.concurrency_target = 2;
    s.autoscaling_window = 10;
    s.scale_down_delay = 0;
  } else if (name == "min_2_delay_0_rate_10") {
    s.min_replica = 2;
    s.max_replica = 8;
    s.target_utilization_percentage = 50;
    s.autoscaling_window = 30;
    s.scale_down_delay = 0;
    s.max_scale_down_rate = 10;
  } else if (name == "tokens") {
    s.max_replica = 20;
    s.concurrency_target = 4;
    s.scale_down_delay = 60;
    s.target_in_flight_tokens = 1500;
  } else {
    ADD_FAILURE() << "no settings " << name;
  }
  return s;
}

const char* const kSettingsNames[] = {"own",           "defaults",
                                      "delay_300",     "delay_0_window_10",
                                      "min_2_delay_0_rate_10", "tokens"};

v1::ChainletKey Key() {
  v1::ChainletKey key;
  key.set_chain_id("c");
  key.set_env_name("production");
  key.set_chainlet_name("A");
  return key;
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(t));
}

// What the two must agree on, with the pending scale-down's start as an offset from the
// second the decision belongs to (the agent decides at its own instants in the second).
struct Comparable {
  int32_t desired = 0;
  int32_t previous = 0;
  std::string status;
  std::string reason;
  bool capped = false;
  bool warming_up = false;
  std::optional<int64_t> pending_since_second;

  bool operator==(const Comparable& o) const {
    return desired == o.desired && previous == o.previous && status == o.status &&
           reason == o.reason && capped == o.capped && warming_up == o.warming_up &&
           pending_since_second == o.pending_since_second;
  }
};

std::ostream& operator<<(std::ostream& out, const Comparable& c) {
  return out << c.previous << " -> " << c.desired << " " << c.status
             << (c.capped ? " capped" : "") << (c.warming_up ? " warming-up" : "")
             << " pending since "
             << (c.pending_since_second ? std::to_string(*c.pending_since_second) : "-")
             << ": " << c.reason;
}

Comparable FromSimulator(const ScaleDecision& d, const AutoscalingSettings& settings) {
  Comparable c{d.desired_replicas, d.previous_replicas,
               DecisionStatusName(d.status), DescribeDecision(d, settings),
               d.capped, d.warming_up, std::nullopt};
  if (d.scale_down_pending_since) {
    c.pending_since_second = absl::ToUnixSeconds(*d.scale_down_pending_since);
  }
  return c;
}

Comparable FromAgent(const v1::ScalingDecision& d, absl::Time t0) {
  Comparable c{d.desired_replicas(), d.previous_replicas(),
               v1::ScalingDecision::Status_Name(d.status()), d.reason(),
               d.capped(), d.warming_up(), std::nullopt};
  if (d.has_scale_down_pending_since()) {
    c.pending_since_second =
        absl::ToInt64Seconds(absl::Floor(ToTime(d.scale_down_pending_since()) - t0,
                                         absl::Seconds(1)));
  }
  return c;
}

class EquivalenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(EquivalenceTest, EveryTickDecidesAlike) {
  const Case& param = GetParam();
  const Load* load = nullptr;
  for (const Load& l : Loads()) {
    if (l.name == param.load) load = &l;
  }
  ASSERT_NE(load, nullptr);
  const AutoscalingSettings settings = SettingsFor(*load, param.settings_name);

  SimulationOptions options;
  options.settings = settings;
  options.record_ticks = true;
  options.max_points = 0;
  absl::StatusOr<SimulationRun> run = Simulate(options, load->per_second);
  ASSERT_TRUE(run.ok()) << run.status();

  testing::FakeClock clock;
  const absl::Time t0 = clock.Now();
  DecisionLoopOptions loop_options;
  loop_options.agent_id = "agent-1";
  loop_options.report_staleness_seconds = options.report_staleness_seconds;
  DecisionLoop loop(loop_options, clock);
  SyncedChainlet chainlet;
  chainlet.key = Key();
  chainlet.settings = settings;
  chainlet.revision = 1;
  AppliedUpdate snapshot;
  snapshot.snapshot = true;
  snapshot.revision = 1;
  snapshot.upserts.push_back(chainlet);
  loop.Apply(snapshot);

  size_t next = 0;  // the simulator's next decision
  int64_t compared = 0, cold_starts = 0, scale_events = 0;
  for (size_t i = 0; i < load->per_second.size(); ++i) {
    const int64_t second = static_cast<int64_t>(i);
    const absl::Time second_start = t0 + absl::Seconds(second);
    // The agent gets the second's report a quarter into it and ticks at three quarters.
    clock.Advance(second_start + absl::Milliseconds(250) - clock.Now());
    google::protobuf::RepeatedPtrField<v1::LoadReport> reports;
    v1::LoadReport* r = reports.Add();
    r->set_source_id("load");
    r->set_chain_id("c");
    r->set_env_name("production");
    r->set_chainlet_name("A");
    r->set_in_flight_requests(static_cast<double>(load->per_second[i].requests));
    if (settings.target_in_flight_tokens) r->set_in_flight_tokens(load->per_second[i].tokens);
    absl::StatusOr<std::vector<v1::ScalingDecision>> answer = loop.Report(reports);
    ASSERT_TRUE(answer.ok()) << answer.status();
    ASSERT_EQ(answer->size(), 1u);
    // Decided on the cold-start path just now, or not at all.
    const bool agent_cold_start = ToTime((*answer)[0].decided_at()) == clock.Now();
    ASSERT_LT(next, run->ticks.size());
    const bool sim_cold_start = run->ticks[next].cold_start;
    ASSERT_EQ(agent_cold_start, sim_cold_start) << "second " << second;
    if (sim_cold_start) {
      ASSERT_EQ(run->ticks[next].second, second);
      ASSERT_EQ(FromAgent((*answer)[0], t0), FromSimulator(run->ticks[next].decision, settings))
          << "cold start in second " << second;
      ++cold_starts;
      ++next;
    }

    clock.Advance(absl::Milliseconds(500));
    loop.Tick();
    absl::StatusOr<v1::ScalingDecision> tick = loop.Get(Key());
    ASSERT_TRUE(tick.ok()) << tick.status();
    ASSERT_LT(next, run->ticks.size());
    ASSERT_EQ(run->ticks[next].second, second);
    ASSERT_FALSE(run->ticks[next].cold_start);
    ASSERT_EQ(FromAgent(*tick, t0), FromSimulator(run->ticks[next].decision, settings))
        << "tick of second " << second;
    scale_events += tick->status() == v1::ScalingDecision::ACCEPTED;
    ++compared;
    ++next;
  }
  EXPECT_EQ(next, run->ticks.size());
  // Every cold start changes the count; the meters count what the agent did.
  EXPECT_EQ(cold_starts + scale_events, run->result.meters().scale_events());
  std::cout << param.load << " / " << param.settings_name << ": " << compared
            << " ticks and " << cold_starts << " cold starts alike; "
            << run->result.meters().scale_events() << " scale events, peak "
            << run->result.meters().peak_replicas() << " replicas\n";
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (const Load& load : Loads()) {
    for (const char* settings : kSettingsNames) cases.push_back({load.name, settings});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(LoadsAndSettings, EquivalenceTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.load + "_" + info.param.settings_name;
                         });

}  // namespace
}  // namespace chainscale
