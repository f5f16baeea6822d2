// The REST gateway: over real HTTP against a real control plane (the Baseten call, GET
// and POST, every error class), and its rate limit with a fake clock.
#include "control_plane/rest_gateway.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "control_plane/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/baseten_samples.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kKey[] = "rest-key";
const char kPath[] = "/v1/chains/demo/environments/production/chainlet_settings/autoscaling_settings";
using testing::kBasetenPatchBody;

google::protobuf::Struct ParseJson(const std::string& body) {
  google::protobuf::Struct out;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(body, &out).ok()) << body;
  return out;
}

std::vector<std::string> Keys(const google::protobuf::Struct& s) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : s.fields()) keys.push_back(key);
  return keys;
}

class RestGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControlPlaneOptions options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.data_dir = dir_.str();
    options.api_keys = ApiKeys({kKey});
    options.rest_rate_limit = 0;  // the limit has its own test
    server_ = ControlPlaneServer::Start(options).value();
    auto stub = v1::ControlPlane::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Api-Key ") + kKey);
    v1::CreateChainRequest create;
    create.set_chain_id("demo");
    create.add_chainlet_names("HelloWorld");
    create.add_chainlet_names("RandInt");
    v1::Chain chain;
    ASSERT_TRUE(stub->CreateChain(&context, create, &chain).ok());
    http_ = std::make_unique<httplib::Client>("127.0.0.1", server_->http_port());
    http_->set_read_timeout(10);
  }

  httplib::Headers Auth(const std::string& value = std::string("Api-Key ") + kKey) {
    return {{"Authorization", value}};
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<ControlPlaneServer> server_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(RestGatewayTest, TheBasetenSampleAnswersStatusAndMessageOnly) {
  // cURL's --data sends form encoding; the gateway reads the body as JSON regardless.
  httplib::Result r =
      http_->Patch(kPath, Auth(), kBasetenPatchBody, "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  google::protobuf::Struct body = ParseJson(r->body);
  EXPECT_THAT(r->body, EndsWith("}\n")) << "a JSON body ends with a newline";
  EXPECT_THAT(Keys(body), UnorderedElementsAre("status", "message"));
  EXPECT_EQ(body.fields().at("status").string_value(), "QUEUED");
  EXPECT_THAT(body.fields().at("message").string_value(),
              HasSubstr("HelloWorld: min_replica from 0 to 2, max_replica from 1 to 3"));

  r = http_->Patch(kPath, Auth("Bearer rest-key"), kBasetenPatchBody, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(ParseJson(r->body).fields().at("status").string_value(), "UNCHANGED");
}

TEST_F(RestGatewayTest, GetReturnsEveryChainletsSettingsInSnakeCase) {
  ASSERT_TRUE(http_->Patch(kPath, Auth(), kBasetenPatchBody, "application/json"));
  httplib::Result r = http_->Get("/v1/chains/demo/environments/production", Auth());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  google::protobuf::Struct body = ParseJson(r->body);
  // Baseten's ChainEnvironmentV1, with chainscale's revision beside it.
  EXPECT_EQ(body.fields().at("name").string_value(), "production");
  EXPECT_EQ(body.fields().at("chain_id").string_value(), "demo");
  EXPECT_EQ(body.fields().at("revision").string_value(), "2");
  EXPECT_TRUE(body.fields().at("current_deployment").has_null_value());
  const auto& list = body.fields().at("chainlet_settings").list_value();
  ASSERT_EQ(list.values_size(), 2);
  const auto& hello = list.values(0).struct_value().fields();
  EXPECT_EQ(hello.at("chainlet_name").string_value(), "HelloWorld");
  const auto& settings = hello.at("autoscaling_settings").struct_value().fields();
  EXPECT_EQ(settings.at("min_replica").number_value(), 2);
  EXPECT_EQ(settings.at("autoscaling_window").number_value(), 800);
  EXPECT_EQ(settings.at("target_utilization_percentage").number_value(), 70);
  EXPECT_TRUE(settings.at("target_in_flight_tokens").has_null_value());
}

// Baseten's create-environment example, as printed: the fields chainscale does not model
// (instance types, promotion settings) are stored and returned, never dropped.
TEST_F(RestGatewayTest, PostTakesBasetensCreateEnvironmentBody) {
  httplib::Result r = http_->Post("/v1/chains/demo/environments", Auth(),
                                  testing::kBasetenCreateEnvironmentBody, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(r->body, EndsWith("}\n"));
  google::protobuf::Struct body = ParseJson(r->body);
  EXPECT_THAT(Keys(body), UnorderedElementsAre("name", "created_at", "chain_id",
                                               "promotion_settings", "chainlet_settings",
                                               "current_deployment", "revision"));
  EXPECT_EQ(body.fields().at("name").string_value(), "staging");
  EXPECT_THAT(body.fields().at("created_at").string_value(), ::testing::MatchesRegex(
                                                                 "20[0-9-]+T[0-9:.]+Z"));
  const auto& promotion = body.fields().at("promotion_settings").struct_value().fields();
  EXPECT_FALSE(promotion.at("redeploy_on_promotion").bool_value());
  EXPECT_EQ(promotion.at("ramp_up_duration_seconds").number_value(), 600);
  const auto& list = body.fields().at("chainlet_settings").list_value();
  ASSERT_EQ(list.values_size(), 2);
  const auto& hello = list.values(0).struct_value().fields();
  EXPECT_EQ(hello.at("instance_type").struct_value().fields().at("id").string_value(), "2x8");
  const auto& settings = hello.at("autoscaling_settings").struct_value().fields();
  EXPECT_EQ(settings.at("max_replica").number_value(), 3);
  EXPECT_EQ(settings.at("autoscaling_window").number_value(), 800);
  const auto& rand = list.values(1).struct_value().fields();
  EXPECT_EQ(rand.at("instance_type").struct_value().fields().at("id").string_value(),
            "A10Gx8x32");
  EXPECT_EQ(rand.at("autoscaling_settings").struct_value().fields().at("min_replica")
                .number_value(), 3);

  // Stored: the list and a read of the one environment return the same.
  r = http_->Get("/v1/chains/demo/environments", Auth());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const google::protobuf::Struct listed = ParseJson(r->body);
  const auto& environments = listed.fields().at("environments").list_value();
  std::vector<std::string> names;
  for (const auto& env : environments.values()) {
    names.push_back(env.struct_value().fields().at("name").string_value());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("development", "production", "staging"));
  EXPECT_EQ(environments.values(2).struct_value().fields().at("chainlet_settings")
                .list_value().values(1).struct_value().fields().at("instance_type")
                .struct_value().fields().at("id").string_value(), "A10Gx8x32");

  // Promotion settings as given, over Baseten's defaults.
  r = http_->Post("/v1/chains/demo/environments", Auth(),
                  R"({"name": "canary", "promotion_settings": {"rolling_deploy": true, "ramp_up_duration_seconds": 120}})",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  r = http_->Get("/v1/chains/demo/environments/canary", Auth());
  ASSERT_TRUE(r);
  const google::protobuf::Struct canary = ParseJson(r->body);
  const auto& given = canary.fields().at("promotion_settings").struct_value().fields();
  EXPECT_TRUE(given.at("rolling_deploy").bool_value());
  EXPECT_EQ(given.at("ramp_up_duration_seconds").number_value(), 120);
  EXPECT_FALSE(given.at("ramp_up_while_promoting").bool_value());

  r = http_->Post("/v1/chains/demo/environments", Auth(), R"({"name": "staging"})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  r = http_->Post("/v1/chains/demo/environments", Auth(),
                  R"({"name": "qa", "chainlet_settings": [{"chainlet_name": "Nope"}]})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << r->body;
}

TEST_F(RestGatewayTest, ChainsAreListedReadAndDeleted) {
  httplib::Result r = http_->Get("/v1/chains", Auth());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const google::protobuf::Struct listed = ParseJson(r->body);
  const auto& chains = listed.fields().at("chains").list_value();
  ASSERT_EQ(chains.values_size(), 1);
  const auto& chain = chains.values(0).struct_value().fields();
  EXPECT_THAT(Keys(chains.values(0).struct_value()),
              UnorderedElementsAre("id", "created_at", "name", "deployments_count"));
  EXPECT_EQ(chain.at("id").string_value(), "demo");
  EXPECT_EQ(chain.at("deployments_count").number_value(), 0);

  r = http_->Get("/v1/chains/demo", Auth());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(ParseJson(r->body).fields().at("name").string_value(), "demo");

  r = http_->Delete("/v1/chains/demo", Auth());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  google::protobuf::Struct tombstone = ParseJson(r->body);
  EXPECT_EQ(tombstone.fields().at("id").string_value(), "demo");
  EXPECT_TRUE(tombstone.fields().at("deleted").bool_value());
  r = http_->Get("/v1/chains/demo", Auth());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = http_->Delete("/v1/chains/demo", Auth());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = http_->Get("/v1/chains", Auth());
  ASSERT_TRUE(r);
  EXPECT_EQ(ParseJson(r->body).fields().at("chains").list_value().values_size(), 0);
}

TEST_F(RestGatewayTest, ResetFieldsAndExpectedRevision) {
  httplib::Result r = http_->Patch(kPath, Auth(), R"({"updates": [{"chainlet_name": "HelloWorld",
      "autoscaling_settings": {"target_in_flight_tokens": 500, "max_replica": 4}}]})",
                                   "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;  // revision 2
  // Stale: the environment is at revision 2.
  r = http_->Patch(kPath, Auth(), R"({"expected_revision": "1", "updates": [{"chainlet_name": "HelloWorld",
      "autoscaling_settings": {}, "reset_fields": ["target_in_flight_tokens"]}]})",
                   "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409) << r->body;
  EXPECT_EQ(ParseJson(r->body).fields().at("error").struct_value().fields().at("code")
                .string_value(), "ABORTED");
  r = http_->Patch(kPath, Auth(), R"({"expected_revision": 2, "updates": [{"chainlet_name": "HelloWorld",
      "autoscaling_settings": {}, "reset_fields": ["target_in_flight_tokens", "max_replica"]}]})",
                   "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(ParseJson(r->body).fields().at("message").string_value(),
              HasSubstr("max_replica from 4 to 1, target_in_flight_tokens from 500 to unset"));
  r = http_->Get("/v1/chains/demo/environments/production", Auth());
  ASSERT_TRUE(r);
  const google::protobuf::Struct env = ParseJson(r->body);
  const auto& settings = env.fields().at("chainlet_settings").list_value().values(0)
                             .struct_value().fields().at("autoscaling_settings")
                             .struct_value().fields();
  EXPECT_TRUE(settings.at("target_in_flight_tokens").has_null_value());
  EXPECT_EQ(settings.at("max_replica").number_value(), 1);
}

// Status code and error code of the JSON error body.
std::pair<int, std::string> ErrorOf(const httplib::Result& r) {
  if (!r) return {0, "no response"};
  EXPECT_THAT(r->body, EndsWith("}\n"));
  google::protobuf::Struct body = ParseJson(r->body);
  return {r->status, body.fields().at("error").struct_value().fields().at("code").string_value()};
}

TEST_F(RestGatewayTest, ErrorsAreJsonWithFittingHttpCodes) {
  using P = std::pair<int, std::string>;
  EXPECT_EQ(ErrorOf(http_->Patch(kPath, httplib::Headers{}, kBasetenPatchBody, "application/json")),
            P(401, "UNAUTHENTICATED"));
  EXPECT_EQ(ErrorOf(http_->Patch(kPath, Auth("Api-Key nope"), kBasetenPatchBody, "application/json")),
            P(401, "UNAUTHENTICATED"));
  EXPECT_EQ(ErrorOf(http_->Patch(kPath, Auth(), "{not json", "application/json")),
            P(400, "INVALID_ARGUMENT"));
  EXPECT_EQ(ErrorOf(http_->Patch(kPath, Auth(), "", "application/json")),
            P(400, "INVALID_ARGUMENT"));
  // additionalProperties: false
  EXPECT_EQ(ErrorOf(http_->Patch(
                kPath, Auth(),
                R"({"updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"max_replicas": 3}}]})",
                "application/json")),
            P(400, "INVALID_ARGUMENT"));
  EXPECT_EQ(ErrorOf(http_->Patch(
                kPath, Auth(),
                R"({"updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"max_replica": "three"}}]})",
                "application/json")),
            P(400, "INVALID_ARGUMENT"));
  httplib::Result invalid = http_->Patch(
      kPath, Auth(),
      R"({"updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"min_replica": 5}}]})",
      "application/json");
  EXPECT_EQ(ErrorOf(invalid), P(400, "INVALID_ARGUMENT"));
  EXPECT_THAT(invalid->body, HasSubstr(R"("field":"updates[0].autoscaling_settings.min_replica")"));
  EXPECT_EQ(ErrorOf(http_->Patch(
                "/v1/chains/nope/environments/production/chainlet_settings/autoscaling_settings",
                Auth(), kBasetenPatchBody, "application/json")),
            P(404, "NOT_FOUND"));
  EXPECT_EQ(ErrorOf(http_->Patch(
                kPath, Auth(),
                R"({"updates": [{"chainlet_name": "Nope", "autoscaling_settings": {}}]})",
                "application/json")),
            P(404, "NOT_FOUND"));
  EXPECT_EQ(ErrorOf(http_->Get("/v1/elsewhere", Auth())), P(404, "NOT_FOUND"));
  httplib::Result wrong_method = http_->Get(kPath, Auth());
  ASSERT_TRUE(wrong_method);
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(wrong_method->get_header_value("Allow"), "PATCH");
  // Over the 1 MiB body limit.
  httplib::Result huge =
      http_->Patch(kPath, Auth(), std::string(2 << 20, ' '), "application/json");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  EXPECT_THAT(huge->body, HasSubstr("\"error\""));
}

TEST(RestGatewayLimitTest, EachKeyGetsItsOwnBucketAndARetryAfter) {
  testing::FakeClock clock;
  Metrics metrics;
  RestGateway gateway(RestGatewayOptions{ApiKeys({"a", "b"}), 2}, &metrics, clock);
  auto call = [&](const std::string& key) {
    return gateway.Handle({"GET", "/v1/chains/c/environments/e", "Api-Key " + key, ""});
  };
  // No management core yet: allowed calls answer 503, throttled ones 429.
  EXPECT_EQ(call("a").status, 503);
  EXPECT_EQ(call("a").status, 503);
  RestResponse throttled = call("a");
  EXPECT_EQ(throttled.status, 429);
  EXPECT_EQ(throttled.headers["Retry-After"], "1");
  EXPECT_THAT(throttled.body, EndsWith("}\n"));
  EXPECT_THAT(call("b").body, EndsWith("}\n"));
  google::protobuf::Struct body = ParseJson(throttled.body);
  EXPECT_DOUBLE_EQ(body.fields().at("retry_after").number_value(), 0.5);
  EXPECT_EQ(body.fields().at("error").struct_value().fields().at("code").string_value(),
            "RESOURCE_EXHAUSTED");
  EXPECT_EQ(call("b").status, 503) << "another key has its own bucket";
  clock.Advance(absl::Milliseconds(500));
  EXPECT_EQ(call("a").status, 503) << "one request's worth refilled";
  EXPECT_EQ(call("a").status, 429);
}

}  // namespace
}  // namespace chainscale
