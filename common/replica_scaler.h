// ReplicaScaler: the decision algorithm of DESIGN §7 for one chainlet. Given the
// chainlet's settings, its window load and the time, it decides the desired replica count:
// scale up at once, scale down only after scale_down_delay and by at most
// max_scale_down_rate per step, hold scale-downs during warm-up, hold the count while no
// source reports (silence is not zero), and keep the count inside [min_replica,
// max_replica] at all times.
//
// The scaler is pure: its decision depends only on its state and the arguments. The time
// comes from the caller, which owns the (injectable) clock, so that every chainlet of one
// tick is decided at the same instant and tests run without sleeping.
#ifndef CHAINSCALE_COMMON_REPLICA_SCALER_H_
#define CHAINSCALE_COMMON_REPLICA_SCALER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/load_window.h"
#include "common/settings.h"

namespace chainscale {

// What a decision did; mirrors chainscale.v1.ScalingDecision.Status.
enum class DecisionStatus {
  kAccepted,   // desired replicas changed
  kQueued,     // a scale-down is pending (delay or warm-up)
  kUnchanged,  // nothing to do
};

const char* DecisionStatusName(DecisionStatus status);

// Why the decision came out as it did; rendered into words by DescribeDecision.
enum class DecisionReason {
  kSteady,              // the load needs exactly the current count
  kScaleUp,             // the load needs more replicas
  kRaisedToMinReplica,  // min_replica is above the count the load needs
  kScaleDownPending,    // the load needs fewer; waiting for scale_down_delay
  kScaleDownStep,       // the delay passed; one capped step down
  kWarmUpHold,          // the delay passed but a whole window has not been observed yet
  kLoweredToMaxReplica, // max_replica was lowered below the count
  kNoReports,           // no source is live: the count holds (silence is not zero)
  kNoCompletedSecond,   // reports arrived but no second of them has completed yet
};

// The state a scaler carries from one decision to the next.
struct ScaleState {
  int32_t current_replicas = 0;
  // Set while the load asks for fewer replicas than current_replicas.
  std::optional<absl::Time> scale_down_pending_since;
};

// What a decision is made from besides the settings.
struct ScaleInputs {
  WindowLoad load;
  // Some source's value counts now. Without one a chainlet with replicas holds them.
  bool live_source = true;
  // Fewer than one window of live seconds observed since the agent started or took the
  // chainlet over: scale-down steps are held.
  bool warming_up = false;
};

struct ScaleDecision {
  int32_t desired_replicas = 0;
  int32_t previous_replicas = 0;
  DecisionStatus status = DecisionStatus::kUnchanged;
  DecisionReason reason = DecisionReason::kSteady;
  // Replicas the load alone asks for, before the bounds are applied.
  int32_t replicas_for_load = 0;
  // The load asks for more than max_replica: requests queue.
  bool capped = false;
  bool warming_up = false;
  bool no_reports = false;  // held because no source is live
  std::optional<absl::Time> scale_down_pending_since;
  absl::Time decided_at;
  double avg_in_flight_requests = 0;
  std::optional<double> avg_in_flight_tokens;
};

class ReplicaScaler {
 public:
  // `delay_tolerance` is how much earlier than scale_down_delay a step may come: half a
  // decision interval, so that a step due at tick k happens at tick k even when ticks
  // jitter around their schedule.
  explicit ReplicaScaler(ScaleState initial = {},
                         absl::Duration delay_tolerance = absl::ZeroDuration())
      : state_(initial), delay_tolerance_(delay_tolerance) {}

  // Decides at `now` and updates the state. Call once per tick, and at once when a
  // chainlet at zero replicas receives load (the cold-start path).
  ScaleDecision Decide(const AutoscalingSettings& settings, const ScaleInputs& inputs,
                       absl::Time now);

  const ScaleState& state() const { return state_; }

 private:
  ScaleState state_;
  absl::Duration delay_tolerance_;
};

// Replicas `load` needs under `settings`, before min/max: the larger of
// ceil(avg requests / (concurrency_target × utilization)) and, when
// target_in_flight_tokens is set, ceil(avg tokens / target_in_flight_tokens). Exact
// integer arithmetic: 25 requests at capacity 7 need 4, 7 need 1.
int32_t ReplicasForLoad(const AutoscalingSettings& settings, const WindowLoad& load);

// One sentence saying why `decision` came out as it did, for logs and the API's `reason`.
std::string DescribeDecision(const ScaleDecision& decision,
                             const AutoscalingSettings& settings);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_REPLICA_SCALER_H_
