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
  const auto& list = body.fields().at("chainlet_settings").list_value();
  ASSERT_EQ(list.values_size(), 2);
  const auto& hello = list.values(0).struct_value().fields();
  EXPECT_EQ(hello.at("chainlet_name").string_value(), "HelloWorld");
  const auto& settings = hello.at("autoscaling_settings").struct_value().fields();
  EXPECT_EQ(settings.at("min_replica").number_value(), 2);
  EXPECT_EQ(settings.at("autoscaling_window").number_value(), 800);
  EXPECT_EQ(settings.at("target_utilization_percentage").number_value(), 70);
  EXPECT_EQ(settings.count("target_in_flight_tokens"), 0u);
}

TEST_F(RestGatewayTest, PostCreatesAnEnvironment) {
  httplib::Result r = http_->Post("/v1/chains/demo/environments", Auth(),
                                  R"({"env_name": "staging"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(ParseJson(r->body).fields().at("env_name").string_value(), "staging");
  r = http_->Post("/v1/chains/demo/environments", Auth(), R"({"env_name": "staging"})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
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
