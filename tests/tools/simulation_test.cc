// The simulation core's meters, series, events and sweep, the request checks of
// POST /v1/simulations, and the scenarios doing what their descriptions say.
#include "tools/simulator/simulation.h"

#include <fstream>
#include <sstream>

#include "common/field_violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/simulator/scenarios.h"
#include "tools/simulator/simulation_request.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<InFlight> Requests(std::initializer_list<int64_t> values) {
  std::vector<InFlight> load;
  for (int64_t v : values) load.push_back({v, 0});
  return load;
}

std::vector<InFlight> Constant(int64_t requests, int64_t seconds) {
  return std::vector<InFlight>(seconds, InFlight{requests, 0});
}

v1::SimulationResult Simulated(const SimulationOptions& options, const std::vector<InFlight>& load) {
  absl::StatusOr<SimulationRun> run = Simulate(options, load);
  EXPECT_TRUE(run.ok()) << run.status();
  return run.ok() ? run->result : v1::SimulationResult();
}

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(status)) fields.push_back(v.field);
  return fields;
}

// Two fixed replicas at concurrency 2: idle and queued follow from the load alone.
TEST(SimulateTest, MetersWithAFixedCount) {
  SimulationOptions options;
  options.settings.min_replica = 2;
  options.settings.max_replica = 2;
  options.settings.concurrency_target = 2;
  const v1::SimulationResult r = Simulated(options, Requests({0, 1, 4, 6, 3}));
  const v1::SimulationMeters& m = r.meters();
  EXPECT_EQ(m.seconds(), 5);
  EXPECT_EQ(m.replica_seconds(), 10);
  // max(0, 2 - load / 2): 2, 1.5, 0, 0, 0.5
  EXPECT_DOUBLE_EQ(m.idle_replica_seconds(), 4.0);
  // max(0, load - 2 * 2): only the 6 queues 2.
  EXPECT_DOUBLE_EQ(m.queued_request_seconds(), 2.0);
  EXPECT_EQ(m.request_seconds(), 14);
  EXPECT_EQ(m.scale_events(), 0);
  EXPECT_EQ(m.cold_starts(), 0);
  EXPECT_EQ(m.peak_replicas(), 2);
  EXPECT_EQ(m.capped_seconds(), 0);
}

TEST(SimulateTest, CappedSecondsCountLoadAboveMaxReplica) {
  SimulationOptions options;
  options.settings.max_replica = 2;
  options.settings.target_utilization_percentage = 100;
  options.settings.min_replica = 2;
  // 10 in flight needs 10: every tick is capped, the first one (which counts the second
  // in progress, none having completed) too.
  const v1::SimulationResult r = Simulated(options, Constant(10, 6));
  EXPECT_EQ(r.meters().capped_seconds(), 6);
  EXPECT_DOUBLE_EQ(r.meters().queued_request_seconds(), 6 * 8.0);
}

// A cold start asks for 2 replicas in second 0; with a 3 s start-up they serve from
// second 3, and the load queues until then. They cost from second 0 either way.
TEST(SimulateTest, StartUpTimeQueuesTheColdStart) {
  SimulationOptions options;
  options.settings.max_replica = 5;
  options.settings.target_utilization_percentage = 100;
  for (const int32_t startup : {0, 3}) {
    options.startup_seconds = startup;
    const v1::SimulationResult r = Simulated(options, Constant(2, 10));
    EXPECT_EQ(r.meters().cold_starts(), 1) << startup;
    EXPECT_EQ(r.meters().scale_events(), 1) << startup;
    EXPECT_EQ(r.meters().replica_seconds(), 20) << startup;
    EXPECT_DOUBLE_EQ(r.meters().idle_replica_seconds(), 0) << startup;
    EXPECT_DOUBLE_EQ(r.meters().queued_request_seconds(), startup * 2.0) << startup;
    ASSERT_EQ(r.events_size(), 1);
    EXPECT_TRUE(r.events(0).cold_start());
    EXPECT_EQ(r.events(0).second(), 0);
    EXPECT_EQ(r.events(0).to_replicas(), 2);
    EXPECT_THAT(r.events(0).reason(), HasSubstr("scaled up from 0 to 2"));
  }
}

// A replica still starting is the first to go: after a scale-up to 3 that is undone
// before the new ones serve, the first two serving replicas remain.
TEST(SimulateTest, AScaleDownRemovesStartingReplicasFirst) {
  SimulationOptions options;
  options.settings.min_replica = 0;
  options.settings.max_replica = 10;
  options.settings.target_utilization_percentage = 100;
  options.settings.autoscaling_window = 10;
  options.settings.scale_down_delay = 0;
  options.startup_seconds = 30;
  options.record_ticks = true;
  // 2 in flight for 40 s (2 replicas, serving from second 30), 4 for 3 s, then 2 again.
  std::vector<InFlight> load = Constant(2, 40);
  for (int i = 0; i < 3; ++i) load.push_back({4, 0});
  for (int i = 0; i < 30; ++i) load.push_back({2, 0});
  options.max_points = static_cast<int32_t>(load.size());
  const v1::SimulationResult r = Simulated(options, load);
  const v1::SimulationSeries& s = r.series();
  ASSERT_EQ(s.step_seconds(), 1);
  int32_t peak = 0;
  for (int i = 40; i < static_cast<int>(load.size()); ++i) {
    peak = std::max(peak, s.replicas(i));
    // Whatever the count does, the two replicas serving since second 30 stay serving.
    ASSERT_GE(s.serving_replicas(i), 2) << "second " << i;
    if (s.replicas(i) == 2) {
      EXPECT_EQ(s.serving_replicas(i), 2) << "second " << i;
    }
  }
  EXPECT_GT(peak, 2);
  EXPECT_EQ(s.replicas(load.size() - 1), 2);
}

TEST(SimulateTest, SeriesSummarisesLongRunsOverSteps) {
  SimulationOptions options;
  options.settings.min_replica = 1;
  options.max_points = 3;
  const v1::SimulationResult r = Simulated(options, Requests({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  const v1::SimulationSeries& s = r.series();
  EXPECT_EQ(s.step_seconds(), 4);  // ceil(10 / 3)
  EXPECT_THAT(s.load(), ElementsAre(1.5, 5.5, 8.5));
  EXPECT_THAT(s.replicas(), ElementsAre(1, 1, 1));
  options.max_points = 0;
  EXPECT_EQ(Simulated(options, Requests({1, 2})).series().load_size(), 0);
}

// 40 requests for 30 s: one scale-up to 40, then 40 → 20 → 10 → 5 → 3 → 2 → 1 → 0,
// one step per delay once the window has drained.
TEST(SimulateTest, BurstScalesUpOnceAndDrainsByHalvingSteps) {
  SimulationOptions options;
  options.settings.max_replica = 100;
  options.settings.target_utilization_percentage = 100;
  options.settings.autoscaling_window = 10;
  options.settings.scale_down_delay = 20;
  options.max_events = 3;
  std::vector<InFlight> load = Constant(40, 30);
  load.resize(330);
  const v1::SimulationResult r = Simulated(options, load);
  EXPECT_EQ(r.meters().scale_ups(), 1);
  EXPECT_EQ(r.meters().scale_downs(), 7);
  EXPECT_EQ(r.meters().scale_events(), 8);
  EXPECT_EQ(r.meters().cold_starts(), 1);
  EXPECT_EQ(r.meters().peak_replicas(), 40);
  EXPECT_EQ(r.meters().queued_request_seconds(), 0);
  ASSERT_EQ(r.events_size(), 3);
  EXPECT_EQ(r.events_omitted(), 5);
  EXPECT_THAT(r.events(1).reason(), HasSubstr("scaled down from 40 to 20"));
}

TEST(SweepTest, FrontierHoldsThePointsNothingBeats) {
  std::vector<v1::SweepPoint> points(4);
  const double meters[][2] = {{100, 5}, {80, 9}, {120, 5}, {80, 12}};
  for (size_t i = 0; i < points.size(); ++i) {
    points[i].mutable_meters()->set_replica_seconds(meters[i][0]);
    points[i].mutable_meters()->set_queued_request_seconds(meters[i][1]);
  }
  MarkFrontier(points);
  EXPECT_TRUE(points[0].on_frontier());
  EXPECT_TRUE(points[1].on_frontier());
  EXPECT_FALSE(points[2].on_frontier());  // costs more than [0] for the same queueing
  EXPECT_FALSE(points[3].on_frontier());  // queues more than [1] for the same cost
}

TEST(SweepTest, EveryCombinationInOrderLastAxisFastest) {
  SimulationOptions options;
  options.settings.max_replica = 10;
  options.settings.autoscaling_window = 10;
  std::vector<InFlight> load = Constant(5, 60);
  load.resize(600);
  absl::StatusOr<std::vector<v1::SweepPoint>> sweep =
      Sweep(options, load, {{"scale_down_delay", {0, 300}}, {"concurrency_target", {1, 2}}}, {});
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->size(), 4u);
  const int32_t want[][2] = {{0, 1}, {0, 2}, {300, 1}, {300, 2}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*sweep)[i].autoscaling_settings().scale_down_delay(), want[i][0]);
    EXPECT_EQ((*sweep)[i].autoscaling_settings().concurrency_target(), want[i][1]);
    EXPECT_EQ((*sweep)[i].autoscaling_settings().max_replica(), 10);
  }
  // Holding replicas for 300 s after the load stops costs more than dropping them.
  EXPECT_GT((*sweep)[2].meters().replica_seconds(), (*sweep)[0].meters().replica_seconds());

  EXPECT_THAT(Fields(Sweep(options, load, {{"scale_down_daley", {1}}}, {}).status()),
              ElementsAre("sweep[0].field"));
  EXPECT_THAT(Fields(Sweep(options, load, {{"min_replica", {20}}}, {}).status()),
              ElementsAre("autoscaling_settings.min_replica"));
}

absl::StatusOr<v1::SimulationResult> RunJson(const std::string& json) {
  absl::StatusOr<v1::SimulationRequest> request = SimulationRequestFromJson(json);
  if (!request.ok()) return request.status();
  return RunSimulationRequest(*request, SimulationLimits{});
}

TEST(SimulationRequestTest, DefaultsAreTheDocumentedOnes) {
  absl::StatusOr<v1::SimulationResult> r = RunJson(R"({"pattern": "constant:3"})");
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::AutoscalingSettings& s = r->autoscaling_settings();
  EXPECT_EQ(s.min_replica(), 0);
  EXPECT_EQ(s.max_replica(), 1);
  EXPECT_EQ(s.autoscaling_window(), 60);
  EXPECT_EQ(s.scale_down_delay(), 900);
  EXPECT_EQ(s.concurrency_target(), 1);
  EXPECT_EQ(s.target_utilization_percentage(), 70);
  EXPECT_EQ(s.max_scale_down_rate(), 50);
  EXPECT_FALSE(s.has_target_in_flight_tokens());
  EXPECT_EQ(r->meters().seconds(), 3600);
  EXPECT_EQ(r->series().step_seconds(), 3);  // 1200 points at most
  EXPECT_EQ(r->series().load_size(), 1200);
  // 3 in flight at max_replica 1: capped throughout.
  EXPECT_EQ(r->meters().capped_seconds(), 3600);
}

TEST(SimulationRequestTest, BadRequestsNameTheirFields) {
  struct Bad {
    const char* json;
    std::vector<std::string> fields;
  } cases[] = {
      {R"({})", {"pattern"}},
      {R"({"pattern": "step:1,2,3s", "trace_csv": "x"})", {"pattern"}},
      {R"({"pattern": "zigzag:1"})", {"pattern"}},
      {R"({"pattern": "trace:/etc/passwd"})", {"pattern"}},
      {R"({"pattern": "constant:1", "duration_seconds": 0})", {"duration_seconds"}},
      {R"({"pattern": "constant:1", "duration_seconds": 604801})", {"duration_seconds"}},
      {R"({"pattern": "constant:1", "autoscaling_settings": {"min_replica": 5,
          "scale_down_delay": -1}})",
       {"autoscaling_settings.min_replica", "autoscaling_settings.scale_down_delay"}},
      {R"({"pattern": "constant:1", "startup_seconds": 3601, "max_points": -1})",
       {"startup_seconds", "max_points"}},
      {R"({"pattern": "constant:1", "service_time": {"overhead_ms": -1}})",
       {"service_time.overhead_ms"}},
      {R"({"trace_csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n"})", {"trace_csv"}},
      {R"({"trace_csv": "h\n2023-11-16 18:00:00,1\n"})", {"trace_csv"}},
      {R"({"pattern": "constant:1", "sweep": [{"field": "min_replica", "values": []}]})",
       {"sweep[0].values"}},
      {R"({"pattern": "constant:1", "sweep": [
          {"field": "scale_down_delay", "values": [1,2,3,4,5,6,7,8,9,10]},
          {"field": "concurrency_target", "values": [1,2,3,4,5,6,7,8,9,10]},
          {"field": "autoscaling_window", "values": [10, 20, 30]}]})",
       {"sweep"}},
      {R"({"pattern": "constant:1", "duration_seconds": 604800, "sweep": [
          {"field": "scale_down_delay", "values": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]})",
       {"sweep"}},
  };
  for (const Bad& bad : cases) {
    absl::StatusOr<v1::SimulationResult> r = RunJson(bad.json);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad.json;
    EXPECT_EQ(Fields(r.status()), bad.fields) << bad.json << "\n" << r.status();
  }
  // Not JSON, or a field the request does not have.
  for (const char* json : {"", "{", R"({"patern": "constant:1"})"}) {
    EXPECT_EQ(RunJson(json).status().code(), absl::StatusCode::kInvalidArgument) << json;
  }
}

TEST(SimulationRequestTest, ATraceRunsForItsLengthAndTail) {
  absl::StatusOr<v1::SimulationResult> r = RunJson(
      R"({"trace_csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00.5,0,0\n2023-11-16 18:00:01.2,0,0\n",
          "service_time": {"overhead_ms": 2000}, "tail_seconds": 7})");
  ASSERT_TRUE(r.ok()) << r.status();
  // In flight over [0.5, 2.5) and [1.2, 3.2): samples at 0..3, then 7 idle seconds.
  EXPECT_EQ(r->meters().seconds(), 4 + 7);
  EXPECT_EQ(r->meters().request_seconds(), 0 + 1 + 2 + 1);
}

TEST(SimulationRequestTest, JsonPrintsEveryMeterWithProtoNames) {
  absl::StatusOr<v1::SimulationResult> r = RunJson(R"({"pattern": "constant:0",
      "duration_seconds": 5, "max_points": 0})");
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string json = ProtoJson(*r);
  for (const char* name : {"\"replica_seconds\":0", "\"idle_replica_seconds\":0",
                           "\"queued_request_seconds\":0", "\"cold_starts\":0",
                           "\"scale_events\":0", "\"capped_seconds\":0", "\"seconds\":5"}) {
    EXPECT_THAT(json, HasSubstr(name));
  }
  EXPECT_EQ(json.back(), '\n');
}

// The scenarios do what their descriptions promise.
v1::SimulationMeters ScenarioMeters(const std::string& name,
                                    const v1::AutoscalingSettings& overrides = {}) {
  const v1::SimulationScenario* s = FindSimulationScenario(name);
  EXPECT_NE(s, nullptr) << name;
  if (s == nullptr) return {};
  v1::SimulationRequest request = s->request();
  request.mutable_autoscaling_settings()->MergeFrom(overrides);
  absl::StatusOr<v1::SimulationResult> r = RunSimulationRequest(request, SimulationLimits{});
  EXPECT_TRUE(r.ok()) << name << ": " << r.status();
  return r.ok() ? r->meters() : v1::SimulationMeters();
}

TEST(ScenarioTest, EveryScenarioRuns) {
  ASSERT_EQ(SimulationScenarios().size(), 7u);
  for (const v1::SimulationScenario& s : SimulationScenarios()) {
    const v1::SimulationMeters m = ScenarioMeters(s.name());
    EXPECT_EQ(m.seconds(), s.request().duration_seconds()) << s.name();
    EXPECT_GT(m.scale_events(), 0) << s.name();
    EXPECT_FALSE(s.title().empty());
    EXPECT_FALSE(s.description().empty());
  }
  EXPECT_EQ(FindSimulationScenario("nope"), nullptr);
}

TEST(ScenarioTest, ColdStartsQueueUntilMinReplicaKeepsOneWarm) {
  const v1::SimulationMeters idle = ScenarioMeters("cold_start");
  EXPECT_GE(idle.cold_starts(), 4);  // one per burst: 2 hours of 23-minute cycles
  EXPECT_GT(idle.queued_request_seconds(), 0);
  v1::AutoscalingSettings warm;
  warm.set_min_replica(1);
  const v1::SimulationMeters kept = ScenarioMeters("cold_start", warm);
  EXPECT_EQ(kept.cold_starts(), 0);
  EXPECT_LT(kept.queued_request_seconds(), idle.queued_request_seconds());
  EXPECT_GT(kept.idle_replica_seconds(), idle.idle_replica_seconds());
}

TEST(ScenarioTest, OscillationStopsWithALongerDelay) {
  const v1::SimulationMeters flapping = ScenarioMeters("oscillation");
  EXPECT_GE(flapping.scale_events(), 10);
  v1::AutoscalingSettings patient;
  patient.set_scale_down_delay(240);
  // The cold start to 1 and the first swing up to 2; then 2 holds.
  const v1::SimulationMeters held = ScenarioMeters("oscillation", patient);
  EXPECT_EQ(held.scale_events(), 2);
  EXPECT_EQ(held.scale_ups(), 2);
}

}  // namespace
}  // namespace chainscale
