// A seeded random-mutation fuzz test of the REST gateway's JSON parsing and validation:
// mutated Baseten requests must always get a JSON answer with an expected HTTP code, and
// whatever got through must leave only valid settings behind. Bounded in count and time.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <random>
#include <set>

#include "common/settings_proto.h"
#include "control_plane/rest_gateway.h"
#include "gtest/gtest.h"
#include "tests/testing/baseten_samples.h"
#include "tests/testing/management_core.h"

namespace chainscale {
namespace {

constexpr int kIterations = 20000;
const absl::Duration kTimeBudget = absl::Seconds(20);

const char* const kSeeds[] = {
    testing::kBasetenPatchBody,
    R"({"updates": [{"autoscaling_settings": {"min_replica": 0}, "chainlet_name": "HelloWorld"}, {"autoscaling_settings": {"min_replica": 0}, "chainlet_name": "RandInt"}]})",
    R"({"updates": [{"chainlet_name": "RandInt", "autoscaling_settings": {"max_scale_down_rate": 25, "target_in_flight_tokens": 40000}}]})",
    testing::kBasetenCreateEnvironmentBody,
    R"({"expected_revision": "1", "updates": [{"chainlet_name": "HelloWorld", "reset_fields": ["max_replica"]}]})",
};
const char* const kTokens[] = {"{", "}", "[", "]", ",", ":", "\"", "null", "true", "-1",
                               "1e309", "2147483648", "\"x\"", "0", "\\u0000", "NaN",
                               "\"updates\"", "\"max_replica\"", "{}", "[]"};
const char* const kPaths[] = {
    "/v1/chains/demo/environments/production/chainlet_settings/autoscaling_settings",
    "/v1/chains/demo/environments/development/chainlet_settings/autoscaling_settings",
    "/v1/chains/demo/environments",
    "/v1/chains/demo/environments/production",
    "/v1/chains/de%00mo/environments/production",
    "/v1/chains//environments/production/chainlet_settings/autoscaling_settings",
    "/v1/chains/demo",
    "/v1/chains",
};
const char* const kMethods[] = {"PATCH", "POST", "GET"};

std::string Mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const int rounds = 1 + static_cast<int>(pick(4));
  for (int i = 0; i < rounds; ++i) {
    const size_t at = s.empty() ? 0 : pick(s.size() + 1);
    switch (pick(5)) {
      case 0:  // flip a byte
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
        break;
      case 1:  // delete a run
        if (!s.empty()) s.erase(pick(s.size()), 1 + pick(8));
        break;
      case 2:  // insert a JSON token
        s.insert(at, kTokens[pick(std::size(kTokens))]);
        break;
      case 3:  // duplicate a run
        if (!s.empty()) {
          const size_t from = pick(s.size());
          s.insert(at, s.substr(from, 1 + pick(16)));
        }
        break;
      case 4:  // truncate
        s.resize(pick(s.size() + 1));
        break;
    }
  }
  return s;
}

TEST(RestFuzzTest, MutatedRequestsGetJsonAnswersAndLeaveValidSettings) {
  testing::ManagementCore core;
  v1::CreateChainRequest create;
  create.set_chain_id("demo");
  create.add_chainlet_names("HelloWorld");
  create.add_chainlet_names("RandInt");
  ASSERT_TRUE(core.registry().CreateChain(create).ok());

  Metrics metrics;
  RestGateway gateway(RestGatewayOptions{ApiKeys(), 0, 4096}, &metrics, core.clock());
  gateway.SetManagement(&core.management());

  const std::set<int> expected_codes = {200, 400, 404, 405, 409, 413, 429};
  std::mt19937_64 rng(20261123);
  std::map<int, int> seen;
  const absl::Time deadline = absl::Now() + kTimeBudget;
  int iterations = 0;
  for (; iterations < kIterations && absl::Now() < deadline; ++iterations) {
    RestRequest request;
    request.method = kMethods[rng() % std::size(kMethods)];
    request.path = kPaths[rng() % std::size(kPaths)];
    request.body = Mutate(kSeeds[rng() % std::size(kSeeds)], rng);
    const RestResponse response = gateway.Handle(request);
    ++seen[response.status];
    ASSERT_TRUE(expected_codes.count(response.status))
        << response.status << " for " << request.method << " " << request.path << " "
        << request.body << " -> " << response.body;
    google::protobuf::Struct json;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(response.body, &json).ok())
        << "not JSON: " << response.body;
  }
  EXPECT_GT(iterations, 500);
  EXPECT_GT(seen[200], 0) << "some mutations must still be valid requests";
  EXPECT_GT(seen[400], 0);
  // Nothing invalid was ever stored.
  const StoreSnapshot snapshot = core.store().ReadSnapshot().value();
  for (const v1::ChainletState& state : snapshot.chainlets) {
    const AutoscalingSettings settings =
        Merge(DefaultSettings(state.key().env_name()), UpdateFromProto(state.settings()));
    EXPECT_TRUE(Validate(settings, state.key().env_name(), SettingsLimits{}).ok())
        << state.DebugString();
  }
}

}  // namespace
}  // namespace chainscale
