// The control plane over real gRPC on a loopback port: every update status, every error
// code with its details, API-key auth, health, reflection and /metrics.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/error_details.h>

#include <string>

#include "chainscale/v1/control_plane.grpc.pb.h"
#include "common/http_client.h"
#include "control_plane/server.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_grpc.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;
using Response = v1::UpdateChainletEnvironmentAutoscalingSettingsResponse;

constexpr char kKey[] = "test-key-0123456789";

class ControlPlaneServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControlPlaneOptions options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.data_dir = dir_.str();
    options.api_keys = ApiKeys({kKey, "second-key"});
    options.max_message_bytes = 64 * 1024;
    absl::StatusOr<std::unique_ptr<ControlPlaneServer>> server =
        ControlPlaneServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::ControlPlane::NewStub(channel_);
  }

  void TearDown() override { server_.reset(); }

  // A context carrying `authorization`, with a deadline so no call can hang a test.
  static std::unique_ptr<grpc::ClientContext> Context(
      const std::string& authorization = std::string("Api-Key ") + kKey) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!authorization.empty()) context->AddMetadata("authorization", authorization);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return context;
  }

  void CreateChain(const std::string& id) {
    v1::CreateChainRequest request;
    request.set_chain_id(id);
    request.add_chainlet_names("HelloWorld");
    request.add_chainlet_names("RandInt");
    v1::Chain chain;
    ASSERT_TRUE(stub_->CreateChain(Context().get(), request, &chain).ok());
  }

  grpc::Status Update(const std::string& chain, const std::string& env,
                      const std::string& chainlet, int32_t max_replica, Response* response) {
    v1::UpdateChainletEnvironmentAutoscalingSettingsRequest request;
    request.set_chain_id(chain);
    request.set_env_name(env);
    auto* update = request.add_updates();
    update->set_chainlet_name(chainlet);
    update->mutable_autoscaling_settings()->set_max_replica(max_replica);
    return stub_->UpdateChainletEnvironmentAutoscalingSettings(Context().get(), request,
                                                               response);
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<ControlPlaneServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlPlane::Stub> stub_;
};

TEST_F(ControlPlaneServiceTest, UpdateAnswersQueuedThenUnchanged) {
  CreateChain("demo");
  Response response;
  ASSERT_TRUE(Update("demo", "production", "HelloWorld", 3, &response).ok());
  EXPECT_EQ(response.status(), Response::QUEUED);
  EXPECT_THAT(response.message(), HasSubstr("HelloWorld: max_replica from 1 to 3"));
  ASSERT_TRUE(Update("demo", "production", "HelloWorld", 3, &response).ok());
  EXPECT_EQ(response.status(), Response::UNCHANGED);

  v1::GetChainEnvironmentRequest get;
  get.set_chain_id("demo");
  get.set_env_name("production");
  v1::ChainEnvironment env;
  ASSERT_TRUE(stub_->GetChainEnvironment(Context().get(), get, &env).ok());
  ASSERT_EQ(env.chainlet_settings_size(), 2);
  EXPECT_EQ(env.chainlet_settings(0).autoscaling_settings().max_replica(), 3);
  EXPECT_EQ(env.chainlet_settings(0).revision(), 2);
  EXPECT_EQ(env.chainlet_settings(1).autoscaling_settings().max_replica(), 1);
}

// reset_fields and expected_revision over gRPC, the requests written as a client's JSON.
TEST_F(ControlPlaneServiceTest, ResetFieldsAndExpectedRevision) {
  CreateChain("demo");
  auto request = [](const std::string& json) {
    v1::UpdateChainletEnvironmentAutoscalingSettingsRequest out;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &out).ok()) << json;
    return out;
  };
  Response response;
  ASSERT_TRUE(stub_->UpdateChainletEnvironmentAutoscalingSettings(Context().get(), request(R"(
      {"chain_id": "demo", "env_name": "production", "updates": [{"chainlet_name":
       "HelloWorld", "autoscaling_settings": {"target_in_flight_tokens": 500}}]})"),
      &response).ok());  // revision 2
  grpc::Status stale = stub_->UpdateChainletEnvironmentAutoscalingSettings(
      Context().get(), request(R"({"chain_id": "demo", "env_name": "production",
      "expected_revision": "1", "updates": [{"chainlet_name": "HelloWorld",
      "autoscaling_settings": {}, "reset_fields": ["target_in_flight_tokens"]}]})"),
      &response);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(stale.error_message(), HasSubstr("at revision 2, not 1"));

  grpc::Status unknown = stub_->UpdateChainletEnvironmentAutoscalingSettings(
      Context().get(), request(R"({"chain_id": "demo", "env_name": "production",
      "updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"min_replica": 1},
      "reset_fields": ["min_replica", "nonsense"]}]})"), &response);
  ASSERT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unknown.error_message(), HasSubstr("updates[0].reset_fields[0]"));
  EXPECT_THAT(unknown.error_message(), HasSubstr("updates[0].reset_fields[1]"));

  ASSERT_TRUE(stub_->UpdateChainletEnvironmentAutoscalingSettings(Context().get(), request(R"(
      {"chain_id": "demo", "env_name": "production", "expected_revision": 2, "updates": [
       {"chainlet_name": "HelloWorld", "reset_fields": ["target_in_flight_tokens"]}]})"),
      &response).ok());
  EXPECT_EQ(response.status(), Response::QUEUED);
  EXPECT_THAT(response.message(), HasSubstr("target_in_flight_tokens from 500 to unset"));
  v1::GetChainEnvironmentRequest get;
  get.set_chain_id("demo");
  get.set_env_name("production");
  v1::ChainEnvironment env;
  ASSERT_TRUE(stub_->GetChainEnvironment(Context().get(), get, &env).ok());
  EXPECT_FALSE(env.chainlet_settings(0).autoscaling_settings().has_target_in_flight_tokens());
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(env, &json).ok());
  EXPECT_THAT(json, HasSubstr(R"("revision":"3")")) << "the environment's own revision";
}

TEST_F(ControlPlaneServiceTest, InvalidArgumentCarriesFieldViolations) {
  CreateChain("demo");
  v1::UpdateChainletEnvironmentAutoscalingSettingsRequest request;
  request.set_chain_id("demo");
  request.set_env_name("production");
  auto* update = request.add_updates();
  update->set_chainlet_name("HelloWorld");
  update->mutable_autoscaling_settings()->set_min_replica(5);
  update->mutable_autoscaling_settings()->set_autoscaling_window(5);
  Response response;
  grpc::Status status = stub_->UpdateChainletEnvironmentAutoscalingSettings(
      Context().get(), request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(grpc::ExtractErrorDetails(status, &details).ok());
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 2);
  EXPECT_EQ(bad_request.field_violations(0).field(),
            "updates[0].autoscaling_settings.min_replica");
  EXPECT_EQ(bad_request.field_violations(1).field(),
            "updates[0].autoscaling_settings.autoscaling_window");
}

TEST_F(ControlPlaneServiceTest, EachErrorHasItsCode) {
  CreateChain("demo");
  Response response;
  EXPECT_EQ(Update("nope", "production", "HelloWorld", 2, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Update("demo", "staging", "HelloWorld", 2, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Update("demo", "production", "Nope", 2, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Update("demo", "development", "HelloWorld", 2, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::CreateChainRequest create;
  create.set_chain_id("demo");
  create.add_chainlet_names("X");
  v1::Chain chain;
  EXPECT_EQ(stub_->CreateChain(Context().get(), create, &chain).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::DeleteEnvironmentRequest delete_env;
  delete_env.set_chain_id("demo");
  delete_env.set_env_name("production");
  v1::DeleteEnvironmentResponse deleted;
  grpc::Status status = stub_->DeleteEnvironment(Context().get(), delete_env, &deleted);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("production environment cannot be deleted"));

  // Larger than --max_message_bytes (64 KiB here).
  create.set_chain_id("big");
  create.set_name(std::string(100 * 1024, 'x'));
  EXPECT_EQ(stub_->CreateChain(Context().get(), create, &chain).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ControlPlaneServiceTest, RegistryCallsRoundTrip) {
  CreateChain("a-chain");
  CreateChain("b-chain");
  v1::ListChainsRequest list;
  list.set_page_size(1);
  v1::ListChainsResponse page;
  ASSERT_TRUE(stub_->ListChains(Context().get(), list, &page).ok());
  ASSERT_EQ(page.chains_size(), 1);
  EXPECT_EQ(page.chains(0).chain_id(), "a-chain");
  EXPECT_FALSE(page.next_page_token().empty());

  v1::CreateEnvironmentRequest create_env;
  create_env.set_chain_id("a-chain");
  create_env.set_env_name("staging");
  v1::ChainEnvironment env;
  ASSERT_TRUE(stub_->CreateEnvironment(Context().get(), create_env, &env).ok());
  EXPECT_EQ(env.env_name(), "staging");
  EXPECT_EQ(env.chainlet_settings_size(), 2);

  v1::DeleteEnvironmentRequest delete_env;
  delete_env.set_chain_id("a-chain");
  delete_env.set_env_name("staging");
  v1::DeleteEnvironmentResponse deleted_env;
  ASSERT_TRUE(stub_->DeleteEnvironment(Context().get(), delete_env, &deleted_env).ok());
  EXPECT_EQ(deleted_env.revision(), 4);

  v1::DeleteChainRequest delete_chain;
  delete_chain.set_chain_id("b-chain");
  v1::DeleteChainResponse deleted_chain;
  ASSERT_TRUE(stub_->DeleteChain(Context().get(), delete_chain, &deleted_chain).ok());
  EXPECT_EQ(deleted_chain.revision(), 5);
  v1::GetChainRequest get;
  get.set_chain_id("b-chain");
  v1::Chain chain;
  EXPECT_EQ(stub_->GetChain(Context().get(), get, &chain).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControlPlaneServiceTest, ManagementCallsNeedAValidKey) {
  v1::ListChainsRequest request;
  v1::ListChainsResponse response;
  grpc::Status status = stub_->ListChains(Context("").get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("\"authorization: Api-Key KEY\""));
  EXPECT_EQ(stub_->ListChains(Context("Api-Key wrong").get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stub_->ListChains(Context(kKey).get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);  // no scheme
  EXPECT_EQ(stub_->ListChains(Context("Basic second-key").get(), request, &response)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(stub_->ListChains(Context(std::string("Api-Key ") + kKey).get(), request,
                                &response)
                  .ok());
  EXPECT_TRUE(stub_->ListChains(Context("Bearer second-key").get(), request, &response).ok());
}

TEST_F(ControlPlaneServiceTest, HealthAndReflectionNeedNoKey) {
  EXPECT_EQ(testing::HealthStatus(channel_, ""), 1);  // SERVING
  EXPECT_EQ(testing::HealthStatus(channel_, "chainscale.v1.ControlPlane"), 1);
  // list_services (field 7) names the service; file_containing_symbol (field 4) returns
  // the file that defines it.
  EXPECT_THAT(testing::ReflectionExchange(channel_, testing::StringField(7, "")),
              HasSubstr("chainscale.v1.ControlPlane"));
  EXPECT_THAT(testing::ReflectionExchange(
                  channel_, testing::StringField(4, "chainscale.v1.ControlPlane")),
              HasSubstr("chainscale/v1/control_plane.proto"));
  server_->Shutdown(absl::ZeroDuration());
  EXPECT_EQ(testing::HealthStatus(channel_, ""), -1);  // gone
}

TEST_F(ControlPlaneServiceTest, MetricsCountCallsByMethodAndCode) {
  CreateChain("demo");
  v1::GetChainRequest get;
  get.set_chain_id("missing");
  v1::Chain chain;
  ASSERT_EQ(stub_->GetChain(Context().get(), get, &chain).error_code(),
            grpc::StatusCode::NOT_FOUND);
  const std::string http = absl::StrCat("127.0.0.1:", server_->http_port());
  absl::StatusOr<HttpClientResponse> metrics = HttpCall(http, {"GET", "/metrics", {}, ""});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body,
              HasSubstr("chainscale_rpc_requests_total{method=\"CreateChain\",code=\"OK\"} 1\n"));
  EXPECT_THAT(metrics->body, HasSubstr("chainscale_rpc_requests_total{method=\"GetChain\","
                                       "code=\"NOT_FOUND\"} 1\n"));
  EXPECT_THAT(metrics->body,
              HasSubstr("chainscale_rpc_duration_seconds_count{method=\"CreateChain\"} 1\n"));
  EXPECT_THAT(metrics->body, HasSubstr("chainscale_settings_revision 1\n"));
  absl::StatusOr<HttpClientResponse> health = HttpCall(http, {"GET", "/healthz", {}, ""});
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->status, 200);
}

TEST(ControlPlaneServerTest, RefusesToStartWithoutKeysUnlessInsecure) {
  testing::ScopedTempDir dir;
  ControlPlaneOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "";
  options.data_dir = dir.str();
  absl::StatusOr<std::unique_ptr<ControlPlaneServer>> server = ControlPlaneServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(server.status().message(), HasSubstr("--api_keys_file"));
  options.insecure = true;
  server = ControlPlaneServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Shutdown();
}

}  // namespace
}  // namespace chainscale
