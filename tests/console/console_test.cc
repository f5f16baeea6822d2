// The console's handlers without sockets: pages and their headers, keys as the REST
// gateway takes them, and POST /v1/simulations answering what the simulation core
// computes.
#include "console/console.h"

#include <google/protobuf/util/json_util.h>

#include <memory>
#include <string>

#include "common/field_violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/simulator/simulation_request.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kKey[] = "console-key";

ConsoleRequest Request(std::string method, std::string path, std::string body = "",
                       std::string authorization = std::string("Api-Key ") + kKey) {
  ConsoleRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  r.authorization = std::move(authorization);
  return r;
}

ConsoleOptions WithKey() {
  ConsoleOptions options;
  options.api_keys = ApiKeys({kKey});
  return options;
}

template <typename T>
T Parse(const std::string& json) {
  T message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &message).ok()) << json;
  return message;
}

TEST(ConsoleTest, ServesThePageAndItsAssetsWithoutAKey) {
  Console console(WithKey());
  ConsoleResponse page = console.Handle(Request("GET", "/", "", ""));
  ASSERT_TRUE(page.error.ok()) << page.error;
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("<script type=\"module\" src=\"/console/console.js\">"));
  EXPECT_THAT(page.headers["Content-Security-Policy"], HasSubstr("default-src 'self'"));
  EXPECT_EQ(page.headers["X-Content-Type-Options"], "nosniff");
  for (const char* asset : {"console.js", "chart.js", "console.css", "sample_trace.csv"}) {
    ConsoleResponse r = console.Handle(Request("GET", std::string("/console/") + asset, "", ""));
    EXPECT_TRUE(r.error.ok()) << asset;
    EXPECT_FALSE(r.body.empty()) << asset;
  }
  EXPECT_THAT(console.Handle(Request("GET", "/console/chart.js")).content_type,
              HasSubstr("text/javascript"));
  EXPECT_EQ(console.Handle(Request("GET", "/console/../etc/passwd")).error.code(),
            absl::StatusCode::kNotFound);
  ConsoleResponse post = console.Handle(Request("POST", "/"));
  EXPECT_EQ(post.http_status, 405);
  EXPECT_EQ(post.headers["Allow"], "GET");
}

TEST(ConsoleTest, TheSessionSaysWhetherAKeyIsWantedButNeverTestsOne) {
  Console with_key(WithKey());
  for (const char* authorization : {"", "Api-Key wrong", "Api-Key console-key"}) {
    ConsoleResponse r = with_key.Handle(Request("GET", "/v1/console/session", "", authorization));
    EXPECT_TRUE(r.error.ok()) << authorization;
    EXPECT_EQ(r.body, "{\"auth\":\"api_key\"}\n") << authorization;
  }
  Console open{ConsoleOptions{}};
  EXPECT_EQ(open.Handle(Request("GET", "/v1/console/session", "", "")).body,
            "{\"auth\":\"none\"}\n");
}

TEST(ConsoleTest, CallsNeedTheManagementKey) {
  Console console(WithKey());
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"POST", "/v1/simulations"},
                                                        {"GET", "/v1/simulations/scenarios"}}) {
    for (const char* authorization : {"", "Api-Key wrong", "Bearer"}) {
      ConsoleResponse r = console.Handle(Request(method, path, "{}", authorization));
      EXPECT_EQ(r.error.code(), absl::StatusCode::kUnauthenticated) << path << authorization;
      EXPECT_EQ(r.headers["WWW-Authenticate"], "Api-Key");
    }
  }
  ConsoleResponse bearer =
      console.Handle(Request("GET", "/v1/simulations/scenarios", "", std::string("Bearer ") + kKey));
  EXPECT_TRUE(bearer.error.ok()) << bearer.error;
  const auto scenarios = Parse<v1::ListSimulationScenariosResponse>(bearer.body);
  ASSERT_EQ(scenarios.scenarios_size(), 7);
  EXPECT_EQ(scenarios.scenarios(0).name(), "step");
}

TEST(ConsoleTest, SimulationsAnswerWhatTheCoreComputes) {
  Console console(WithKey());
  const std::string body =
      R"({"pattern": "pulse:0,6,20m,3m", "duration_seconds": 7200, "startup_seconds": 120,
          "autoscaling_settings": {"max_replica": 5, "concurrency_target": 2,
                                   "scale_down_delay": 120}})";
  ConsoleResponse r = console.Handle(Request("POST", "/v1/simulations", body));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.content_type, "application/json");
  const auto result = Parse<v1::SimulationResult>(r.body);
  absl::StatusOr<v1::SimulationResult> direct =
      RunSimulationRequest(*SimulationRequestFromJson(body), SimulationLimits{});
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(result.meters().SerializeAsString(), direct->meters().SerializeAsString());
  EXPECT_GE(result.meters().cold_starts(), 4);
  EXPECT_EQ(result.series().load_size(), 1200);

  ConsoleResponse bad = console.Handle(Request(
      "POST", "/v1/simulations", R"({"pattern": "step:1,2,3s", "startup_seconds": -1})"));
  EXPECT_EQ(bad.error.code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields;
  for (const FieldViolation& v : FieldViolationsOf(bad.error)) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("startup_seconds"));
  EXPECT_EQ(console.Handle(Request("GET", "/v1/simulations")).http_status, 405);
}

TEST(ConsoleTest, BodiesOverTheLimitAndTooManySimulationsAreRefused) {
  ConsoleOptions options = WithKey();
  options.max_body_bytes = 100;
  Console small(options);
  ConsoleResponse big =
      small.Handle(Request("POST", "/v1/simulations", std::string(101, ' ')));
  EXPECT_EQ(big.http_status, 413);
  options.max_concurrent_simulations = 0;
  Console none(options);
  EXPECT_EQ(none.Handle(Request("POST", "/v1/simulations", R"({"pattern":"constant:1"})"))
                .error.code(),
            absl::StatusCode::kResourceExhausted);
}

// A history path of chainlet A of demo/production, with its query.
ConsoleRequest HistoryRequest(const std::string& path_tail, const std::string& query,
                              std::string authorization = std::string("Api-Key ") + kKey) {
  ConsoleRequest r = Request("GET", "/v1/console/chains/" + path_tail, "", authorization);
  r.query = query;
  return r;
}

absl::Status OnlyChainletA(absl::string_view chain_id, absl::string_view env_name,
                           absl::string_view chainlet_name) {
  if (chain_id == "demo" && env_name == "production" && chainlet_name == "A") {
    return absl::OkStatus();
  }
  return absl::NotFoundError("chainlet not found");
}

TEST(ConsoleTest, HistoryAnswersTheChainletsPointsForExistingChainletsOnly) {
  DecisionHistory history;
  v1::ScalingDecision d;
  d.set_chain_id("demo");
  d.set_env_name("production");
  d.set_chainlet_name("A");
  d.set_desired_replicas(4);
  d.set_avg_in_flight_requests(25);
  d.set_status(v1::ScalingDecision::ACCEPTED);
  d.mutable_decided_at()->set_seconds(1'700'000'000);
  history.Record(d);
  ConsoleOptions options = WithKey();
  options.history = &history;
  Console console(options);
  const std::string path = "demo/environments/production/history";
  EXPECT_EQ(console.Handle(HistoryRequest(path, "chainlet=A")).error.code(),
            absl::StatusCode::kUnavailable);  // the store is still opening
  console.SetChainletLookup(OnlyChainletA);
  ConsoleResponse r = console.Handle(HistoryRequest(path, "chainlet=A"));
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(r.content_type, "application/json");
  const auto answer = Parse<v1::ChainletDecisionHistory>(r.body);
  ASSERT_EQ(answer.points_size(), 1);
  EXPECT_EQ(answer.points(0).desired_replicas(), 4);
  EXPECT_DOUBLE_EQ(answer.points(0).avg_in_flight_requests(), 25);
  EXPECT_EQ(answer.points(0).status(), v1::ScalingDecision::ACCEPTED);
  EXPECT_EQ(answer.points(0).time().seconds(), 1'700'000'000);

  EXPECT_EQ(console.Handle(HistoryRequest(path, "chainlet=B")).error.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(console.Handle(HistoryRequest("nope/environments/production/history", "chainlet=A"))
                .error.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(console.Handle(HistoryRequest(path, "")).error.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(console.Handle(HistoryRequest("Bad_Chain/environments/production/history",
                                          "chainlet=A"))
                .error.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(console.Handle(HistoryRequest("demo/environments/production", "chainlet=A"))
                .error.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(console.Handle(HistoryRequest(path, "chainlet=A", "Api-Key wrong")).error.code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(ConsoleTest, EveryPathItListsIsAnswered) {
  DecisionHistory history;
  ConsoleOptions options = WithKey();
  options.history = &history;
  Console console(options);
  console.SetChainletLookup(OnlyChainletA);
  for (const Console::Path& p : Console::Paths()) {
    std::string path = p.prefix ? std::string(p.path) + "console.js" : p.path;
    if (path == "/v1/console/chains/console.js") {
      path = "/v1/console/chains/demo/environments/production/history";
    }
    ConsoleRequest request =
        Request(p.method, path, R"({"pattern": "constant:1", "duration_seconds": 5})");
    request.query = "chainlet=A";
    ConsoleResponse r = console.Handle(request);
    EXPECT_TRUE(r.error.ok()) << path << ": " << r.error;
    ConsoleResponse wrong =
        console.Handle(Request(std::string(p.method) == "GET" ? "DELETE" : "GET", path));
    EXPECT_EQ(wrong.http_status, 405) << path;
    EXPECT_EQ(wrong.headers["Allow"], p.method) << path;
    // needs_key says which paths the HTTP glue sends through the REST gateway's admission.
    ConsoleResponse keyless = console.Handle(
        Request(p.method, path, R"({"pattern": "constant:1", "duration_seconds": 5})", ""));
    EXPECT_EQ(keyless.error.code() == absl::StatusCode::kUnauthenticated, p.needs_key) << path;
  }
  EXPECT_EQ(console.Handle(Request("GET", "/v1/console/chains")).error.code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chainscale
