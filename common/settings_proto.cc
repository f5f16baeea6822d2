#include "common/settings_proto.h"

namespace chainscale {
namespace {

std::optional<int32_t> Field(bool present, int32_t value) {
  return present ? std::optional<int32_t>(value) : std::nullopt;
}

}  // namespace

SettingsUpdate UpdateFromProto(const v1::AutoscalingSettings& p) {
  SettingsUpdate u;
  u.min_replica = Field(p.has_min_replica(), p.min_replica());
  u.max_replica = Field(p.has_max_replica(), p.max_replica());
  u.autoscaling_window = Field(p.has_autoscaling_window(), p.autoscaling_window());
  u.scale_down_delay = Field(p.has_scale_down_delay(), p.scale_down_delay());
  u.concurrency_target = Field(p.has_concurrency_target(), p.concurrency_target());
  u.target_utilization_percentage =
      Field(p.has_target_utilization_percentage(), p.target_utilization_percentage());
  u.target_in_flight_tokens =
      Field(p.has_target_in_flight_tokens(), p.target_in_flight_tokens());
  u.max_scale_down_rate = Field(p.has_max_scale_down_rate(), p.max_scale_down_rate());
  return u;
}

v1::AutoscalingSettings SettingsToProto(const AutoscalingSettings& s) {
  v1::AutoscalingSettings p;
  p.set_min_replica(s.min_replica);
  p.set_max_replica(s.max_replica);
  p.set_autoscaling_window(s.autoscaling_window);
  p.set_scale_down_delay(s.scale_down_delay);
  p.set_concurrency_target(s.concurrency_target);
  p.set_target_utilization_percentage(s.target_utilization_percentage);
  if (s.target_in_flight_tokens.has_value()) {
    p.set_target_in_flight_tokens(*s.target_in_flight_tokens);
  }
  p.set_max_scale_down_rate(s.max_scale_down_rate);
  return p;
}

v1::ScalingDecision::Status DecisionStatusToProto(DecisionStatus status) {
  switch (status) {
    case DecisionStatus::kAccepted:
      return v1::ScalingDecision::ACCEPTED;
    case DecisionStatus::kQueued:
      return v1::ScalingDecision::QUEUED;
    case DecisionStatus::kUnchanged:
      return v1::ScalingDecision::UNCHANGED;
  }
  return v1::ScalingDecision::STATUS_UNSPECIFIED;
}

}  // namespace chainscale
