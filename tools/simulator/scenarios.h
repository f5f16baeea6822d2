// Ready-made simulations, each a load shape with settings that show one behaviour of the
// decision loop (a step, a spike, a ramp, a day, a cold start after idle, oscillation
// around a threshold, and a sandbox to reshape). The console lists them
// (GET /v1/simulations/scenarios); chainscale-simulate runs one with --scenario NAME.
#ifndef CHAINSCALE_TOOLS_SIMULATOR_SCENARIOS_H_
#define CHAINSCALE_TOOLS_SIMULATOR_SCENARIOS_H_

#include <vector>

#include "absl/strings/string_view.h"
#include "chainscale/v1/simulation.pb.h"

namespace chainscale {

// Every scenario, in the order the console shows them.
const std::vector<v1::SimulationScenario>& SimulationScenarios();

// The scenario called `name`, or null.
const v1::SimulationScenario* FindSimulationScenario(absl::string_view name);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_SIMULATOR_SCENARIOS_H_
