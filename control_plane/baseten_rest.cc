#include "control_plane/baseten_rest.h"

#include <string>

namespace chainscale {
namespace {

// Baseten's instance_type_id default (CreateChainEnvironmentRequestV1).
constexpr char kDefaultInstanceTypeId[] = "1x2";

google::protobuf::Value Null() {
  google::protobuf::Value value;
  value.set_null_value(google::protobuf::NULL_VALUE);
  return value;
}

// PromotionSettingsV1's defaults, as Baseten documents them.
google::protobuf::Struct DefaultPromotionSettings() {
  google::protobuf::Struct settings;
  auto& fields = *settings.mutable_fields();
  fields["redeploy_on_promotion"].set_bool_value(false);
  fields["rolling_deploy"].set_bool_value(false);
  fields["rolling_deploy_config"] = Null();
  fields["ramp_up_while_promoting"].set_bool_value(false);
  fields["ramp_up_duration_seconds"].set_number_value(600);
  return settings;
}

v1::AutoscalingSettingsV1 SettingsToBaseten(const v1::AutoscalingSettings& s) {
  v1::AutoscalingSettingsV1 out;
  out.set_min_replica(s.min_replica());
  out.set_max_replica(s.max_replica());
  out.set_autoscaling_window(s.autoscaling_window());
  out.set_scale_down_delay(s.scale_down_delay());
  out.set_concurrency_target(s.concurrency_target());
  out.set_target_utilization_percentage(s.target_utilization_percentage());
  if (s.has_target_in_flight_tokens()) {
    out.mutable_target_in_flight_tokens()->set_number_value(s.target_in_flight_tokens());
  } else {
    *out.mutable_target_in_flight_tokens() = Null();
  }
  out.set_max_scale_down_rate(s.max_scale_down_rate());
  return out;
}

v1::InstanceTypeV1 InstanceType(const std::string& id) {
  v1::InstanceTypeV1 type;
  type.set_id(id.empty() ? kDefaultInstanceTypeId : id);
  type.set_name(type.id());
  *type.mutable_memory_limit_mib() = Null();
  *type.mutable_millicpu_limit() = Null();
  *type.mutable_gpu_count() = Null();
  *type.mutable_gpu_type() = Null();
  *type.mutable_gpu_memory_limit_mib() = Null();
  return type;
}

}  // namespace

v1::CreateEnvironmentRequest CreateEnvironmentFromBaseten(
    absl::string_view chain_id, const v1::CreateChainEnvironmentRequestV1& body) {
  v1::CreateEnvironmentRequest request;
  request.set_chain_id(std::string(chain_id));
  request.set_env_name(body.name());
  if (body.has_promotion_settings()) *request.mutable_promotion_settings() = body.promotion_settings();
  for (const v1::ChainletEnvironmentSettingsRequestV1& chainlet : body.chainlet_settings()) {
    auto* initial = request.add_initial_settings();
    initial->set_chainlet_name(chainlet.chainlet_name());
    // Baseten's autoscaling_settings may be null: the defaults.
    *initial->mutable_autoscaling_settings() = chainlet.autoscaling_settings();
    if (!chainlet.instance_type_id().empty()) {
      (*request.mutable_instance_type_ids())[chainlet.chainlet_name()] =
          chainlet.instance_type_id();
    }
  }
  return request;
}

v1::ChainEnvironmentV1 ChainEnvironmentToBaseten(const v1::ChainEnvironment& env) {
  v1::ChainEnvironmentV1 out;
  out.set_name(env.env_name());
  *out.mutable_created_at() = env.create_time();
  out.set_chain_id(env.chain_id());
  *out.mutable_promotion_settings() = DefaultPromotionSettings();
  for (const auto& [key, value] : env.promotion_settings().fields()) {
    (*out.mutable_promotion_settings()->mutable_fields())[key] = value;
  }
  for (const v1::ChainletEnvironmentSettings& chainlet : env.chainlet_settings()) {
    v1::ChainletEnvironmentSettingsV1* settings = out.add_chainlet_settings();
    settings->set_chainlet_name(chainlet.chainlet_name());
    *settings->mutable_autoscaling_settings() = SettingsToBaseten(chainlet.autoscaling_settings());
    *settings->mutable_instance_type() = InstanceType(chainlet.instance_type_id());
    settings->set_revision(chainlet.revision());
    if (chainlet.has_decision()) *settings->mutable_decision() = chainlet.decision();
  }
  *out.mutable_current_deployment() = Null();
  out.set_revision(env.revision());
  return out;
}

v1::ChainV1 ChainToBaseten(const v1::Chain& chain) {
  v1::ChainV1 out;
  out.set_id(chain.chain_id());
  *out.mutable_created_at() = chain.create_time();
  out.set_name(chain.name());
  out.set_deployments_count(0);
  return out;
}

}  // namespace chainscale
