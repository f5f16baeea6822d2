#include "tools/simulator/simulation.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/chainlet_decider.h"
#include "common/field_violations.h"
#include "common/settings_proto.h"
#include "common/load_window.h"

namespace chainscale {
namespace {

// The replicas asked for, each with the second from which it serves. Kept in order of
// that second; a scale-down removes the replicas that would serve last (those still
// starting first), as orchestrators remove pods that are not ready first.
class ReplicaPool {
 public:
  void Resize(int32_t replicas, int64_t second, int32_t startup_seconds) {
    while (static_cast<int32_t>(ready_at_.size()) < replicas) {
      ready_at_.push_back(second + startup_seconds);
    }
    if (static_cast<int32_t>(ready_at_.size()) > replicas) ready_at_.resize(replicas);
  }
  int32_t ServingAt(int64_t second) const {
    return static_cast<int32_t>(
        std::upper_bound(ready_at_.begin(), ready_at_.end(), second) - ready_at_.begin());
  }

 private:
  std::vector<int64_t> ready_at_;
};

// Summarises per-second values over steps of `step` seconds for the series.
class SeriesBuilder {
 public:
  SeriesBuilder(int64_t seconds, int32_t max_points, v1::SimulationSeries* series)
      : series_(series) {
    if (max_points <= 0) return;
    step_ = std::max<int64_t>(1, (seconds + max_points - 1) / max_points);
    series_->set_step_seconds(static_cast<int32_t>(step_));
  }

  void Add(double load, double window_average, int32_t replicas, int32_t serving) {
    if (step_ == 0) return;
    load_sum_ += load;
    average_sum_ += window_average;
    replicas_max_ = std::max(replicas_max_, replicas);
    serving_min_ = std::min(serving_min_, serving);
    if (++count_ == step_) Flush();
  }

  void Flush() {
    if (count_ == 0) return;
    series_->add_load(load_sum_ / count_);
    series_->add_window_average(average_sum_ / count_);
    series_->add_replicas(replicas_max_);
    series_->add_serving_replicas(serving_min_);
    count_ = 0;
    load_sum_ = average_sum_ = 0;
    replicas_max_ = 0;
    serving_min_ = std::numeric_limits<int32_t>::max();
  }

 private:
  v1::SimulationSeries* series_;
  int64_t step_ = 0;
  int64_t count_ = 0;
  double load_sum_ = 0;
  double average_sum_ = 0;
  int32_t replicas_max_ = 0;
  int32_t serving_min_ = std::numeric_limits<int32_t>::max();
};

}  // namespace

absl::StatusOr<SimulationRun> Simulate(const SimulationOptions& options,
                                       const std::vector<InFlight>& load_per_second) {
  const AutoscalingSettings& settings = options.settings;
  SimulationRun run;
  v1::SimulationResult& result = run.result;
  *result.mutable_autoscaling_settings() = SettingsToProto(settings);
  result.set_startup_seconds(options.startup_seconds);
  v1::SimulationMeters& meters = *result.mutable_meters();

  const absl::Time start = absl::UnixEpoch();
  DeciderOptions decider_options;
  decider_options.report_staleness_seconds = options.report_staleness_seconds;
  // The chainlet starts as the agent starts one it has no stored decision for: at
  // min_replica, holding scale-downs until it has seen one window of reports.
  DeciderStart decider_start;
  decider_start.replicas = settings.min_replica;
  decider_start.warm_up = true;
  ChainletDecider decider(settings, decider_options, decider_start, start);
  ReplicaPool pool;
  pool.Resize(settings.min_replica, std::numeric_limits<int32_t>::min(), 0);
  SeriesBuilder series(static_cast<int64_t>(load_per_second.size()), options.max_points,
                       result.mutable_series());
  int32_t peak = settings.min_replica;

  auto record = [&](int64_t second, bool cold_start, const ScaleDecision& d) {
    if (options.record_ticks) run.ticks.push_back({second, cold_start, d});
    if (d.status != DecisionStatus::kAccepted) return;
    const bool up = d.desired_replicas > d.previous_replicas;
    meters.set_scale_events(meters.scale_events() + 1);
    if (up) {
      meters.set_scale_ups(meters.scale_ups() + 1);
    } else {
      meters.set_scale_downs(meters.scale_downs() + 1);
    }
    if (d.previous_replicas == 0 && up) meters.set_cold_starts(meters.cold_starts() + 1);
    if (result.events_size() >= options.max_events) {
      result.set_events_omitted(result.events_omitted() + 1);
      return;
    }
    v1::ScaleEvent* event = result.add_events();
    event->set_second(static_cast<int32_t>(second));
    event->set_from_replicas(d.previous_replicas);
    event->set_to_replicas(d.desired_replicas);
    event->set_cold_start(cold_start);
    event->set_reason(DescribeDecision(d, settings));
  };

  for (size_t i = 0; i < load_per_second.size(); ++i) {
    const int64_t second = static_cast<int64_t>(i);
    const absl::Time now = start + absl::Seconds(second);
    const InFlight& load = load_per_second[i];
    if (load.requests < 0 || load.requests > kMaxReportRequestMillis / 1000 ||
        load.tokens < 0 || load.tokens > kMaxReportTokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("second ", second, ": ", load.requests, " requests and ", load.tokens,
                       " tokens in flight is more than one load report may carry"));
    }
    LoadSample sample{load.requests * 1000, std::nullopt};
    if (settings.target_in_flight_tokens.has_value()) sample.tokens = load.tokens;
    if (absl::Status s = decider.Report("load", sample, now); !s.ok()) return s;
    // As in the agent: the cold-start path decides when the report arrives, the tick at
    // the second's decision time; both land on the simulated second.
    if (decider.ColdStartDue(sample)) record(second, true, decider.DecideColdStart(now));
    const ScaleDecision& d = decider.Decide(now);
    record(second, false, d);

    const int32_t replicas = d.desired_replicas;
    pool.Resize(replicas, second, options.startup_seconds);
    const int32_t serving = pool.ServingAt(second);
    const double requests = static_cast<double>(load.requests);
    const double per_replica = settings.concurrency_target;
    meters.set_seconds(meters.seconds() + 1);
    meters.set_replica_seconds(meters.replica_seconds() + replicas);
    meters.set_idle_replica_seconds(meters.idle_replica_seconds() +
                                    std::max(0.0, replicas - requests / per_replica));
    meters.set_queued_request_seconds(meters.queued_request_seconds() +
                                      std::max(0.0, requests - serving * per_replica));
    meters.set_request_seconds(meters.request_seconds() + requests);
    if (d.capped) meters.set_capped_seconds(meters.capped_seconds() + 1);
    peak = std::max(peak, replicas);
    series.Add(requests, d.avg_in_flight_requests, replicas, serving);
  }
  series.Flush();
  meters.set_peak_replicas(peak);
  return run;
}

void MarkFrontier(std::vector<v1::SweepPoint>& points) {
  for (v1::SweepPoint& p : points) {
    const double cost = p.meters().replica_seconds();
    const double queued = p.meters().queued_request_seconds();
    const bool dominated =
        std::any_of(points.begin(), points.end(), [&](const v1::SweepPoint& q) {
          const double q_cost = q.meters().replica_seconds();
          const double q_queued = q.meters().queued_request_seconds();
          return q_cost <= cost && q_queued <= queued && (q_cost < cost || q_queued < queued);
        });
    p.set_on_frontier(!dominated);
  }
}

absl::StatusOr<std::vector<v1::SweepPoint>> Sweep(const SimulationOptions& options,
                                                  const std::vector<InFlight>& load,
                                                  const std::vector<SweepAxis>& axes,
                                                  const SettingsLimits& limits) {
  const google::protobuf::Descriptor* descriptor = v1::AutoscalingSettings::descriptor();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  size_t combinations = 1;
  for (size_t a = 0; a < axes.size(); ++a) {
    const google::protobuf::FieldDescriptor* field = descriptor->FindFieldByName(axes[a].field);
    if (field == nullptr || field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_INT32) {
      return InvalidArgumentWithViolations(
          {{absl::StrCat("sweep[", a, "].field"),
            absl::StrCat("\"", axes[a].field,
                         "\" is not a setting; use a field of autoscaling_settings such as "
                         "scale_down_delay")}});
    }
    if (axes[a].values.empty()) {
      return InvalidArgumentWithViolations(
          {{absl::StrCat("sweep[", a, "].values"), "must list at least one value"}});
    }
    fields.push_back(field);
    combinations *= axes[a].values.size();
  }
  SimulationOptions combination = options;
  combination.max_points = 0;
  combination.max_events = 0;
  combination.record_ticks = false;
  std::vector<v1::SweepPoint> points;
  points.reserve(combinations);
  for (size_t n = 0; n < combinations; ++n) {
    // n in mixed radix, the last axis varying fastest.
    v1::AutoscalingSettings update;
    size_t rest = n;
    for (size_t a = axes.size(); a-- > 0;) {
      const size_t radix = axes[a].values.size();
      update.GetReflection()->SetInt32(&update, fields[a], axes[a].values[rest % radix]);
      rest /= radix;
    }
    absl::StatusOr<AutoscalingSettings> settings =
        MergeAndValidate(options.settings, UpdateFromProto(update), kProductionEnvironment,
                         limits, "autoscaling_settings.");
    if (!settings.ok()) {
      std::vector<FieldViolation> violations = FieldViolationsOf(settings.status());
      for (FieldViolation& v : violations) {
        v.description = absl::StrCat("in the sweep combination {", update.ShortDebugString(),
                                     "}: ", v.description);
      }
      return InvalidArgumentWithViolations(violations);
    }
    combination.settings = *settings;
    absl::StatusOr<SimulationRun> run = Simulate(combination, load);
    if (!run.ok()) return run.status();
    v1::SweepPoint& point = points.emplace_back();
    *point.mutable_autoscaling_settings() = SettingsToProto(*settings);
    *point.mutable_meters() = run->result.meters();
  }
  MarkFrontier(points);
  return points;
}

}  // namespace chainscale
