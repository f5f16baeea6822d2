#include "tools/simulator/simulation_request.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/field_violations.h"
#include "common/settings_proto.h"
#include "tools/loadgen/load_pattern.h"
#include "tools/simulator/simulation.h"
#include "tools/simulator/trace.h"

namespace chainscale {
namespace {

constexpr int32_t kDefaultMaxPoints = 1200;
constexpr int32_t kMaxPoints = 20'000;
constexpr int32_t kDefaultMaxEvents = 200;
constexpr int32_t kMaxEvents = 5000;
constexpr int32_t kMaxStartupSeconds = 3600;
constexpr double kMaxServiceTimeMs = 3'600'000;

void CheckRange(absl::string_view field, int64_t value, int64_t lo, int64_t hi,
                std::vector<FieldViolation>* out) {
  if (value < lo || value > hi) {
    out->push_back({std::string(field),
                    absl::StrCat("must be between ", lo, " and ", hi, ", got ", value)});
  }
}

// The service-time model, defaults for fields left out.
ServiceTimeModel ServiceTime(const v1::ServiceTimeModel& p, std::vector<FieldViolation>* out) {
  ServiceTimeModel model;
  auto field = [&](absl::string_view name, bool present, double ms, absl::Duration* d) {
    if (!present) return;
    if (!std::isfinite(ms) || ms < 0 || ms > kMaxServiceTimeMs) {
      out->push_back({absl::StrCat("service_time.", name),
                      absl::StrCat("must be between 0 and ", kMaxServiceTimeMs,
                                   " milliseconds, got ", ms)});
      return;
    }
    *d = absl::Microseconds(std::llround(ms * 1000));
  };
  field("overhead_ms", p.has_overhead_ms(), p.overhead_ms(), &model.overhead);
  field("per_context_token_ms", p.has_per_context_token_ms(), p.per_context_token_ms(),
        &model.per_context_token);
  field("per_generated_token_ms", p.has_per_generated_token_ms(), p.per_generated_token_ms(),
        &model.per_generated_token);
  return model;
}

// The load the request asks for and the seconds it runs; a violation (and no pattern)
// otherwise. Nothing is sampled yet, so the work can be checked against the limits first.
struct RunLoad {
  std::unique_ptr<LoadPattern> pattern;
  int64_t seconds = 0;
};

RunLoad Load(const v1::SimulationRequest& request, const ServiceTimeModel& model,
             const SimulationLimits& limits, std::vector<FieldViolation>* out) {
  const bool has_pattern = !request.pattern().empty();
  const bool has_trace = !request.trace_csv().empty();
  if (has_pattern == has_trace) {
    out->push_back({"pattern", has_pattern ? "give a pattern or a trace_csv, not both"
                                           : "give the load: a pattern such as "
                                             "\"step:2,12,5m\", or a trace_csv"});
    return {};
  }
  if (has_pattern) {
    const int64_t seconds = request.has_duration_seconds() ? request.duration_seconds()
                                                           : kDefaultSimulationSeconds;
    absl::StatusOr<std::unique_ptr<LoadPattern>> pattern = ParseLoadShape(request.pattern());
    if (!pattern.ok()) out->push_back({"pattern", std::string(pattern.status().message())});
    CheckRange("duration_seconds", seconds, 1, limits.max_seconds, out);
    if (!out->empty()) return {};
    return {*std::move(pattern), seconds};
  }
  if (request.has_duration_seconds()) {
    out->push_back({"duration_seconds", "applies to a pattern; a trace runs for its length "
                                        "plus tail_seconds"});
  }
  const int64_t tail =
      request.has_tail_seconds() ? request.tail_seconds() : kDefaultTraceTailSeconds;
  CheckRange("tail_seconds", tail, 0, limits.max_seconds, out);
  std::istringstream in(request.trace_csv());
  absl::StatusOr<std::vector<TraceRequest>> trace = ParseTrace(in);
  if (!trace.ok()) {
    out->push_back({"trace_csv", std::string(trace.status().message())});
  } else if (trace->empty()) {
    out->push_back({"trace_csv", "holds no requests: a header line and rows "
                                 "TIMESTAMP,ContextTokens,GeneratedTokens are expected"});
  } else {
    // Checked before the in-flight samples are built: they span the trace's arrivals.
    const int64_t span = absl::ToInt64Seconds(trace->back().arrival - trace->front().arrival);
    if (span > limits.max_seconds) {
      out->push_back({"trace_csv", absl::StrCat("spans ", span, " seconds; at most ",
                                                limits.max_seconds, " are simulated")});
    }
  }
  if (!out->empty()) return {};
  RunLoad load{TracePattern(*trace, model), 0};
  load.seconds = absl::ToInt64Seconds(load.pattern->length()) + tail;
  if (load.seconds > limits.max_seconds) {
    out->push_back({"tail_seconds", absl::StrCat("the trace and its tail make ", load.seconds,
                                                 " seconds; at most ", limits.max_seconds,
                                                 " are simulated")});
    return {};
  }
  return load;
}

}  // namespace

absl::StatusOr<v1::SimulationResult> RunSimulationRequest(const v1::SimulationRequest& request,
                                                          const SimulationLimits& limits) {
  std::vector<FieldViolation> violations;
  absl::StatusOr<AutoscalingSettings> settings = MergeAndValidate(
      DefaultSettings(kProductionEnvironment), UpdateFromProto(request.autoscaling_settings()),
      kProductionEnvironment, limits.settings, "autoscaling_settings.");
  if (!settings.ok()) violations = FieldViolationsOf(settings.status());
  CheckRange("startup_seconds", request.startup_seconds(), 0, kMaxStartupSeconds, &violations);
  const int32_t max_points = request.has_max_points() ? request.max_points() : kDefaultMaxPoints;
  CheckRange("max_points", max_points, 0, kMaxPoints, &violations);
  const int32_t max_events = request.has_max_events() ? request.max_events() : kDefaultMaxEvents;
  CheckRange("max_events", max_events, 0, kMaxEvents, &violations);

  std::vector<SweepAxis> axes;
  int64_t combinations = request.sweep_size() > 0 ? 1 : 0;
  if (request.sweep_size() > limits.max_sweep_axes) {
    violations.push_back({"sweep", absl::StrCat("at most ", limits.max_sweep_axes,
                                                " settings may be swept, got ",
                                                request.sweep_size())});
  }
  for (int a = 0; a < request.sweep_size() && a < limits.max_sweep_axes; ++a) {
    const v1::SweepAxis& axis = request.sweep(a);
    if (axis.values().empty() || axis.values_size() > limits.max_sweep_values) {
      violations.push_back({absl::StrCat("sweep[", a, "].values"),
                            absl::StrCat("must list 1 to ", limits.max_sweep_values,
                                         " values, got ", axis.values_size())});
    }
    combinations *= std::max(1, axis.values_size());
    axes.push_back({axis.field(), {axis.values().begin(), axis.values().end()}});
  }
  if (combinations > limits.max_sweep_combinations) {
    violations.push_back({"sweep", absl::StrCat("makes ", combinations,
                                                " combinations; at most ",
                                                limits.max_sweep_combinations)});
  }
  const ServiceTimeModel model = ServiceTime(request.service_time(), &violations);
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);

  const RunLoad run_load = Load(request, model, limits, &violations);
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);
  const int64_t total = run_load.seconds * (1 + combinations);
  if (total > limits.max_total_seconds) {
    return InvalidArgumentWithViolations(
        {{request.sweep_size() > 0 ? "sweep" : "duration_seconds",
          absl::StrCat("asks for ", total, " simulated seconds (", run_load.seconds,
                       " per run); at most ", limits.max_total_seconds, " per request")}});
  }
  std::vector<InFlight> load;
  load.reserve(run_load.seconds);
  for (int64_t i = 0; i < run_load.seconds; ++i) {
    load.push_back(run_load.pattern->At(absl::Seconds(i)));
  }

  SimulationOptions options;
  options.settings = *settings;
  options.startup_seconds = request.startup_seconds();
  options.max_points = max_points;
  options.max_events = max_events;
  absl::StatusOr<SimulationRun> run = Simulate(options, load);
  if (!run.ok()) return run.status();
  v1::SimulationResult result = std::move(run->result);
  if (!axes.empty()) {
    absl::StatusOr<std::vector<v1::SweepPoint>> sweep =
        Sweep(options, load, axes, limits.settings);
    if (!sweep.ok()) return sweep.status();
    for (v1::SweepPoint& point : *sweep) *result.add_sweep() = std::move(point);
  }
  return result;
}

absl::StatusOr<v1::SimulationRequest> SimulationRequestFromJson(absl::string_view json) {
  if (absl::StripAsciiWhitespace(json).empty()) {
    return absl::InvalidArgumentError("the request body is empty; send a JSON object");
  }
  v1::SimulationRequest request;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &request, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body is not a valid simulation request: ",
                     status.message().as_string()));
  }
  return request;
}

std::string ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing fails only on strings that are not UTF-8; the results' strings are ASCII
  // that this code wrote (reasons, descriptions).
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  json += "\n";
  return json;
}

}  // namespace chainscale
