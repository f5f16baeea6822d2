#include "tools/simulator/scenarios.h"

#include <string>

namespace chainscale {
namespace {

struct Settings {
  int32_t min_replica = 0;
  int32_t max_replica = 1;
  int32_t concurrency_target = 1;
  int32_t scale_down_delay = 900;
};

v1::SimulationScenario Scenario(const char* name, const char* title, const char* description,
                                const char* pattern, int32_t duration_seconds,
                                const Settings& s, int32_t startup_seconds = 0) {
  v1::SimulationScenario scenario;
  scenario.set_name(name);
  scenario.set_title(title);
  scenario.set_description(description);
  v1::SimulationRequest& request = *scenario.mutable_request();
  request.set_pattern(pattern);
  request.set_duration_seconds(duration_seconds);
  request.set_startup_seconds(startup_seconds);
  // Only what differs from the documented defaults is set, so the scenario reads as the
  // settings a user would change.
  v1::AutoscalingSettings& settings = *request.mutable_autoscaling_settings();
  const Settings defaults;
  if (s.min_replica != defaults.min_replica) settings.set_min_replica(s.min_replica);
  if (s.max_replica != defaults.max_replica) settings.set_max_replica(s.max_replica);
  if (s.concurrency_target != defaults.concurrency_target) {
    settings.set_concurrency_target(s.concurrency_target);
  }
  if (s.scale_down_delay != defaults.scale_down_delay) {
    settings.set_scale_down_delay(s.scale_down_delay);
  }
  return scenario;
}

std::vector<v1::SimulationScenario> MakeScenarios() {
  std::vector<v1::SimulationScenario> all;
  all.push_back(Scenario(
      "step", "Step",
      "2 requests in flight, then 12 from minute 5. The 60 s window average climbs for a "
      "minute, so replicas follow in a few quick steps; a shorter autoscaling_window reacts "
      "sooner and queues less.",
      "step:2,12,5m", 1800, {0, 10, 4, 900}));
  all.push_back(Scenario(
      "spike", "Spike",
      "A one-minute spike from 2 to 24 in flight. The window spreads it over a minute, and "
      "scale_down_delay keeps the extra replicas warm for 15 minutes after it: lower the "
      "delay to pay less idle capacity, or lengthen the window to ignore short spikes.",
      "spike:2,24,10m,1m", 2400, {0, 10, 4, 900}));
  all.push_back(Scenario(
      "ramp", "Ramp",
      "Load rising steadily from 0 to 30 over half an hour: a cold start, then one "
      "scale-up after another, each as soon as the window average crosses the next "
      "replica's threshold.",
      "ramp:0,30,30m", 2700, {0, 15, 4, 900}));
  all.push_back(Scenario(
      "diurnal", "Diurnal",
      "A day of traffic, from 2 requests in flight at night to 30 at the daily peak. "
      "Scale-down waits scale_down_delay and removes at most max_scale_down_rate per "
      "step, so the evening descent lags the load.",
      "wave:2,30,24h", 86400, {1, 15, 4, 900}));
  all.push_back(Scenario(
      "cold_start", "Cold start after idle",
      "20 idle minutes, then a 3-minute burst of 6 requests, repeating. With min_replica 0 "
      "and a 120 s delay the chainlet drains to zero between bursts, so every burst waits "
      "for a cold start (a 120 s start-up here) and its requests queue. Raise min_replica "
      "to 1, or scale_down_delay past 20 minutes, to trade idle replica-seconds for queued "
      "requests.",
      "pulse:0,6,20m,3m", 7200, {0, 5, 2, 120}, 120));
  all.push_back(Scenario(
      "oscillation", "Oscillation around a threshold",
      "Load alternating between 5 and 9 in flight every 3 minutes around one replica's "
      "threshold of 7 (concurrency_target 10 at 70 %). With a 60 s scale_down_delay the "
      "count flaps between 1 and 2 with every swing; raise the delay above 3 minutes and "
      "the flapping stops.",
      "pulse:5,9,3m,3m", 3600, {0, 5, 10, 60}));
  all.push_back(Scenario(
      "sandbox", "Sandbox",
      "Traffic shaped by hand: one point every 5 minutes, joined by straight lines. Drag "
      "the points to reshape it.",
      "points:5m,1,3,8,14,10,4,2,6,12,3,1,0", 3600, {0, 10, 4, 900}));
  return all;
}

}  // namespace

const std::vector<v1::SimulationScenario>& SimulationScenarios() {
  static const auto* scenarios = new std::vector<v1::SimulationScenario>(MakeScenarios());
  return *scenarios;
}

const v1::SimulationScenario* FindSimulationScenario(absl::string_view name) {
  for (const v1::SimulationScenario& s : SimulationScenarios()) {
    if (s.name() == name) return &s;
  }
  return nullptr;
}

}  // namespace chainscale
