// ChainletDecider: everything that decides one chainlet's replica count, as both the
// agent's DecisionLoop and chainscale-simulate run it (DESIGN §7: the same code on the same
// inputs gives the same decisions). It owns the chainlet's load window and scaler, applies
// the cold-start path, and tracks warm-up as seconds with a live source (DESIGN §6-§7).
// Time always comes from the caller.
#ifndef CHAINSCALE_COMMON_CHAINLET_DECIDER_H_
#define CHAINSCALE_COMMON_CHAINLET_DECIDER_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/load_window.h"
#include "common/replica_scaler.h"
#include "common/settings.h"

namespace chainscale {

struct DeciderOptions {
  int32_t report_staleness_seconds = 10;
  int32_t max_sources = kDefaultMaxSources;
  // Half the decision interval: how much earlier than scale_down_delay a step may come.
  absl::Duration delay_tolerance = absl::Milliseconds(500);
};

// Where a decider starts: a chainlet new to the system starts at min_replica and needs no
// warm-up; one an agent starts or takes over starts from the stored decision (if any) and
// holds scale-downs until it has seen one window of seconds with a live source.
struct DeciderStart {
  int32_t replicas = 0;
  std::optional<absl::Time> scale_down_pending_since;
  bool warm_up = false;
};

class ChainletDecider {
 public:
  ChainletDecider(const AutoscalingSettings& settings, const DeciderOptions& options,
                  const DeciderStart& start, absl::Time now);

  ChainletDecider(ChainletDecider&&) = default;
  ChainletDecider& operator=(ChainletDecider&&) = default;

  // Records one source's report. The caller validated the values; errors are the
  // window's (RESOURCE_EXHAUSTED beyond max_sources).
  absl::Status Report(absl::string_view source_id, const LoadSample& sample, absl::Time now);
  // True when `sample` should be decided at once rather than at the next tick: the
  // chainlet runs no replica and the sample carries load (the cold-start path).
  bool ColdStartDue(const LoadSample& sample) const {
    return scaler_.state().current_replicas == 0 &&
           (sample.request_millis > 0 || sample.tokens.value_or(0) > 0);
  }

  // Decides at a tick, from the completed seconds of the window (from the second in
  // progress while none has completed yet).
  const ScaleDecision& Decide(absl::Time now);
  // Decides on the cold-start path, counting the second in progress: at zero replicas it
  // is the only evidence there is.
  const ScaleDecision& DecideColdStart(absl::Time now);

  // Takes effect at the next decision.
  void set_settings(const AutoscalingSettings& settings) { settings_ = settings; }
  const AutoscalingSettings& settings() const { return settings_; }
  // The latest decision (before the first one: the starting point, status UNCHANGED).
  const ScaleDecision& last() const { return last_; }
  const LoadWindow& window() const { return window_; }
  int32_t replicas() const { return scaler_.state().current_replicas; }

 private:
  const ScaleDecision& DecideWith(const WindowLoad& load, absl::Time now);

  AutoscalingSettings settings_;
  LoadWindow window_;
  ReplicaScaler scaler_;
  ScaleDecision last_;
  // Live seconds of the window when warm-up began; -1 once warm-up is over (or never ran).
  int64_t warm_up_from_live_seconds_ = -1;
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_CHAINLET_DECIDER_H_
