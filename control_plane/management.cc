#include "control_plane/management.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace chainscale {

absl::StatusOr<v1::ChainEnvironment> Management::GetChainEnvironment(
    const std::string& chain_id, const std::string& env_name) {
  absl::StatusOr<v1::ChainEnvironment> env = registry_->GetChainEnvironment(chain_id, env_name);
  if (!env.ok() || coordinator_ == nullptr) return env;
  if (std::optional<v1::EnvironmentOwner> owner = coordinator_->OwnerOf(chain_id, env_name)) {
    *env->mutable_owner() = *std::move(owner);
  }
  return env;
}

absl::StatusOr<v1::UpdateChainletEnvironmentAutoscalingSettingsResponse>
Management::UpdateSettings(
    const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest& request) {
  using Response = v1::UpdateChainletEnvironmentAutoscalingSettingsResponse;
  absl::StatusOr<UpdateOutcome> outcome = registry_->UpdateSettings(request);
  if (!outcome.ok()) return outcome.status();
  Response response;
  if (!outcome->changed) {
    response.set_status(Response::UNCHANGED);
    response.set_message(outcome->message);
    return response;
  }
  const AckOutcome acks = hub_->WaitForAcks(request.chain_id(), request.env_name(),
                                            outcome->revision, absl::Now() + ack_timeout_);
  switch (acks) {
    case AckOutcome::kAllAcked:
      response.set_status(Response::ACCEPTED);
      response.set_message(absl::StrCat(outcome->message, " (applied by every agent)"));
      break;
    case AckOutcome::kNoSubscribers:
      response.set_status(Response::QUEUED);
      response.set_message(absl::StrCat(
          outcome->message, " (stored; no agent serving ", request.chain_id(), "/",
          request.env_name(), " is connected, agents apply it when they connect)"));
      break;
    case AckOutcome::kTimedOut:
      response.set_status(Response::QUEUED);
      response.set_message(absl::StrCat(
          outcome->message, " (stored; not every agent applied it within ",
          absl::FormatDuration(ack_timeout_), ", they apply it when they catch up)"));
      break;
  }
  return response;
}

}  // namespace chainscale
