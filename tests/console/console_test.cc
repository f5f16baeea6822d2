// The console's handlers without sockets: pages and their headers, keys as the REST
// gateway takes them, the reads with stored decisions, and POST /v1/simulations answering
// what the simulation core computes.
#include "console/console.h"

#include <google/protobuf/util/json_util.h>

#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "common/field_violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/temp_dir.h"
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

TEST(ConsoleTest, TheSessionSaysWhetherAKeyIsWantedAndGood) {
  Console with_key(WithKey());
  EXPECT_EQ(with_key.Handle(Request("GET", "/v1/console/session", "", "")).body,
            "{\"auth\":\"api_key\",\"authenticated\":false}\n");
  EXPECT_EQ(with_key.Handle(Request("GET", "/v1/console/session", "", "Api-Key wrong")).body,
            "{\"auth\":\"api_key\",\"authenticated\":false}\n");
  EXPECT_EQ(with_key.Handle(Request("GET", "/v1/console/session")).body,
            "{\"auth\":\"api_key\",\"authenticated\":true}\n");
  Console open{ConsoleOptions{}};
  EXPECT_EQ(open.Handle(Request("GET", "/v1/console/session", "", "")).body,
            "{\"auth\":\"none\",\"authenticated\":true}\n");
}

TEST(ConsoleTest, CallsNeedTheManagementKey) {
  Console console(WithKey());
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/console/chains"},
                                                        {"POST", "/v1/simulations"},
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

TEST(ConsoleTest, ReadsShowSettingsRevisionsAndStoredDecisions) {
  Console console(WithKey());
  EXPECT_EQ(console.Handle(Request("GET", "/v1/console/chains")).error.code(),
            absl::StatusCode::kUnavailable);

  testing::ScopedTempDir dir;
  testing::FakeClock clock;
  StoreOptions store_options;
  store_options.path = dir.str();
  store_options.sync_writes = false;
  std::unique_ptr<Store> store = Store::Open(store_options).value();
  Committer committer(store.get(), nullptr);
  Registry registry(store.get(), &committer, RegistryOptions{}, clock);
  v1::CreateChainRequest create;
  create.set_chain_id("shop");
  create.add_chainlet_names("Checkout");
  ASSERT_TRUE(registry.CreateChain(create).ok());
  v1::ScalingDecision decision;
  decision.set_chain_id("shop");
  decision.set_env_name("production");
  decision.set_chainlet_name("Checkout");
  decision.set_desired_replicas(3);
  decision.set_status(v1::ScalingDecision::ACCEPTED);
  decision.set_reason("scaled up from 1 to 3");
  absl::Notification stored;
  std::vector<absl::Status> statuses;
  committer.StoreDecisions({decision}, [&](const std::vector<absl::Status>& s) {
    statuses = s;
    stored.Notify();
  });
  ASSERT_TRUE(stored.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_THAT(statuses, ElementsAre(absl::OkStatus()));
  console.SetRegistry(&registry);

  const auto chains =
      Parse<v1::ListChainsResponse>(console.Handle(Request("GET", "/v1/console/chains")).body);
  ASSERT_EQ(chains.chains_size(), 1);
  EXPECT_EQ(chains.chains(0).chain_id(), "shop");
  EXPECT_THAT(chains.chains(0).environments(), ElementsAre("development", "production"));
  const auto chain =
      Parse<v1::Chain>(console.Handle(Request("GET", "/v1/console/chains/shop")).body);
  EXPECT_THAT(chain.chainlet_names(), ElementsAre("Checkout"));
  ConsoleResponse env =
      console.Handle(Request("GET", "/v1/console/chains/shop/environments/production"));
  ASSERT_TRUE(env.error.ok()) << env.error;
  const auto environment = Parse<v1::ChainEnvironment>(env.body);
  ASSERT_EQ(environment.chainlet_settings_size(), 1);
  EXPECT_EQ(environment.chainlet_settings(0).decision().desired_replicas(), 3);
  EXPECT_EQ(environment.chainlet_settings(0).autoscaling_settings().max_replica(), 1);
  // Zero values are printed, so the page reads every field.
  EXPECT_THAT(env.body, HasSubstr("\"min_replica\":0"));

  EXPECT_EQ(console.Handle(Request("GET", "/v1/console/chains/nope")).error.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(console.Handle(Request("GET", "/v1/console/chains/shop/environments/nope"))
                .error.code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(console.Handle(Request("GET", "/v1/console/other")).error.code(),
            absl::StatusCode::kNotFound);
  ConsoleRequest paged = Request("GET", "/v1/console/chains");
  paged.query["page_size"] = "many";
  EXPECT_EQ(console.Handle(paged).error.code(), absl::StatusCode::kInvalidArgument);
  console.SetRegistry(nullptr);
}

}  // namespace
}  // namespace chainscale
