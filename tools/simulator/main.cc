// chainscale-simulate: replays a request trace through chainscale's decision algorithm.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/settings.h"
#include "tools/simulator/simulation.h"

ABSL_FLAG(std::string, trace, "", "CSV trace: TIMESTAMP,ContextTokens,GeneratedTokens");
ABSL_FLAG(int32_t, min_replica, 0, "min_replica");
ABSL_FLAG(int32_t, max_replica, 20, "max_replica");
ABSL_FLAG(int32_t, autoscaling_window, 60, "autoscaling_window, seconds");
ABSL_FLAG(int32_t, scale_down_delay, 300, "scale_down_delay, seconds");
ABSL_FLAG(int32_t, concurrency_target, 4, "concurrency_target, requests per replica");
ABSL_FLAG(int32_t, target_utilization_percentage, 70, "target_utilization_percentage");
ABSL_FLAG(int32_t, target_in_flight_tokens, 0, "target_in_flight_tokens; 0 leaves it unset");
ABSL_FLAG(int32_t, max_scale_down_rate, 50, "max_scale_down_rate, percent");
ABSL_FLAG(absl::Duration, overhead, absl::Milliseconds(50), "service time: fixed per request");
ABSL_FLAG(absl::Duration, per_context_token, absl::Microseconds(200),
          "service time: prefill per context token");
ABSL_FLAG(absl::Duration, per_generated_token, absl::Milliseconds(20),
          "service time: decode per generated token");
ABSL_FLAG(absl::Duration, tail, absl::Minutes(30),
          "idle time simulated after the trace, to show the scale-down");
ABSL_FLAG(double, speed, 0, "simulated seconds per wall-clock second; 0 = as fast as possible");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Replays a request trace through chainscale's decision algorithm.\n"
      "  chainscale-simulate --trace FILE [--max_replica N --scale_down_delay S ...]");
  absl::ParseCommandLine(argc, argv);

  chainscale::SimulationOptions options;
  options.trace_path = absl::GetFlag(FLAGS_trace);
  if (options.trace_path.empty()) {
    std::cerr << "--trace is required\n";
    return 2;
  }
  options.service_time.overhead = absl::GetFlag(FLAGS_overhead);
  options.service_time.per_context_token = absl::GetFlag(FLAGS_per_context_token);
  options.service_time.per_generated_token = absl::GetFlag(FLAGS_per_generated_token);
  options.speed = absl::GetFlag(FLAGS_speed);
  options.tail = absl::GetFlag(FLAGS_tail);

  chainscale::SettingsUpdate update;
  update.min_replica = absl::GetFlag(FLAGS_min_replica);
  update.max_replica = absl::GetFlag(FLAGS_max_replica);
  update.autoscaling_window = absl::GetFlag(FLAGS_autoscaling_window);
  update.scale_down_delay = absl::GetFlag(FLAGS_scale_down_delay);
  update.concurrency_target = absl::GetFlag(FLAGS_concurrency_target);
  update.target_utilization_percentage = absl::GetFlag(FLAGS_target_utilization_percentage);
  update.max_scale_down_rate = absl::GetFlag(FLAGS_max_scale_down_rate);
  if (const int32_t tokens = absl::GetFlag(FLAGS_target_in_flight_tokens); tokens != 0) {
    update.target_in_flight_tokens = tokens;
  }
  absl::StatusOr<chainscale::AutoscalingSettings> settings = chainscale::MergeAndValidate(
      chainscale::DefaultSettings("production"), update, "production", {});
  if (!settings.ok()) {
    std::cerr << "invalid settings: " << settings.status().message() << "\n";
    return 2;
  }
  options.settings = *settings;

  absl::StatusOr<chainscale::SimulationSummary> summary =
      chainscale::RunSimulation(options, std::cout);
  if (!summary.ok()) {
    std::cerr << summary.status().message() << "\n";
    return 1;
  }
  return 0;
}
