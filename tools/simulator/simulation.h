// The simulation core: replays per-second in-flight load through the ChainletDecider the
// agents run (one source reporting once per simulated second, the cold-start path and
// one tick per second, as the agent does them) and meters what the settings cost:
// replica-seconds, idle capacity, queued requests, cold starts and scale events. A pure
// function of its options, so the control plane answers POST /v1/simulations with it and
// chainscale-simulate prints it.
#ifndef CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_H_
#define CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chainscale/v1/simulation.pb.h"
#include "common/replica_scaler.h"
#include "common/settings.h"
#include "tools/simulator/trace.h"

namespace chainscale {

struct SimulationOptions {
  AutoscalingSettings settings;
  // Seconds a new replica takes before it serves; it costs from the second it is asked for.
  int32_t startup_seconds = 0;
  int32_t report_staleness_seconds = 10;
  // Series points at most (0: no series); longer runs are summarised over steps.
  int32_t max_points = 1200;
  // Scale events listed at most; the meters count every one.
  int32_t max_events = 200;
  // Keep every decision in SimulationRun::ticks (for tests that compare with the agent).
  bool record_ticks = false;
};

// One decision of the run: the cold-start decision of a second (when load reached zero
// replicas), or its tick.
struct SimulationTick {
  int64_t second = 0;
  bool cold_start = false;
  ScaleDecision decision;
};

struct SimulationRun {
  // Settings, meters, series and events; no sweep.
  v1::SimulationResult result;
  std::vector<SimulationTick> ticks;  // only with record_ticks
};

// Runs the simulation over `load`, the in-flight load offered in each simulated second
// from second 0. INVALID_ARGUMENT when a second's load is more than one report may carry.
absl::StatusOr<SimulationRun> Simulate(const SimulationOptions& options,
                                       const std::vector<InFlight>& load);

// One setting varied by a sweep.
struct SweepAxis {
  std::string field;  // an AutoscalingSettings field name, such as "scale_down_delay"
  std::vector<int32_t> values;
};

// Simulates every combination of the axes' values (the last axis varying fastest) on
// `load`, each combination merged into options.settings and validated as an update
// of a production chainlet, and marks the cost/queueing frontier. INVALID_ARGUMENT naming
// the axis for an unknown field or an invalid combination.
absl::StatusOr<std::vector<v1::SweepPoint>> Sweep(const SimulationOptions& options,
                                                  const std::vector<InFlight>& load,
                                                  const std::vector<SweepAxis>& axes,
                                                  const SettingsLimits& limits);

// Marks each point that no other point beats on both replica-seconds and queued
// request-seconds (being no worse on both and better on one).
void MarkFrontier(std::vector<v1::SweepPoint>& points);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_H_
