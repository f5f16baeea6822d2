// Pins the parts of the chainscale.v1 API that clients depend on by name: service and RPC
// names, JSON status names, and Baseten's request JSON (with nulls) parsing into
// "not passed".
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include "chainscale/v1/agent.pb.h"
#include "chainscale/v1/control_plane.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/baseten_samples.h"

namespace chainscale {
namespace {

using ::google::protobuf::util::JsonParseOptions;
using ::google::protobuf::util::JsonPrintOptions;
using ::google::protobuf::util::JsonStringToMessage;
using ::google::protobuf::util::MessageToJsonString;
using ::testing::ElementsAreArray;

std::vector<std::string> MethodNames(const google::protobuf::ServiceDescriptor* service) {
  std::vector<std::string> names;
  for (int i = 0; i < service->method_count(); ++i) names.push_back(service->method(i)->name());
  return names;
}

TEST(ApiContractTest, ServicesHaveTheFixedRpcNames) {
  // Reached through a message of each file, which also links the file in.
  const auto* control_plane =
      v1::CreateChainRequest::descriptor()->file()->FindServiceByName("ControlPlane");
  ASSERT_NE(control_plane, nullptr);
  EXPECT_EQ(control_plane->full_name(), "chainscale.v1.ControlPlane");
  EXPECT_THAT(MethodNames(control_plane),
              ElementsAreArray({"CreateChain", "GetChain", "ListChains", "DeleteChain",
                                "CreateEnvironment", "DeleteEnvironment", "GetChainEnvironment",
                                "UpdateChainletEnvironmentAutoscalingSettings", "Sync",
                                "WatchScalingDecisions"}));
  const auto* agent = v1::ReportLoadRequest::descriptor()->file()->FindServiceByName("Agent");
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(agent->full_name(), "chainscale.v1.Agent");
  EXPECT_THAT(MethodNames(agent),
              ElementsAreArray({"ReportLoad", "StreamLoad", "GetScalingDecision",
                                "ListScalingDecisions", "WatchScalingDecisions"}));
  EXPECT_TRUE(control_plane->FindMethodByName("Sync")->client_streaming());
  EXPECT_TRUE(control_plane->FindMethodByName("Sync")->server_streaming());
  EXPECT_TRUE(agent->FindMethodByName("WatchScalingDecisions")->server_streaming());
  EXPECT_TRUE(control_plane->FindMethodByName("WatchScalingDecisions")->server_streaming());
  EXPECT_FALSE(control_plane->FindMethodByName("WatchScalingDecisions")->client_streaming());
}

// The field names of DESIGN §10 that scripts and clients use, per message.
TEST(ApiContractTest, MessagesHaveTheFixedFieldNames) {
  const std::pair<const google::protobuf::Descriptor*, std::vector<std::string>> cases[] = {
      {v1::CreateChainRequest::descriptor(), {"chain_id", "name", "chainlet_names"}},
      {v1::CreateEnvironmentRequest::descriptor(), {"chain_id", "env_name"}},
      {v1::DeleteEnvironmentRequest::descriptor(), {"chain_id", "env_name"}},
      {v1::GetChainEnvironmentRequest::descriptor(), {"chain_id", "env_name"}},
      {v1::UpdateChainletEnvironmentAutoscalingSettingsRequest::descriptor(),
       {"chain_id", "env_name", "updates"}},
      {v1::ChainletEnvironmentAutoscalingSettingsUpdate::descriptor(),
       {"chainlet_name", "autoscaling_settings"}},
      {v1::UpdateChainletEnvironmentAutoscalingSettingsResponse::descriptor(),
       {"status", "message"}},
      {v1::ChainEnvironment::descriptor(), {"chainlet_settings"}},
      {v1::ChainletEnvironmentSettings::descriptor(),
       {"chainlet_name", "autoscaling_settings", "revision", "decision"}},
      {v1::AutoscalingSettings::descriptor(),
       {"min_replica", "max_replica", "autoscaling_window", "scale_down_delay",
        "concurrency_target", "target_utilization_percentage", "target_in_flight_tokens",
        "max_scale_down_rate"}},
      {v1::ReportLoadRequest::descriptor(), {"reports"}},
      {v1::LoadReport::descriptor(),
       {"source_id", "chain_id", "env_name", "chainlet_name", "in_flight_requests",
        "in_flight_tokens"}},
      {v1::GetScalingDecisionRequest::descriptor(), {"chain_id", "env_name", "chainlet_name"}},
      {v1::ScalingDecision::descriptor(),
       {"desired_replicas", "previous_replicas", "status", "reason", "capped",
        "scale_down_pending_since", "settings_revision", "decided_at",
        "avg_in_flight_requests", "avg_in_flight_tokens"}},
      {v1::SyncHello::descriptor(), {"agent_id", "selector", "last_applied_revision"}},
  };
  for (const auto& [descriptor, fields] : cases) {
    for (const std::string& field : fields) {
      EXPECT_NE(descriptor->FindFieldByName(field), nullptr)
          << descriptor->full_name() << " lacks " << field;
    }
  }
  // Settings fields are proto3 optional so "not passed" differs from 0.
  const auto* settings = v1::AutoscalingSettings::descriptor();
  for (int i = 0; i < settings->field_count(); ++i) {
    EXPECT_TRUE(settings->field(i)->has_presence()) << settings->field(i)->name();
  }
}

TEST(ApiContractTest, UpdateStatusesPrintAsBaseten) {
  v1::UpdateChainletEnvironmentAutoscalingSettingsResponse response;
  JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  const std::pair<v1::UpdateChainletEnvironmentAutoscalingSettingsResponse::Status,
                  std::string>
      cases[] = {{v1::UpdateChainletEnvironmentAutoscalingSettingsResponse::ACCEPTED,
                  R"({"status":"ACCEPTED","message":"ok"})"},
                 {v1::UpdateChainletEnvironmentAutoscalingSettingsResponse::QUEUED,
                  R"({"status":"QUEUED","message":"ok"})"},
                 {v1::UpdateChainletEnvironmentAutoscalingSettingsResponse::UNCHANGED,
                  R"({"status":"UNCHANGED","message":"ok"})"}};
  for (const auto& [status, json] : cases) {
    response.set_status(status);
    response.set_message("ok");
    std::string out;
    ASSERT_TRUE(MessageToJsonString(response, &out, options).ok());
    EXPECT_EQ(out, json);
  }
  v1::ScalingDecision decision;
  decision.set_status(v1::ScalingDecision::QUEUED);
  std::string out;
  ASSERT_TRUE(MessageToJsonString(decision, &out, options).ok());
  EXPECT_EQ(out, R"({"status":"QUEUED"})");
}

TEST(ApiContractTest, BasetenSampleRequestParsesWithNullsAsNotPassed) {
  const std::string body = testing::kBasetenPatchBody;
  v1::UpdateChainletEnvironmentAutoscalingSettingsRequest request;
  ASSERT_TRUE(JsonStringToMessage(body, &request, JsonParseOptions()).ok());
  ASSERT_EQ(request.updates_size(), 1);
  const auto& update = request.updates(0);
  EXPECT_EQ(update.chainlet_name(), "HelloWorld");
  const v1::AutoscalingSettings& s = update.autoscaling_settings();
  EXPECT_EQ(s.autoscaling_window(), 800);
  EXPECT_EQ(s.concurrency_target(), 4);
  EXPECT_EQ(s.max_replica(), 3);
  EXPECT_TRUE(s.has_min_replica());
  EXPECT_EQ(s.min_replica(), 2);
  EXPECT_EQ(s.scale_down_delay(), 63);
  EXPECT_FALSE(s.has_target_in_flight_tokens());
  EXPECT_FALSE(s.has_target_utilization_percentage());
  EXPECT_FALSE(s.has_max_scale_down_rate());
}

TEST(ApiContractTest, ZeroIsDistinguishableFromNotPassed) {
  v1::AutoscalingSettings s;
  ASSERT_TRUE(JsonStringToMessage(R"({"min_replica": 0})", &s, JsonParseOptions()).ok());
  EXPECT_TRUE(s.has_min_replica());
  EXPECT_FALSE(s.has_max_replica());
  JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  ASSERT_TRUE(MessageToJsonString(s, &out, options).ok());
  EXPECT_EQ(out, R"({"min_replica":0})");
}

}  // namespace
}  // namespace chainscale
