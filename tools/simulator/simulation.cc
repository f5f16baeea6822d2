#include "tools/simulator/simulation.h"

#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/chainlet_decider.h"

namespace chainscale {
namespace {

std::string Elapsed(int64_t seconds) {
  return absl::StrFormat("%02d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60);
}

}  // namespace

absl::StatusOr<SimulationSummary> RunSimulation(const SimulationOptions& options,
                                                std::ostream& out) {
  std::ifstream file(options.trace_path);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", options.trace_path));
  absl::StatusOr<std::vector<TraceRequest>> trace = ParseTrace(file);
  if (!trace.ok()) {
    return absl::Status(trace.status().code(),
                        absl::StrCat(options.trace_path, ": ", trace.status().message()));
  }
  if (trace->empty()) return absl::InvalidArgumentError("the trace holds no requests");

  const AutoscalingSettings& settings = options.settings;
  const absl::Time start = absl::FromUnixSeconds(absl::ToUnixSeconds(trace->front().arrival));
  std::vector<InFlight> load =
      SampleInFlight(*trace, options.service_time, start, absl::Seconds(1));
  load.resize(load.size() + absl::ToInt64Seconds(options.tail));

  DeciderOptions decider_options;
  decider_options.report_staleness_seconds = options.report_staleness_seconds;
  DeciderStart decider_start;
  decider_start.replicas = settings.min_replica;
  ChainletDecider decider(settings, decider_options, decider_start, start);
  SimulationSummary summary;
  summary.peak_replicas = settings.min_replica;

  out << absl::StrFormat(
      "%zu requests over %s, then %s idle; one decision per simulated second\n",
      trace->size(), Elapsed(absl::ToInt64Seconds(trace->back().arrival - start)),
      Elapsed(absl::ToInt64Seconds(options.tail)));
  out << absl::StrFormat("%-8s  %9s  %9s  %8s  %s\n", "time", "in-flight", "window avg",
                         "replicas", "why");
  for (size_t i = 0; i < load.size(); ++i) {
    const absl::Time now = start + absl::Seconds(static_cast<int64_t>(i));
    LoadSample sample{load[i].requests * 1000, std::nullopt};
    if (settings.target_in_flight_tokens.has_value()) sample.tokens = load[i].tokens;
    if (absl::Status s = decider.Report("trace-router", sample, now); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("at ", Elapsed(static_cast<int64_t>(i)), ": ",
                                                 s.message()));
    }
    auto print_event = [&](const ScaleDecision& d) {
      if (d.status != DecisionStatus::kAccepted) return;
      (d.desired_replicas > d.previous_replicas ? summary.scale_ups : summary.scale_downs)++;
      out << absl::StrFormat("%-8s  %9d  %10.2f  %3d -> %-3d %s\n",
                             Elapsed(static_cast<int64_t>(i)), load[i].requests,
                             d.avg_in_flight_requests, d.previous_replicas,
                             d.desired_replicas, DescribeDecision(d, settings));
      out.flush();
    };
    // The agent decides a cold start when the report arrives, and every second at its
    // tick; here both land on the simulated second.
    if (decider.ColdStartDue(sample)) print_event(decider.DecideColdStart(now));
    const ScaleDecision d = decider.Decide(now);
    print_event(d);

    ++summary.seconds;
    summary.replica_seconds += d.desired_replicas;
    summary.peak_replicas = std::max(summary.peak_replicas, d.desired_replicas);
    summary.capped_seconds += d.capped;
    if (load[i].requests > int64_t{d.desired_replicas} * settings.concurrency_target) {
      ++summary.overloaded_seconds;
    }
    if (options.speed > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(1.0 / options.speed));
    }
  }
  out << absl::StrFormat(
      "\nsummary: %d s simulated, %d scale-ups, %d scale-down steps, peak %d replicas, "
      "%.1f replica-hours, %d s over capacity (%.1f%%), %d s capped at max_replica\n",
      summary.seconds, summary.scale_ups, summary.scale_downs, summary.peak_replicas,
      summary.replica_seconds / 3600.0, summary.overloaded_seconds,
      100.0 * summary.overloaded_seconds / summary.seconds, summary.capped_seconds);
  return summary;
}

}  // namespace chainscale
