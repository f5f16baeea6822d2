// Management: the management API's core as both front doors (the gRPC service and the
// REST gateway) call it. Registry calls pass through; an update is committed by the
// Registry and then waits, up to the ack timeout, for every agent serving its
// environment to apply it, which decides ACCEPTED or QUEUED.
#ifndef CHAINSCALE_CONTROL_PLANE_MANAGEMENT_H_
#define CHAINSCALE_CONTROL_PLANE_MANAGEMENT_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "chainscale/v1/control_plane.pb.h"
#include "control_plane/registry.h"
#include "control_plane/sync_hub.h"

namespace chainscale {

class Management {
 public:
  // `registry`, `hub` and `coordinator` (null when ownership is off) must outlive this.
  Management(Registry* registry, SyncHub* hub, const Coordinator* coordinator,
             absl::Duration ack_timeout)
      : registry_(registry), hub_(hub), coordinator_(coordinator), ack_timeout_(ack_timeout) {}

  Registry& registry() { return *registry_; }

  // The environment's settings and decisions, and which agent owns it now.
  absl::StatusOr<v1::ChainEnvironment> GetChainEnvironment(const std::string& chain_id,
                                                           const std::string& env_name);

  // A partial update answered as Baseten does: UNCHANGED when nothing changed; otherwise
  // ACCEPTED once every agent serving the environment applied it within the ack timeout,
  // QUEUED when none is connected or one did not in time (the change is stored either
  // way). The message says what changed and why the status is what it is.
  absl::StatusOr<v1::UpdateChainletEnvironmentAutoscalingSettingsResponse> UpdateSettings(
      const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest& request);

 private:
  Registry* const registry_;
  SyncHub* const hub_;
  const Coordinator* const coordinator_;
  const absl::Duration ack_timeout_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_MANAGEMENT_H_
