// The REST gateway: over real HTTP against a real control plane (the Baseten call, GET
// and POST, every error class), and its rate limit with a fake clock.
#include "control_plane/rest_gateway.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/http_client.h"
#include "control_plane/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/baseten_samples.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/management_core.h"
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
  }

  HttpHeaders Auth(const std::string& value = std::string("Api-Key ") + kKey) {
    return {{"Authorization", value}};
  }

  absl::StatusOr<HttpClientResponse> Call(const std::string& method, const std::string& path,
                                          HttpHeaders headers, const std::string& body = "",
                                          const std::string& content_type = "") {
    if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
    return HttpCall(absl::StrCat("127.0.0.1:", server_->http_port()),
                    {method, path, std::move(headers), body});
  }
  absl::StatusOr<HttpClientResponse> Get(const std::string& path, HttpHeaders headers) {
    return Call("GET", path, std::move(headers));
  }
  absl::StatusOr<HttpClientResponse> Delete(const std::string& path, HttpHeaders headers) {
    return Call("DELETE", path, std::move(headers));
  }
  absl::StatusOr<HttpClientResponse> Patch(const std::string& path, HttpHeaders headers,
                                           const std::string& body,
                                           const std::string& content_type) {
    return Call("PATCH", path, std::move(headers), body, content_type);
  }
  absl::StatusOr<HttpClientResponse> Post(const std::string& path, HttpHeaders headers,
                                          const std::string& body,
                                          const std::string& content_type) {
    return Call("POST", path, std::move(headers), body, content_type);
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<ControlPlaneServer> server_;
};

TEST_F(RestGatewayTest, TheBasetenSampleAnswersStatusAndMessageOnly) {
  // cURL's --data sends form encoding; the gateway reads the body as JSON regardless.
  absl::StatusOr<HttpClientResponse> r =
      Patch(kPath, Auth(), kBasetenPatchBody, "application/x-www-form-urlencoded");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->Header("Content-Type"), "application/json");
  google::protobuf::Struct body = ParseJson(r->body);
  EXPECT_THAT(r->body, EndsWith("}\n")) << "a JSON body ends with a newline";
  EXPECT_THAT(Keys(body), UnorderedElementsAre("status", "message"));
  EXPECT_EQ(body.fields().at("status").string_value(), "QUEUED");
  EXPECT_THAT(body.fields().at("message").string_value(),
              HasSubstr("HelloWorld: min_replica from 0 to 2, max_replica from 1 to 3"));

  r = Patch(kPath, Auth("Bearer rest-key"), kBasetenPatchBody, "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ParseJson(r->body).fields().at("status").string_value(), "UNCHANGED");
}

TEST_F(RestGatewayTest, GetReturnsEveryChainletsSettingsInSnakeCase) {
  ASSERT_TRUE(Patch(kPath, Auth(), kBasetenPatchBody, "application/json").ok());
  absl::StatusOr<HttpClientResponse> r = Get("/v1/chains/demo/environments/production", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
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
  absl::StatusOr<HttpClientResponse> r = Post("/v1/chains/demo/environments", Auth(),
                                  testing::kBasetenCreateEnvironmentBody, "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
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
  r = Get("/v1/chains/demo/environments", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
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
  r = Post("/v1/chains/demo/environments", Auth(),
                  R"({"name": "canary", "promotion_settings": {"rolling_deploy": true, "ramp_up_duration_seconds": 120}})",
                  "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  r = Get("/v1/chains/demo/environments/canary", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  const google::protobuf::Struct canary = ParseJson(r->body);
  const auto& given = canary.fields().at("promotion_settings").struct_value().fields();
  EXPECT_TRUE(given.at("rolling_deploy").bool_value());
  EXPECT_EQ(given.at("ramp_up_duration_seconds").number_value(), 120);
  EXPECT_FALSE(given.at("ramp_up_while_promoting").bool_value());

  r = Post("/v1/chains/demo/environments", Auth(), R"({"name": "staging"})",
                  "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 409);
  r = Post("/v1/chains/demo/environments", Auth(),
                  R"({"name": "qa", "chainlet_settings": [{"chainlet_name": "Nope"}]})",
                  "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404) << r->body;
}

TEST_F(RestGatewayTest, ChainsAreListedReadAndDeleted) {
  absl::StatusOr<HttpClientResponse> r = Get("/v1/chains", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  const google::protobuf::Struct listed = ParseJson(r->body);
  const auto& chains = listed.fields().at("chains").list_value();
  ASSERT_EQ(chains.values_size(), 1);
  const auto& chain = chains.values(0).struct_value().fields();
  EXPECT_THAT(Keys(chains.values(0).struct_value()),
              UnorderedElementsAre("id", "created_at", "name", "deployments_count"));
  EXPECT_EQ(chain.at("id").string_value(), "demo");
  EXPECT_EQ(chain.at("deployments_count").number_value(), 0);

  r = Get("/v1/chains/demo", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(ParseJson(r->body).fields().at("name").string_value(), "demo");

  r = Delete("/v1/chains/demo", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  google::protobuf::Struct tombstone = ParseJson(r->body);
  EXPECT_EQ(tombstone.fields().at("id").string_value(), "demo");
  EXPECT_TRUE(tombstone.fields().at("deleted").bool_value());
  r = Get("/v1/chains/demo", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  r = Delete("/v1/chains/demo", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  r = Get("/v1/chains", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ParseJson(r->body).fields().at("chains").list_value().values_size(), 0);
}

TEST_F(RestGatewayTest, ResetFieldsAndExpectedRevision) {
  absl::StatusOr<HttpClientResponse> r = Patch(kPath, Auth(), R"({"updates": [{"chainlet_name": "HelloWorld",
      "autoscaling_settings": {"target_in_flight_tokens": 500, "max_replica": 4}}]})",
                                   "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;  // revision 2
  // Stale: the environment is at revision 2.
  r = Patch(kPath, Auth(), R"({"expected_revision": "1", "updates": [{"chainlet_name": "HelloWorld",
      "autoscaling_settings": {}, "reset_fields": ["target_in_flight_tokens"]}]})",
                   "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 409) << r->body;
  EXPECT_EQ(ParseJson(r->body).fields().at("error").struct_value().fields().at("code")
                .string_value(), "ABORTED");
  r = Patch(kPath, Auth(), R"({"expected_revision": 2, "updates": [{"chainlet_name": "HelloWorld",
      "autoscaling_settings": {}, "reset_fields": ["target_in_flight_tokens", "max_replica"]}]})",
                   "application/json");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(ParseJson(r->body).fields().at("message").string_value(),
              HasSubstr("max_replica from 4 to 1, target_in_flight_tokens from 500 to unset"));
  r = Get("/v1/chains/demo/environments/production", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  const google::protobuf::Struct env = ParseJson(r->body);
  const auto& settings = env.fields().at("chainlet_settings").list_value().values(0)
                             .struct_value().fields().at("autoscaling_settings")
                             .struct_value().fields();
  EXPECT_TRUE(settings.at("target_in_flight_tokens").has_null_value());
  EXPECT_EQ(settings.at("max_replica").number_value(), 1);
}

// Status code and error code of the JSON error body.
std::pair<int, std::string> ErrorOf(const absl::StatusOr<HttpClientResponse>& r) {
  if (!r.ok()) return {0, std::string(r.status().message())};
  EXPECT_THAT(r->body, EndsWith("}\n"));
  google::protobuf::Struct body = ParseJson(r->body);
  return {r->status, body.fields().at("error").struct_value().fields().at("code").string_value()};
}

TEST_F(RestGatewayTest, ErrorsAreJsonWithFittingHttpCodes) {
  using P = std::pair<int, std::string>;
  EXPECT_EQ(ErrorOf(Patch(kPath, HttpHeaders{}, kBasetenPatchBody, "application/json")),
            P(401, "UNAUTHENTICATED"));
  EXPECT_EQ(ErrorOf(Patch(kPath, Auth("Api-Key nope"), kBasetenPatchBody, "application/json")),
            P(401, "UNAUTHENTICATED"));
  EXPECT_EQ(ErrorOf(Patch(kPath, Auth(), "{not json", "application/json")),
            P(400, "INVALID_ARGUMENT"));
  EXPECT_EQ(ErrorOf(Patch(kPath, Auth(), "", "application/json")),
            P(400, "INVALID_ARGUMENT"));
  // additionalProperties: false
  EXPECT_EQ(ErrorOf(Patch(
                kPath, Auth(),
                R"({"updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"max_replicas": 3}}]})",
                "application/json")),
            P(400, "INVALID_ARGUMENT"));
  EXPECT_EQ(ErrorOf(Patch(
                kPath, Auth(),
                R"({"updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"max_replica": "three"}}]})",
                "application/json")),
            P(400, "INVALID_ARGUMENT"));
  absl::StatusOr<HttpClientResponse> invalid = Patch(
      kPath, Auth(),
      R"({"updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"min_replica": 5}}]})",
      "application/json");
  EXPECT_EQ(ErrorOf(invalid), P(400, "INVALID_ARGUMENT"));
  EXPECT_THAT(invalid->body, HasSubstr(R"("field":"updates[0].autoscaling_settings.min_replica")"));
  EXPECT_EQ(ErrorOf(Patch(
                "/v1/chains/nope/environments/production/chainlet_settings/autoscaling_settings",
                Auth(), kBasetenPatchBody, "application/json")),
            P(404, "NOT_FOUND"));
  EXPECT_EQ(ErrorOf(Patch(
                kPath, Auth(),
                R"({"updates": [{"chainlet_name": "Nope", "autoscaling_settings": {}}]})",
                "application/json")),
            P(404, "NOT_FOUND"));
  EXPECT_EQ(ErrorOf(Get("/v1/elsewhere", Auth())), P(404, "NOT_FOUND"));
  absl::StatusOr<HttpClientResponse> wrong_method = Get(kPath, Auth());
  ASSERT_TRUE(wrong_method.ok()) << wrong_method.status();
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(wrong_method->Header("Allow"), "OPTIONS, PATCH");
  // Over the 1 MiB body limit.
  absl::StatusOr<HttpClientResponse> huge =
      Patch(kPath, Auth(), std::string(2 << 20, ' '), "application/json");
  ASSERT_TRUE(huge.ok()) << huge.status();
  EXPECT_EQ(huge->status, 413);
  EXPECT_THAT(huge->body, HasSubstr("\"error\""));
}

TEST(RestGatewayLimitTest, EachKeyGetsItsOwnBucketAndARetryAfter) {
  testing::FakeClock clock;
  Metrics metrics;
  RestGateway gateway(RestGatewayOptions{ApiKeys({"a", "b"}), 2}, &metrics, clock);
  auto call = [&](const std::string& key) {
    return gateway.Handle({"GET", "/v1/chains/c/environments/e", "Api-Key " + key, "", ""});
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

TEST(RestGatewayLimitTest, OneKeyIsOneBucketWhateverTheSpelling) {
  testing::FakeClock clock;
  Metrics metrics;
  RestGateway gateway(RestGatewayOptions{ApiKeys({"k"}), 3}, &metrics, clock);
  std::vector<int> codes;
  for (const char* spelling : {"Api-Key k", "Bearer    k", "API-KEY k", "bearer\tk", " Bearer k "}) {
    codes.push_back(
        gateway.Handle({"GET", "/v1/chains/c/environments/e", spelling, "", "10.0.0.1"}).status);
  }
  EXPECT_EQ(codes, (std::vector<int>{503, 503, 503, 429, 429}));
  EXPECT_EQ(gateway.tracked_keys(), 1u);
}

TEST(RestGatewayLimitTest, FailedKeysAreThrottledPerAddressInBoundedMemory) {
  testing::FakeClock clock;
  Metrics metrics;
  RestGatewayOptions options{ApiKeys({"right"}), 0};
  options.failed_keys_burst = 3;
  options.failed_keys_per_second = 0.5;
  options.max_tracked = 1000;
  RestGateway gateway(options, &metrics, clock);
  auto call = [&](const std::string& key, const std::string& address) {
    return gateway.Handle({"GET", "/v1/chains/c/environments/e", "Api-Key " + key, "", address});
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(call("guess", "10.0.0.1").status, 401);
  RestResponse throttled = call("guess", "10.0.0.1");
  EXPECT_EQ(throttled.status, 429);
  EXPECT_EQ(throttled.headers["Retry-After"], "2");
  EXPECT_EQ(call("right", "10.0.0.1").status, 429) << "the key is not even looked at";
  EXPECT_EQ(call("right", "10.0.0.2").status, 503) << "another address is not affected";
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(call("right", "10.0.0.1").status, 503);
  // Guessing from 50 000 addresses: the throttle's memory stays bounded.
  for (int i = 0; i < 50'000; ++i) call("guess", absl::StrCat("fd00::", absl::Hex(i)));
  EXPECT_LE(gateway.tracked_clients(), 1001u);
}

TEST(RestGatewayMethodsTest, OptionsAnswersAndOtherMethodsGet405WithAllow) {
  testing::ManagementCore core;
  Metrics metrics;
  RestGateway gateway(RestGatewayOptions{ApiKeys(), 0}, &metrics, core.clock());
  gateway.SetManagement(&core.management());
  RestResponse options = gateway.Handle({"OPTIONS", kPath, "", "", ""});
  EXPECT_EQ(options.status, 204);
  EXPECT_EQ(options.headers["Allow"], "OPTIONS, PATCH");
  RestResponse trace = gateway.Handle({"TRACE", "/v1/chains/c/environments/e", "", "", ""});
  EXPECT_EQ(trace.status, 405);
  EXPECT_EQ(trace.headers["Allow"], "GET, HEAD, OPTIONS");
  RestResponse chains = gateway.Handle({"PUT", "/v1/chains/c", "", "", ""});
  EXPECT_EQ(chains.status, 405);
  EXPECT_EQ(chains.headers["Allow"], "DELETE, GET, HEAD, OPTIONS");
  EXPECT_EQ(gateway.Handle({"HEAD", "/v1/chains/c/environments/e", "", "", ""}).status, 404)
      << "HEAD is answered as GET (no chain c here)";
  RestResponse wrong_type = gateway.Handle(
      {"PATCH", kPath, "",
       R"({"updates": [{"chainlet_name": "HelloWorld", "autoscaling_settings": {"max_replica": "7", "scale_down_delay": true}}]})",
       ""});
  EXPECT_EQ(wrong_type.status, 400);
  EXPECT_THAT(wrong_type.body,
              HasSubstr(R"("field":"updates[0].autoscaling_settings.max_replica")"));
  EXPECT_THAT(wrong_type.body,
              HasSubstr(R"("field":"updates[0].autoscaling_settings.scale_down_delay")"));
}

}  // namespace
}  // namespace chainscale
