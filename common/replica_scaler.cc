#include "common/replica_scaler.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace chainscale {
namespace {

// ceil(numerator / denominator) for numerator ≥ 0, denominator > 0, saturated to int32.
int32_t CeilDivSaturated(__int128 numerator, __int128 denominator) {
  const __int128 quotient = (numerator + denominator - 1) / denominator;
  return static_cast<int32_t>(
      std::min<__int128>(quotient, std::numeric_limits<int32_t>::max()));
}

std::string LoadText(const ScaleDecision& d, const AutoscalingSettings& s) {
  std::string text = absl::StrFormat(
      "average %.2f in-flight requests at %.2f per replica", d.avg_in_flight_requests,
      static_cast<double>(ReplicaCapacityMilli(s)) / 1000.0);
  if (s.target_in_flight_tokens.has_value()) {
    absl::StrAppendFormat(&text, " and %.0f in-flight tokens at %d per replica",
                          d.avg_in_flight_tokens.value_or(0.0), *s.target_in_flight_tokens);
  }
  absl::StrAppend(&text, " needs ", d.replicas_for_load);
  return text;
}

}  // namespace

const char* DecisionStatusName(DecisionStatus status) {
  switch (status) {
    case DecisionStatus::kAccepted:
      return "ACCEPTED";
    case DecisionStatus::kQueued:
      return "QUEUED";
    case DecisionStatus::kUnchanged:
      return "UNCHANGED";
  }
  return "UNKNOWN";
}

int32_t ReplicasForLoad(const AutoscalingSettings& settings, const WindowLoad& load) {
  if (load.seconds <= 0) return 0;
  int32_t replicas = CeilDivSaturated(
      load.request_millis_sum, __int128{ReplicaCapacityMilli(settings)} * load.seconds);
  if (settings.target_in_flight_tokens.has_value() && load.has_tokens) {
    replicas = std::max(replicas,
                        CeilDivSaturated(load.token_sum,
                                         __int128{*settings.target_in_flight_tokens} *
                                             load.seconds));
  }
  return replicas;
}

ScaleDecision ReplicaScaler::Decide(const AutoscalingSettings& settings,
                                    const ScaleInputs& inputs, absl::Time now) {
  const WindowLoad& load = inputs.load;
  ScaleDecision d;
  d.previous_replicas = state_.current_replicas;
  d.decided_at = now;
  d.avg_in_flight_requests = load.MeanRequests();
  if (load.has_tokens) d.avg_in_flight_tokens = load.MeanTokens();
  d.replicas_for_load = ReplicasForLoad(settings, load);
  d.capped = d.replicas_for_load > settings.max_replica;
  d.warming_up = inputs.warming_up;
  // Settings reach the scaler validated (min ≤ max); the min() keeps clamp defined even
  // if they were not.
  const int32_t min_replica = std::min(settings.min_replica, settings.max_replica);
  int32_t current = state_.current_replicas;
  std::optional<absl::Time>& pending = state_.scale_down_pending_since;
  // Without evidence the count holds: no live source (a broken reporter must not drain a
  // busy fleet), or no completed second of reports yet. Bounds still apply.
  const bool no_reports = !inputs.live_source && current > 0;
  const bool no_data = inputs.live_source && load.seconds == 0;
  const int32_t target =
      no_reports || no_data ? std::clamp(current, min_replica, settings.max_replica)
                            : std::clamp(d.replicas_for_load, min_replica, settings.max_replica);

  if (current > settings.max_replica) {
    // Bounds are hard: a lowered max_replica moves the count at once. A scale-down that
    // was already pending keeps its start time; no further step happens in this tick.
    // (A raised min_replica moves the count through the scale-up branch below, since
    // target ≥ min_replica.)
    current = settings.max_replica;
    d.reason = DecisionReason::kLoweredToMaxReplica;
    if (target >= current) {
      pending.reset();
    } else if (!pending.has_value()) {
      pending = now;
    }
  } else if (target > current) {
    d.reason = target > d.replicas_for_load || no_reports || no_data
                   ? DecisionReason::kRaisedToMinReplica
                   : DecisionReason::kScaleUp;
    current = target;
    pending.reset();
  } else if (target == current) {
    d.reason = no_reports ? DecisionReason::kNoReports
               : no_data  ? DecisionReason::kNoCompletedSecond
                          : DecisionReason::kSteady;
    pending.reset();
  } else {
    // The timer starts in the tick that first sees the lower target, and that same tick
    // steps when the delay is 0.
    if (!pending.has_value()) pending = now;
    if (now - *pending + delay_tolerance_ < absl::Seconds(settings.scale_down_delay)) {
      d.reason = DecisionReason::kScaleDownPending;
    } else if (d.warming_up) {
      d.reason = DecisionReason::kWarmUpHold;
    } else {
      const int32_t rate_cap = static_cast<int32_t>(
          int64_t{current} * settings.max_scale_down_rate / 100);
      const int32_t step = std::min(current - target, std::max(1, rate_cap));
      current -= step;
      d.reason = DecisionReason::kScaleDownStep;
      if (current > target) {
        pending = now;
      } else {
        pending.reset();
      }
    }
  }

  d.no_reports = no_reports;
  state_.current_replicas = current;
  d.desired_replicas = current;
  d.scale_down_pending_since = pending;
  if (current != d.previous_replicas) {
    d.status = DecisionStatus::kAccepted;
  } else if (target < current) {
    d.status = DecisionStatus::kQueued;
  } else {
    d.status = DecisionStatus::kUnchanged;
  }
  return d;
}

std::string DescribeDecision(const ScaleDecision& d, const AutoscalingSettings& s) {
  std::string text;
  switch (d.reason) {
    case DecisionReason::kSteady:
      text = absl::StrCat("holding ", d.desired_replicas, ": ", LoadText(d, s));
      break;
    case DecisionReason::kScaleUp:
      text = absl::StrCat("scaled up from ", d.previous_replicas, " to ", d.desired_replicas,
                          ": ", LoadText(d, s));
      break;
    case DecisionReason::kRaisedToMinReplica:
      text = absl::StrCat("raised from ", d.previous_replicas, " to min_replica ",
                          d.desired_replicas, ": ", LoadText(d, s));
      break;
    case DecisionReason::kLoweredToMaxReplica:
      text = absl::StrCat("lowered from ", d.previous_replicas, " to max_replica ",
                          d.desired_replicas, ": ", LoadText(d, s));
      break;
    case DecisionReason::kScaleDownPending:
      text = absl::StrCat("holding ", d.desired_replicas, " for scale_down_delay ",
                          s.scale_down_delay, "s before stepping down: ", LoadText(d, s));
      break;
    case DecisionReason::kScaleDownStep:
      text = absl::StrCat("scaled down from ", d.previous_replicas, " to ", d.desired_replicas,
                          " (at most ", s.max_scale_down_rate, "% per step): ", LoadText(d, s));
      break;
    case DecisionReason::kWarmUpHold:
      text = absl::StrCat("holding ", d.desired_replicas, " until a whole ",
                          s.autoscaling_window, "s window of reports has been observed: ",
                          LoadText(d, s));
      break;
    case DecisionReason::kNoReports:
      text = absl::StrCat("holding ", d.desired_replicas,
                          ": no source has reported within report_staleness, and silence "
                          "is not taken for zero load");
      break;
    case DecisionReason::kNoCompletedSecond:
      text = absl::StrCat("holding ", d.desired_replicas,
                          ": waiting for the first whole second of reports");
      break;
  }
  if (d.capped) {
    absl::StrAppend(&text, "; capped at max_replica ", s.max_replica, ", requests queue");
  }
  return text;
}

}  // namespace chainscale
