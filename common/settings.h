// The autoscaling settings model: defaults, ranges, the development-environment rule, and
// merging a partial update into stored settings with validation of the merged result.
#ifndef CHAINSCALE_COMMON_SETTINGS_H_
#define CHAINSCALE_COMMON_SETTINGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace chainscale {

// Effective settings of one chainlet in one environment; every field has a value.
struct AutoscalingSettings {
  int32_t min_replica = 0;
  int32_t max_replica = 1;
  int32_t autoscaling_window = 60;  // seconds
  int32_t scale_down_delay = 900;   // seconds
  int32_t concurrency_target = 1;
  int32_t target_utilization_percentage = 70;
  std::optional<int32_t> target_in_flight_tokens;  // unset: token-based scaling off
  int32_t max_scale_down_rate = 50;                // percent

  friend bool operator==(const AutoscalingSettings& a, const AutoscalingSettings& b);
  friend bool operator!=(const AutoscalingSettings& a, const AutoscalingSettings& b) {
    return !(a == b);
  }
};

// A partial update: only the fields that hold a value change.
struct SettingsUpdate {
  std::optional<int32_t> min_replica;
  std::optional<int32_t> max_replica;
  std::optional<int32_t> autoscaling_window;
  std::optional<int32_t> scale_down_delay;
  std::optional<int32_t> concurrency_target;
  std::optional<int32_t> target_utilization_percentage;
  std::optional<int32_t> target_in_flight_tokens;
  std::optional<int32_t> max_scale_down_rate;
};

// Range limits that depend on the deployment rather than on the contract.
struct SettingsLimits {
  int32_t max_replica_limit = 1000;
};

inline constexpr absl::string_view kDevelopmentEnvironment = "development";
inline constexpr absl::string_view kProductionEnvironment = "production";

// Settings a chainlet starts with in `env_name`. Development environments are pinned to
// min_replica 0 and max_replica 1, which are also the general defaults.
AutoscalingSettings DefaultSettings(absl::string_view env_name);

// True for environments whose replica bounds are fixed (`development`).
bool HasFixedReplicaBounds(absl::string_view env_name);

// Returns `stored` with the fields present in `update` replaced. No validation.
AutoscalingSettings Merge(const AutoscalingSettings& stored, const SettingsUpdate& update);

// Returns `field` of `settings` to its default in `env_name` (target_in_flight_tokens:
// unset), as an update's reset_fields asks. False, and nothing changed, when `field` names
// no setting.
bool ResetField(absl::string_view field, absl::string_view env_name,
                AutoscalingSettings* settings);

// True when `field` names a setting (min_replica, ..., max_scale_down_rate).
bool IsSettingName(absl::string_view field);

// True when `update` sets the field named `field`.
bool UpdateSets(const SettingsUpdate& update, absl::string_view field);

// Merges `update` into `stored` and validates the result for `env_name`. On any problem,
// returns INVALID_ARGUMENT carrying one field violation per problem (see
// field_violations.h); field names are prefixed with `field_prefix` (for example
// "updates[2].autoscaling_settings.").
absl::StatusOr<AutoscalingSettings> MergeAndValidate(const AutoscalingSettings& stored,
                                                     const SettingsUpdate& update,
                                                     absl::string_view env_name,
                                                     const SettingsLimits& limits,
                                                     absl::string_view field_prefix = "");

// Validates complete settings (for example ones read back from storage).
absl::Status Validate(const AutoscalingSettings& settings, absl::string_view env_name,
                      const SettingsLimits& limits, absl::string_view field_prefix = "");

// Capacity of one replica in milli-requests: concurrency_target * utilization% * 10.
// Integral, so replica counts are computed exactly.
int64_t ReplicaCapacityMilli(const AutoscalingSettings& settings);

// One-line human-readable description of what differs between two settings, such as
// "min_replica from 0 to 2, scale_down_delay from 900 to 63"; empty when equal.
std::string DescribeChanges(const AutoscalingSettings& before,
                            const AutoscalingSettings& after);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_SETTINGS_H_
