// chainscale-simulate: replays a request trace or a load shape through the decision code
// the agents run, in simulated time, and prints the scale events and what the settings
// cost (the meters), or a sweep's cost/queueing frontier.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/field_violations.h"
#include "common/mutex_mode.h"
#include "common/settings.h"
#include "tools/simulator/scenarios.h"
#include "tools/simulator/simulation_request.h"

// The load: one of these three.
ABSL_FLAG(std::string, trace, "", "CSV trace to replay: TIMESTAMP,ContextTokens,GeneratedTokens");
ABSL_FLAG(std::string, pattern, "",
          "load shape: constant:N | step:FROM,TO,AT | ramp:FROM,TO,OVER | "
          "spike:BASE,PEAK,AT,FOR | pulse:LOW,HIGH,LOW_FOR,HIGH_FOR | wave:LOW,HIGH,PERIOD | "
          "points:EVERY,V1,V2,...");
ABSL_FLAG(std::string, scenario, "",
          "a ready-made scenario (its load, duration, start-up and settings; other flags "
          "that differ from their defaults override it): step, spike, ramp, diurnal, "
          "cold_start, oscillation, sandbox");
ABSL_FLAG(absl::Duration, duration, absl::Hours(1), "time simulated for --pattern");
ABSL_FLAG(absl::Duration, tail, absl::Minutes(30),
          "idle time simulated after the trace, to show the scale-down");
ABSL_FLAG(absl::Duration, startup, absl::ZeroDuration(),
          "time a new replica takes before it serves (it costs from the start)");
// Settings, with the documented defaults (DESIGN §3).
ABSL_FLAG(int32_t, min_replica, 0, "min_replica");
ABSL_FLAG(int32_t, max_replica, 1, "max_replica");
ABSL_FLAG(int32_t, autoscaling_window, 60, "autoscaling_window, seconds (10-3600)");
ABSL_FLAG(int32_t, scale_down_delay, 900, "scale_down_delay, seconds (0-3600)");
ABSL_FLAG(int32_t, concurrency_target, 1, "concurrency_target, requests per replica");
ABSL_FLAG(int32_t, target_utilization_percentage, 70, "target_utilization_percentage (1-100)");
ABSL_FLAG(int32_t, target_in_flight_tokens, 0, "target_in_flight_tokens; 0 leaves it unset");
ABSL_FLAG(int32_t, max_scale_down_rate, 50, "max_scale_down_rate, percent (1-50)");
// The service-time model that turns a trace into in-flight load.
ABSL_FLAG(absl::Duration, overhead, absl::Milliseconds(50), "service time: fixed per request");
ABSL_FLAG(absl::Duration, per_context_token, absl::Microseconds(200),
          "service time: prefill per context token");
ABSL_FLAG(absl::Duration, per_generated_token, absl::Milliseconds(20),
          "service time: decode per generated token");
// Output.
ABSL_FLAG(std::string, sweep, "",
          "settings to vary, e.g. \"scale_down_delay=0,60,300,900;concurrency_target=1,2\": "
          "every combination is simulated and the cost/queueing frontier printed");
ABSL_FLAG(bool, json, false, "print the result as JSON (the POST /v1/simulations answer)");
ABSL_FLAG(int32_t, points, 0, "with --json: per-second series points at most (0: none)");
ABSL_FLAG(int32_t, max_events, 5000, "scale events listed at most");

namespace chainscale {
namespace {

const char* const kSettingsFlags[] = {
    "min_replica",        "max_replica",
    "autoscaling_window", "scale_down_delay",
    "concurrency_target", "target_utilization_percentage",
    "target_in_flight_tokens", "max_scale_down_rate"};

// With --scenario, a flag overrides the scenario when it differs from its default.
bool Changed(absl::string_view name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  return flag != nullptr && flag->CurrentValue() != flag->DefaultValue();
}

absl::Status ParseSweep(const std::string& text, v1::SimulationRequest* request) {
  for (absl::string_view axis_text : absl::StrSplit(text, ';', absl::SkipWhitespace())) {
    const std::vector<absl::string_view> field_values =
        absl::StrSplit(absl::StripAsciiWhitespace(axis_text), absl::MaxSplits('=', 1));
    if (field_values.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sweep: \"", axis_text, "\" is not FIELD=V1,V2,..."));
    }
    v1::SweepAxis* axis = request->add_sweep();
    axis->set_field(std::string(field_values[0]));
    for (absl::string_view v : absl::StrSplit(field_values[1], ',')) {
      int32_t value;
      if (!absl::SimpleAtoi(v, &value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--sweep: \"", v, "\" is not a whole number"));
      }
      axis->add_values(value);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SimulationRequest> RequestFromFlags() {
  v1::SimulationRequest request;
  const std::string scenario_name = absl::GetFlag(FLAGS_scenario);
  const bool scenario = !scenario_name.empty();
  if (scenario) {
    const v1::SimulationScenario* s = FindSimulationScenario(scenario_name);
    if (s == nullptr) {
      std::vector<std::string> names;
      for (const v1::SimulationScenario& known : SimulationScenarios()) {
        names.push_back(known.name());
      }
      return absl::InvalidArgumentError(absl::StrCat("no scenario \"", scenario_name,
                                                     "\"; choose one of ",
                                                     absl::StrJoin(names, ", ")));
    }
    request = s->request();
  }
  const std::string trace = absl::GetFlag(FLAGS_trace);
  const std::string pattern = absl::GetFlag(FLAGS_pattern);
  if (scenario + !trace.empty() + !pattern.empty() != 1) {
    return absl::InvalidArgumentError("give the load: one of --trace, --pattern, --scenario");
  }
  if (!trace.empty()) {
    std::ifstream file(trace);
    if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", trace));
    std::ostringstream text;
    text << file.rdbuf();
    request.set_trace_csv(text.str());
    request.set_tail_seconds(
        static_cast<int32_t>(absl::ToInt64Seconds(absl::GetFlag(FLAGS_tail))));
  }
  if (!pattern.empty()) request.set_pattern(pattern);
  if (!pattern.empty() || (scenario && Changed("duration"))) {
    request.set_duration_seconds(
        static_cast<int32_t>(absl::ToInt64Seconds(absl::GetFlag(FLAGS_duration))));
  }
  if (!scenario || Changed("startup")) {
    request.set_startup_seconds(
        static_cast<int32_t>(absl::ToInt64Seconds(absl::GetFlag(FLAGS_startup))));
  }

  v1::AutoscalingSettings& settings = *request.mutable_autoscaling_settings();
  const google::protobuf::Descriptor* descriptor = settings.GetDescriptor();
  for (const char* name : kSettingsFlags) {
    if (scenario && !Changed(name)) continue;
    int32_t value;
    // The flag's current value, by name, so the settings flags map onto the proto's
    // fields one for one.
    if (!absl::SimpleAtoi(absl::FindCommandLineFlag(name)->CurrentValue(), &value)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " must be a whole number"));
    }
    if (absl::string_view(name) == "target_in_flight_tokens" && value == 0) {
      settings.clear_target_in_flight_tokens();
      continue;
    }
    settings.GetReflection()->SetInt32(&settings, descriptor->FindFieldByName(name), value);
  }

  v1::ServiceTimeModel& model = *request.mutable_service_time();
  model.set_overhead_ms(absl::ToDoubleMilliseconds(absl::GetFlag(FLAGS_overhead)));
  model.set_per_context_token_ms(
      absl::ToDoubleMilliseconds(absl::GetFlag(FLAGS_per_context_token)));
  model.set_per_generated_token_ms(
      absl::ToDoubleMilliseconds(absl::GetFlag(FLAGS_per_generated_token)));
  request.set_max_points(absl::GetFlag(FLAGS_json) ? absl::GetFlag(FLAGS_points) : 0);
  request.set_max_events(absl::GetFlag(FLAGS_max_events));
  if (absl::Status s = ParseSweep(absl::GetFlag(FLAGS_sweep), &request); !s.ok()) return s;
  return request;
}

std::string Clock(int64_t seconds) {
  return absl::StrFormat("%02d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60);
}

std::string SettingsText(const v1::AutoscalingSettings& s) {
  std::string text = absl::StrFormat(
      "min_replica %d, max_replica %d, autoscaling_window %d, scale_down_delay %d, "
      "concurrency_target %d, target_utilization_percentage %d, max_scale_down_rate %d",
      s.min_replica(), s.max_replica(), s.autoscaling_window(), s.scale_down_delay(),
      s.concurrency_target(), s.target_utilization_percentage(), s.max_scale_down_rate());
  if (s.has_target_in_flight_tokens()) {
    absl::StrAppend(&text, ", target_in_flight_tokens ", s.target_in_flight_tokens());
  }
  return text;
}

double Percent(double part, double whole) { return whole > 0 ? 100 * part / whole : 0; }

void PrintMeters(const v1::SimulationMeters& m, std::ostream& out) {
  out << absl::StrFormat("meters over %d simulated seconds (%s):\n", m.seconds(),
                         Clock(m.seconds()))
      << absl::StrFormat("  replica-seconds         %10.0f  (%.2f replica-hours)\n",
                         m.replica_seconds(), m.replica_seconds() / 3600)
      << absl::StrFormat("  idle replica-seconds    %10.1f  (%.1f%% of replica-seconds)\n",
                         m.idle_replica_seconds(),
                         Percent(m.idle_replica_seconds(), m.replica_seconds()))
      << absl::StrFormat("  queued request-seconds  %10.1f  (%.1f%% of %.0f offered)\n",
                         m.queued_request_seconds(),
                         Percent(m.queued_request_seconds(), m.request_seconds()),
                         m.request_seconds())
      << absl::StrFormat("  cold starts             %10d\n", m.cold_starts())
      << absl::StrFormat("  scale events            %10d  (%d up, %d down)\n",
                         m.scale_events(), m.scale_ups(), m.scale_downs())
      << absl::StrFormat("  seconds capped          %10d  (load above max_replica)\n",
                         m.capped_seconds())
      << absl::StrFormat("  peak replicas           %10d\n", m.peak_replicas());
}

void PrintSweep(const v1::SimulationRequest& request, const v1::SimulationResult& result,
                std::ostream& out) {
  out << absl::StrFormat("\nsweep: %d combinations; * marks the cost/queueing frontier\n",
                         result.sweep_size());
  std::string header = "   ";
  for (const v1::SweepAxis& axis : request.sweep()) {
    absl::StrAppendFormat(&header, "%-*s  ", std::max<size_t>(6, axis.field().size()),
                          axis.field());
  }
  out << header
      << absl::StrFormat("%12s  %12s  %12s  %6s  %6s\n", "replica-s", "idle rep-s",
                         "queued req-s", "colds", "events");
  const google::protobuf::Descriptor* descriptor = v1::AutoscalingSettings::descriptor();
  for (const v1::SweepPoint& p : result.sweep()) {
    std::string row = p.on_frontier() ? " * " : "   ";
    for (const v1::SweepAxis& axis : request.sweep()) {
      const int32_t value = p.autoscaling_settings().GetReflection()->GetInt32(
          p.autoscaling_settings(), descriptor->FindFieldByName(axis.field()));
      absl::StrAppendFormat(&row, "%-*d  ", std::max<size_t>(6, axis.field().size()), value);
    }
    const v1::SimulationMeters& m = p.meters();
    out << row
        << absl::StrFormat("%12.0f  %12.1f  %12.1f  %6d  %6d\n", m.replica_seconds(),
                           m.idle_replica_seconds(), m.queued_request_seconds(),
                           m.cold_starts(), m.scale_events());
  }
}

void PrintText(const v1::SimulationRequest& request, const v1::SimulationResult& result,
               std::ostream& out) {
  const std::string load = !request.pattern().empty()
                               ? absl::StrCat("load ", request.pattern())
                               : absl::StrCat("trace ", absl::GetFlag(FLAGS_trace));
  out << absl::StrFormat("%s%s; %s simulated, one decision per second, start-up %d s\n",
                         absl::GetFlag(FLAGS_scenario).empty()
                             ? ""
                             : absl::StrCat("scenario ", absl::GetFlag(FLAGS_scenario), ": "),
                         load, Clock(result.meters().seconds()), result.startup_seconds())
      << "settings: " << SettingsText(result.autoscaling_settings()) << "\n\n";
  out << absl::StrFormat("%-8s  %-10s  %s\n", "time", "replicas", "why");
  for (const v1::ScaleEvent& e : result.events()) {
    out << absl::StrFormat("%-8s  %4d -> %-4d %s%s\n", Clock(e.second()), e.from_replicas(),
                           e.to_replicas(), e.cold_start() ? "cold start: " : "", e.reason());
  }
  if (result.events_omitted() > 0) {
    out << absl::StrFormat("... and %d more scale events\n", result.events_omitted());
  }
  out << "\n";
  PrintMeters(result.meters(), out);
  if (result.sweep_size() > 0) PrintSweep(request, result, out);
}

}  // namespace
}  // namespace chainscale

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "Replays a request trace or a load shape through chainscale's decision loop in "
      "simulated time and prints the scale events and the meters: replica-seconds, idle "
      "replica-seconds, queued request-seconds, cold starts, scale events.\n"
      "  chainscale-simulate --trace tools/testdata/sample_trace.csv --max_replica 10\n"
      "  chainscale-simulate --scenario cold_start --min_replica 1\n"
      "  chainscale-simulate --pattern step:2,12,5m --max_replica 10 "
      "--sweep \"scale_down_delay=0,300,900\"");
  // --help lists this file's flags (by default Abseil lists only flags from a file named
  // after the binary, which this one is not).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "tools/simulator/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);

  absl::StatusOr<chainscale::v1::SimulationRequest> request = chainscale::RequestFromFlags();
  if (!request.ok()) {
    std::cerr << request.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<chainscale::v1::SimulationResult> result =
      chainscale::RunSimulationRequest(*request, chainscale::SimulationLimits{});
  if (!result.ok()) {
    std::cerr << "cannot simulate: " << result.status().message() << "\n";
    return absl::IsInvalidArgument(result.status()) ? 2 : 1;
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << chainscale::ProtoJson(*result);
  } else {
    chainscale::PrintText(*request, *result, std::cout);
  }
  return 0;
}
