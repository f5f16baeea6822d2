#include "common/chainlet_decider.h"

namespace chainscale {

ChainletDecider::ChainletDecider(const AutoscalingSettings& settings,
                                 const DeciderOptions& options, const DeciderStart& start,
                                 absl::Time now)
    : settings_(settings),
      window_(settings.autoscaling_window, options.report_staleness_seconds,
              options.max_sources),
      scaler_(ScaleState{start.replicas, start.scale_down_pending_since},
              options.delay_tolerance),
      warm_up_from_live_seconds_(start.warm_up ? 0 : -1) {
  last_.desired_replicas = last_.previous_replicas = start.replicas;
  last_.scale_down_pending_since = start.scale_down_pending_since;
  last_.decided_at = now;
  last_.warming_up = start.warm_up;
}

absl::Status ChainletDecider::Report(absl::string_view source_id, const LoadSample& sample,
                                     absl::Time now) {
  return window_.Report(source_id, sample, now);
}

const ScaleDecision& ChainletDecider::Decide(absl::Time now) {
  if (window_.window_seconds() != settings_.autoscaling_window) {
    window_.Resize(settings_.autoscaling_window);
  }
  WindowLoad load = window_.Average(now);
  // Before any second of reports has completed, the second in progress is all there is
  // (as on the cold-start path); from the first completed second on it never counts.
  if (load.seconds == 0 && window_.has_live_source()) load = window_.AverageWithCurrent(now);
  return DecideWith(load, now);
}

const ScaleDecision& ChainletDecider::DecideColdStart(absl::Time now) {
  if (window_.window_seconds() != settings_.autoscaling_window) {
    window_.Resize(settings_.autoscaling_window);
  }
  return DecideWith(window_.AverageWithCurrent(now), now);
}

const ScaleDecision& ChainletDecider::DecideWith(const WindowLoad& load, absl::Time now) {
  if (warm_up_from_live_seconds_ >= 0 &&
      window_.live_seconds() - warm_up_from_live_seconds_ >= settings_.autoscaling_window) {
    warm_up_from_live_seconds_ = -1;
  }
  ScaleInputs inputs;
  inputs.load = load;
  inputs.live_source = window_.has_live_source();
  inputs.warming_up = warm_up_from_live_seconds_ >= 0;
  last_ = scaler_.Decide(settings_, inputs, now);
  return last_;
}

}  // namespace chainscale
