#include "common/settings.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_violations.h"

namespace chainscale {
namespace {

// The first problem found for one field, or none.
void CheckRange(absl::string_view prefix, absl::string_view field, int64_t value, int64_t lo,
                int64_t hi, absl::string_view unit, std::vector<FieldViolation>* out) {
  if (value >= lo && value <= hi) return;
  out->push_back({absl::StrCat(prefix, field),
                  absl::StrCat("must be between ", lo, " and ", hi, unit, ", got ", value)});
}

void CheckAtLeast(absl::string_view prefix, absl::string_view field, int64_t value, int64_t lo,
                  std::vector<FieldViolation>* out) {
  if (value >= lo) return;
  out->push_back(
      {absl::StrCat(prefix, field), absl::StrCat("must be at least ", lo, ", got ", value)});
}

// Every problem of `s`. A min_replica above max_replica is reported against
// `bounds_field`, the bound the caller changed.
std::vector<FieldViolation> Violations(const AutoscalingSettings& s, absl::string_view env_name,
                                       const SettingsLimits& limits, absl::string_view prefix,
                                       absl::string_view bounds_field) {
  std::vector<FieldViolation> out;
  if (HasFixedReplicaBounds(env_name)) {
    // Pinned bounds: the only problem a bound can have is differing from its pin.
    const AutoscalingSettings fixed = DefaultSettings(env_name);
    if (s.min_replica != fixed.min_replica) {
      out.push_back({absl::StrCat(prefix, "min_replica"),
                     absl::StrCat("is fixed at ", fixed.min_replica, " in ", env_name,
                                  " environments, got ", s.min_replica)});
    }
    if (s.max_replica != fixed.max_replica) {
      out.push_back({absl::StrCat(prefix, "max_replica"),
                     absl::StrCat("is fixed at ", fixed.max_replica, " in ", env_name,
                                  " environments, got ", s.max_replica)});
    }
  } else {
    CheckAtLeast(prefix, "min_replica", s.min_replica, 0, &out);
    CheckRange(prefix, "max_replica", s.max_replica, 1, limits.max_replica_limit, "", &out);
    if (s.min_replica >= 0 && s.max_replica >= 1 && s.min_replica > s.max_replica) {
      out.push_back({absl::StrCat(prefix, bounds_field),
                     absl::StrCat("min_replica (", s.min_replica,
                                  ") must not exceed max_replica (", s.max_replica, ")")});
    }
  }
  CheckRange(prefix, "autoscaling_window", s.autoscaling_window, 10, 3600, " seconds", &out);
  CheckRange(prefix, "scale_down_delay", s.scale_down_delay, 0, 3600, " seconds", &out);
  CheckAtLeast(prefix, "concurrency_target", s.concurrency_target, 1, &out);
  CheckRange(prefix, "target_utilization_percentage", s.target_utilization_percentage, 1,
             100, " percent", &out);
  if (s.target_in_flight_tokens.has_value()) {
    CheckAtLeast(prefix, "target_in_flight_tokens", *s.target_in_flight_tokens, 1, &out);
  }
  CheckRange(prefix, "max_scale_down_rate", s.max_scale_down_rate, 1, 50, " percent", &out);
  return out;
}

void DescribeField(absl::string_view name, int64_t before, int64_t after,
                   std::vector<std::string>* out) {
  if (before != after) out->push_back(absl::StrCat(name, " from ", before, " to ", after));
}

std::string TokensText(const std::optional<int32_t>& tokens) {
  return tokens.has_value() ? absl::StrCat(*tokens) : "unset";
}

}  // namespace

bool operator==(const AutoscalingSettings& a, const AutoscalingSettings& b) {
  return a.min_replica == b.min_replica && a.max_replica == b.max_replica &&
         a.autoscaling_window == b.autoscaling_window &&
         a.scale_down_delay == b.scale_down_delay &&
         a.concurrency_target == b.concurrency_target &&
         a.target_utilization_percentage == b.target_utilization_percentage &&
         a.target_in_flight_tokens == b.target_in_flight_tokens &&
         a.max_scale_down_rate == b.max_scale_down_rate;
}

AutoscalingSettings DefaultSettings(absl::string_view env_name) {
  // The general defaults already equal the development pins (0 and 1); the environment
  // is taken so that a future divergence has one place to live.
  (void)env_name;
  return AutoscalingSettings{};
}

bool HasFixedReplicaBounds(absl::string_view env_name) {
  return env_name == kDevelopmentEnvironment;
}

AutoscalingSettings Merge(const AutoscalingSettings& stored, const SettingsUpdate& update) {
  AutoscalingSettings merged = stored;
  if (update.min_replica) merged.min_replica = *update.min_replica;
  if (update.max_replica) merged.max_replica = *update.max_replica;
  if (update.autoscaling_window) merged.autoscaling_window = *update.autoscaling_window;
  if (update.scale_down_delay) merged.scale_down_delay = *update.scale_down_delay;
  if (update.concurrency_target) merged.concurrency_target = *update.concurrency_target;
  if (update.target_utilization_percentage) {
    merged.target_utilization_percentage = *update.target_utilization_percentage;
  }
  if (update.target_in_flight_tokens) {
    merged.target_in_flight_tokens = *update.target_in_flight_tokens;
  }
  if (update.max_scale_down_rate) merged.max_scale_down_rate = *update.max_scale_down_rate;
  return merged;
}

absl::StatusOr<AutoscalingSettings> MergeAndValidate(const AutoscalingSettings& stored,
                                                     const SettingsUpdate& update,
                                                     absl::string_view env_name,
                                                     const SettingsLimits& limits,
                                                     absl::string_view field_prefix) {
  const AutoscalingSettings merged = Merge(stored, update);
  // Blame the bound the caller touched; when both or neither changed, min_replica.
  const absl::string_view bounds_field =
      (update.max_replica && !update.min_replica) ? "max_replica" : "min_replica";
  std::vector<FieldViolation> violations =
      Violations(merged, env_name, limits, field_prefix, bounds_field);
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);
  return merged;
}

absl::Status Validate(const AutoscalingSettings& settings, absl::string_view env_name,
                      const SettingsLimits& limits, absl::string_view field_prefix) {
  std::vector<FieldViolation> violations =
      Violations(settings, env_name, limits, field_prefix, "min_replica");
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);
  return absl::OkStatus();
}

int64_t ReplicaCapacityMilli(const AutoscalingSettings& settings) {
  return int64_t{settings.concurrency_target} * settings.target_utilization_percentage * 10;
}

namespace {

// Each setting by name: its field in AutoscalingSettings and in SettingsUpdate.
template <typename Visit>
bool VisitField(absl::string_view field, Visit visit) {
  if (field == "min_replica") return visit(&AutoscalingSettings::min_replica, &SettingsUpdate::min_replica);
  if (field == "max_replica") return visit(&AutoscalingSettings::max_replica, &SettingsUpdate::max_replica);
  if (field == "autoscaling_window") {
    return visit(&AutoscalingSettings::autoscaling_window, &SettingsUpdate::autoscaling_window);
  }
  if (field == "scale_down_delay") {
    return visit(&AutoscalingSettings::scale_down_delay, &SettingsUpdate::scale_down_delay);
  }
  if (field == "concurrency_target") {
    return visit(&AutoscalingSettings::concurrency_target, &SettingsUpdate::concurrency_target);
  }
  if (field == "target_utilization_percentage") {
    return visit(&AutoscalingSettings::target_utilization_percentage,
                 &SettingsUpdate::target_utilization_percentage);
  }
  if (field == "target_in_flight_tokens") {
    return visit(&AutoscalingSettings::target_in_flight_tokens,
                 &SettingsUpdate::target_in_flight_tokens);
  }
  if (field == "max_scale_down_rate") {
    return visit(&AutoscalingSettings::max_scale_down_rate, &SettingsUpdate::max_scale_down_rate);
  }
  return false;
}

}  // namespace

bool ResetField(absl::string_view field, absl::string_view env_name,
                AutoscalingSettings* settings) {
  const AutoscalingSettings defaults = DefaultSettings(env_name);
  return VisitField(field, [&](auto setting, auto) {
    settings->*setting = defaults.*setting;
    return true;
  });
}

bool IsSettingName(absl::string_view field) {
  return VisitField(field, [](auto, auto) { return true; });
}

bool UpdateSets(const SettingsUpdate& update, absl::string_view field) {
  return VisitField(field, [&](auto, auto member) { return (update.*member).has_value(); });
}

std::string DescribeChanges(const AutoscalingSettings& before,
                            const AutoscalingSettings& after) {
  std::vector<std::string> parts;
  DescribeField("min_replica", before.min_replica, after.min_replica, &parts);
  DescribeField("max_replica", before.max_replica, after.max_replica, &parts);
  DescribeField("autoscaling_window", before.autoscaling_window, after.autoscaling_window,
                &parts);
  DescribeField("scale_down_delay", before.scale_down_delay, after.scale_down_delay, &parts);
  DescribeField("concurrency_target", before.concurrency_target, after.concurrency_target,
                &parts);
  DescribeField("target_utilization_percentage", before.target_utilization_percentage,
                after.target_utilization_percentage, &parts);
  if (before.target_in_flight_tokens != after.target_in_flight_tokens) {
    parts.push_back(absl::StrCat("target_in_flight_tokens from ",
                                 TokensText(before.target_in_flight_tokens), " to ",
                                 TokensText(after.target_in_flight_tokens)));
  }
  DescribeField("max_scale_down_rate", before.max_scale_down_rate, after.max_scale_down_rate,
                &parts);
  return absl::StrJoin(parts, ", ");
}

}  // namespace chainscale
