// Replays a request trace through the load window and the decision algorithm in
// simulated time, printing every scale event and a summary of what the settings cost.
#ifndef CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_H_
#define CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "common/settings.h"
#include "tools/simulator/trace.h"

namespace chainscale {

struct SimulationOptions {
  std::string trace_path;
  ServiceTimeModel service_time;
  AutoscalingSettings settings;
  int32_t report_staleness_seconds = 10;
  // Simulated seconds per wall-clock second; 0 runs as fast as possible.
  double speed = 0;
  // Idle time simulated after the last request completes, to show the scale-down.
  absl::Duration tail = absl::ZeroDuration();
};

struct SimulationSummary {
  int64_t seconds = 0;
  int64_t scale_ups = 0;
  int64_t scale_downs = 0;
  int32_t peak_replicas = 0;
  int64_t replica_seconds = 0;
  // Seconds in which in-flight requests exceeded desired_replicas × concurrency_target.
  int64_t overloaded_seconds = 0;
  int64_t capped_seconds = 0;
};

// Runs the replay, writing one line per ACCEPTED decision and the summary to `out`.
absl::StatusOr<SimulationSummary> RunSimulation(const SimulationOptions& options,
                                                std::ostream& out);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_H_
