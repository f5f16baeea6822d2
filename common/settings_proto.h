// Conversions between the settings model and its chainscale.v1 protobuf form.
#ifndef CHAINSCALE_COMMON_SETTINGS_PROTO_H_
#define CHAINSCALE_COMMON_SETTINGS_PROTO_H_

#include "chainscale/v1/settings.pb.h"
#include "common/replica_scaler.h"
#include "common/settings.h"

namespace chainscale {

// The fields present in `proto`, as a partial update.
SettingsUpdate UpdateFromProto(const v1::AutoscalingSettings& proto);

// Complete settings as a proto: every field present, target_in_flight_tokens only when
// set.
v1::AutoscalingSettings SettingsToProto(const AutoscalingSettings& settings);

v1::ScalingDecision::Status DecisionStatusToProto(DecisionStatus status);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_SETTINGS_PROTO_H_
