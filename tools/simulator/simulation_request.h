// A simulation as asked for over the API (POST /v1/simulations) and by chainscale-simulate:
// a v1::SimulationRequest validated against limits, its load built from a shape or a
// trace, simulated (with its sweep) and answered as a v1::SimulationResult. The one path
// both front ends take, so the console and the command line print the same meters.
#ifndef CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_REQUEST_H_
#define CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_REQUEST_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "chainscale/v1/simulation.pb.h"
#include "common/settings.h"

namespace chainscale {

// Bounds on the work one request may ask for.
struct SimulationLimits {
  SettingsLimits settings;
  // Simulated seconds of one run.
  int64_t max_seconds = 7 * 24 * 3600;
  // Simulated seconds of one request: the run plus every sweep combination.
  int64_t max_total_seconds = 10'000'000;
  int32_t max_sweep_axes = 3;
  int32_t max_sweep_values = 20;
  int32_t max_sweep_combinations = 200;
};

inline constexpr int32_t kDefaultSimulationSeconds = 3600;
inline constexpr int32_t kDefaultTraceTailSeconds = 1800;

// Validates and runs `request`. INVALID_ARGUMENT with one field violation per problem
// (field names as in the request's JSON, such as "autoscaling_settings.max_replica" or
// "pattern") for a bad request or one over `limits`.
absl::StatusOr<v1::SimulationResult> RunSimulationRequest(const v1::SimulationRequest& request,
                                                          const SimulationLimits& limits);

// The request from JSON (proto field names; unknown fields rejected). INVALID_ARGUMENT
// saying what is wrong.
absl::StatusOr<v1::SimulationRequest> SimulationRequestFromJson(absl::string_view json);

// `message` as JSON with proto field names and zero values printed, ending with a newline:
// as the console's API and chainscale-simulate --json print it.
std::string ProtoJson(const google::protobuf::Message& message);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_SIMULATOR_SIMULATION_REQUEST_H_
