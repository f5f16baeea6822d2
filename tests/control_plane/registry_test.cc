// The management API's core on a real store: registry calls, partial updates with
// UNCHANGED detection, atomicity, and every error with its code and field.
#include "control_plane/registry.h"

#include <string>

#include "absl/strings/escaping.h"
#include "common/field_violations.h"
#include "common/settings_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using UpdateRequest = v1::UpdateChainletEnvironmentAutoscalingSettingsRequest;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.path = dir_.str();
    options.sync_writes = false;  // durability is the store test's subject
    store_ = Store::Open(options).value();
    RegistryOptions registry_options;
    registry_options.max_chainlets_per_chain = 5;
    registry_options.max_environments_per_chain = 3;
    committer_ = std::make_unique<Committer>(store_.get(), nullptr);
    registry_ = std::make_unique<Registry>(store_.get(), committer_.get(), registry_options,
                                           clock_);
  }
  void TearDown() override {
    registry_.reset();
    committer_.reset();
    store_.reset();
  }

  v1::Chain Create(const std::string& id, std::vector<std::string> chainlets) {
    v1::CreateChainRequest request;
    request.set_chain_id(id);
    for (auto& c : chainlets) request.add_chainlet_names(c);
    absl::StatusOr<v1::Chain> chain = registry_->CreateChain(request);
    EXPECT_TRUE(chain.ok()) << chain.status();
    return chain.value_or(v1::Chain());
  }

  static UpdateRequest Update(const std::string& chain, const std::string& env) {
    UpdateRequest request;
    request.set_chain_id(chain);
    request.set_env_name(env);
    return request;
  }

  static v1::AutoscalingSettings* Add(UpdateRequest& request, const std::string& chainlet) {
    auto* update = request.add_updates();
    update->set_chainlet_name(chainlet);
    return update->mutable_autoscaling_settings();
  }

  v1::AutoscalingSettings SettingsOf(const std::string& chain, const std::string& env,
                                     const std::string& chainlet) {
    absl::StatusOr<v1::ChainEnvironment> e = registry_->GetChainEnvironment(chain, env);
    EXPECT_TRUE(e.ok()) << e.status();
    for (const auto& c : e->chainlet_settings()) {
      if (c.chainlet_name() == chainlet) return c.autoscaling_settings();
    }
    ADD_FAILURE() << "no chainlet " << chainlet;
    return {};
  }

  testing::FakeClock clock_;
  testing::ScopedTempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(RegistryTest, CreateChainMakesProductionAndDevelopmentWithDefaults) {
  v1::Chain chain = Create("my-chain", {"HelloWorld", "RandInt"});
  EXPECT_EQ(chain.chain_id(), "my-chain");
  EXPECT_EQ(chain.name(), "my-chain");
  EXPECT_THAT(chain.environments(), ElementsAre("development", "production"));
  EXPECT_EQ(chain.revision(), 1);
  EXPECT_EQ(chain.create_time().seconds(), 1'700'000'000);

  absl::StatusOr<v1::ChainEnvironment> env =
      registry_->GetChainEnvironment("my-chain", "production");
  ASSERT_TRUE(env.ok()) << env.status();
  ASSERT_EQ(env->chainlet_settings_size(), 2);
  EXPECT_EQ(env->chainlet_settings(0).chainlet_name(), "HelloWorld");
  EXPECT_EQ(env->chainlet_settings(1).chainlet_name(), "RandInt");
  const v1::AutoscalingSettings& s = env->chainlet_settings(0).autoscaling_settings();
  EXPECT_EQ(s.min_replica(), 0);
  EXPECT_EQ(s.max_replica(), 1);
  EXPECT_EQ(s.autoscaling_window(), 60);
  EXPECT_EQ(s.scale_down_delay(), 900);
  EXPECT_EQ(s.concurrency_target(), 1);
  EXPECT_EQ(s.target_utilization_percentage(), 70);
  EXPECT_FALSE(s.has_target_in_flight_tokens());
  EXPECT_EQ(s.max_scale_down_rate(), 50);
  EXPECT_EQ(env->chainlet_settings(0).revision(), 1);
  EXPECT_FALSE(env->chainlet_settings(0).has_decision());
  EXPECT_TRUE(registry_->GetChainEnvironment("my-chain", "development").ok());
}

TEST_F(RegistryTest, CreateChainGeneratesAnIdWhenNoneIsGiven) {
  v1::CreateChainRequest request;
  request.add_chainlet_names("A");
  request.set_name("My chain");
  absl::StatusOr<v1::Chain> chain = registry_->CreateChain(request);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_THAT(chain->chain_id(), ::testing::MatchesRegex("[a-z0-9]{12}"));
  EXPECT_EQ(chain->name(), "My chain");
  EXPECT_TRUE(registry_->GetChain(chain->chain_id()).ok());
}

TEST_F(RegistryTest, CreateChainRejectsBadInputNamingEachField) {
  v1::CreateChainRequest request;
  request.set_chain_id("Bad_Id");
  request.add_chainlet_names("ok");
  request.add_chainlet_names("not ok");
  request.add_chainlet_names("ok");
  absl::StatusOr<v1::Chain> chain = registry_->CreateChain(request);
  ASSERT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> fields;
  for (const auto& v : FieldViolationsOf(chain.status())) fields.push_back(v.field);
  EXPECT_THAT(fields, ElementsAre("chain_id", "chainlet_names[1]", "chainlet_names[2]"));
  EXPECT_EQ(store_->revision(), 0);

  request.Clear();
  request.set_chain_id("empty");
  EXPECT_THAT(FieldViolationsOf(registry_->CreateChain(request).status()),
              ElementsAre(FieldViolation{"chainlet_names", "must name at least one chainlet"}));
  for (int i = 0; i < 6; ++i) request.add_chainlet_names("c" + std::to_string(i));
  EXPECT_THAT(FieldViolationsOf(registry_->CreateChain(request).status()),
              ElementsAre(FieldViolation{"chainlet_names",
                                         "at most 5 chainlets per chain, got 6"}));
}

TEST_F(RegistryTest, CreateChainTwiceIsAlreadyExists) {
  Create("twice", {"A"});
  v1::CreateChainRequest request;
  request.set_chain_id("twice");
  request.add_chainlet_names("B");
  EXPECT_EQ(registry_->CreateChain(request).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->revision(), 1);
}

TEST_F(RegistryTest, PartialUpdateChangesOnlyThePassedFields) {
  Create("c", {"HelloWorld", "RandInt"});
  UpdateRequest request = Update("c", "production");
  auto* s = Add(request, "HelloWorld");
  s->set_autoscaling_window(800);
  s->set_concurrency_target(4);
  s->set_max_replica(3);
  s->set_min_replica(2);
  s->set_scale_down_delay(63);
  absl::StatusOr<UpdateOutcome> outcome = registry_->UpdateSettings(request);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->changed);
  EXPECT_EQ(outcome->revision, 2);
  EXPECT_EQ(outcome->message,
            "revision 2 of c/production: HelloWorld: min_replica from 0 to 2, max_replica from 1 "
            "to 3, autoscaling_window from 60 to 800, scale_down_delay from 900 to 63, "
            "concurrency_target from 1 to 4");
  v1::AutoscalingSettings got = SettingsOf("c", "production", "HelloWorld");
  EXPECT_EQ(got.min_replica(), 2);
  EXPECT_EQ(got.max_replica(), 3);
  EXPECT_EQ(got.target_utilization_percentage(), 70);  // not passed: unchanged
  EXPECT_EQ(SettingsOf("c", "production", "RandInt").max_replica(), 1);  // untouched
  absl::StatusOr<v1::ChainEnvironment> env = registry_->GetChainEnvironment("c", "production");
  EXPECT_EQ(env->chainlet_settings(0).revision(), 2);
  EXPECT_EQ(env->chainlet_settings(1).revision(), 1);

  // A second partial update sees the first.
  request = Update("c", "production");
  Add(request, "HelloWorld")->set_target_utilization_percentage(50);
  ASSERT_TRUE(registry_->UpdateSettings(request).ok());
  got = SettingsOf("c", "production", "HelloWorld");
  EXPECT_EQ(got.min_replica(), 2);
  EXPECT_EQ(got.target_utilization_percentage(), 50);
}

TEST_F(RegistryTest, UpdateThatChangesNothingIsUnchangedAndWritesNothing) {
  Create("c", {"HelloWorld"});
  UpdateRequest request = Update("c", "production");
  Add(request, "HelloWorld")->set_max_replica(1);  // already 1
  absl::StatusOr<UpdateOutcome> outcome = registry_->UpdateSettings(request);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_FALSE(outcome->changed);
  EXPECT_EQ(outcome->revision, 1);
  EXPECT_THAT(outcome->message, HasSubstr("no change"));
  EXPECT_EQ(store_->revision(), 1);
  // An empty settings object is a no-op too.
  request = Update("c", "production");
  Add(request, "HelloWorld");
  EXPECT_FALSE(registry_->UpdateSettings(request).value().changed);
}

TEST_F(RegistryTest, InvalidMergedSettingsRejectTheWholeRequest) {
  Create("c", {"HelloWorld", "RandInt"});
  UpdateRequest request = Update("c", "production");
  Add(request, "RandInt")->set_max_replica(5);  // valid on its own
  Add(request, "HelloWorld")->set_min_replica(5);  // against stored max 1
  absl::StatusOr<UpdateOutcome> outcome = registry_->UpdateSettings(request);
  ASSERT_EQ(outcome.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(outcome.status()),
              ElementsAre(FieldViolation{"updates[1].autoscaling_settings.min_replica",
                                         "min_replica (5) must not exceed max_replica (1)"}));
  EXPECT_EQ(SettingsOf("c", "production", "RandInt").max_replica(), 1);  // nothing applied
  EXPECT_EQ(store_->revision(), 1);
}

TEST_F(RegistryTest, UnknownChainletRejectsTheWholeRequest) {
  Create("c", {"HelloWorld"});
  UpdateRequest request = Update("c", "production");
  Add(request, "HelloWorld")->set_max_replica(4);
  Add(request, "Nope")->set_max_replica(4);
  absl::StatusOr<UpdateOutcome> outcome = registry_->UpdateSettings(request);
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(outcome.status().message(),
            "chainlet \"Nope\" not found in chain \"c\" (it has \"HelloWorld\")");
  EXPECT_EQ(SettingsOf("c", "production", "HelloWorld").max_replica(), 1);
}

// DESIGN §14: a list of names in an error is cut to 10 and "and N more", and a name too
// long to print is shortened, so the message stays under 1 KiB.
TEST_F(RegistryTest, UnknownChainletMessagesStayShort) {
  RegistryOptions options;
  options.max_chainlets_per_chain = 1000;
  registry_ = std::make_unique<Registry>(store_.get(), committer_.get(), options, clock_);
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back("Chainlet" + std::to_string(1000 + i));
  Create("wide", names);
  UpdateRequest request = Update("wide", "production");
  for (int i = 0; i < 30; ++i) Add(request, "Nope" + std::to_string(i))->set_max_replica(2);
  Add(request, std::string(100000, 'x'))->set_max_replica(2);
  absl::Status status = registry_->UpdateSettings(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_LE(status.message().size(), 1024u);
  EXPECT_EQ(status.message(),
            "chainlets \"Nope0\", \"Nope1\", \"Nope2\", \"Nope3\", \"Nope4\", \"Nope5\", "
            "\"Nope6\", \"Nope7\", \"Nope8\", \"Nope9\" and 21 more not found in chain "
            "\"wide\" (it has \"Chainlet1000\", \"Chainlet1001\", \"Chainlet1002\", "
            "\"Chainlet1003\", \"Chainlet1004\", \"Chainlet1005\", \"Chainlet1006\", "
            "\"Chainlet1007\", \"Chainlet1008\", \"Chainlet1009\" and 290 more)");
  request = Update("wide", "production");
  Add(request, std::string(100000, 'x'))->set_max_replica(2);
  status = registry_->UpdateSettings(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("\"xxxxxxxxxxxxxxxx"));
  EXPECT_THAT(status.message(), HasSubstr("(100000 bytes)"));
  EXPECT_LE(status.message().size(), 1024u);
}

// Display names are shown to people: control characters (NUL, escape sequences) and
// bidirectional marks that reorder what a terminal or browser shows are refused.
TEST_F(RegistryTest, DisplayNamesRefuseControlAndBidiCharacters) {
  int i = 0;
  for (const std::string& name :
       {std::string("a\0b", 3), std::string("red \x1b[31mtext"), std::string("tab\there"),
        std::string("line\nbreak"), std::string("\xE2\x80\xAE" "evil"), std::string("x\xE2\x80\x8Fy"),
        std::string("\xE2\x81\xA6isolate"), std::string("bad \xFF utf8"), std::string("\xC2\x9B")}) {
    v1::CreateChainRequest request;
    request.set_chain_id("d" + std::to_string(i++));
    request.set_name(name);
    request.add_chainlet_names("A");
    absl::Status status = registry_->CreateChain(request).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(name);
    std::vector<FieldViolation> violations = FieldViolationsOf(status);
    ASSERT_EQ(violations.size(), 1u) << absl::CHexEscape(name);
    EXPECT_EQ(violations[0].field, "name");
  }
  v1::CreateChainRequest request;
  request.set_chain_id("fine");
  request.set_name("Mon modèle — 日本語 (v2)");
  request.add_chainlet_names("A");
  EXPECT_TRUE(registry_->CreateChain(request).ok());
}

TEST_F(RegistryTest, UpdateRequestShapeErrors) {
  Create("c", {"HelloWorld"});
  UpdateRequest request = Update("c", "production");
  EXPECT_THAT(FieldViolationsOf(registry_->UpdateSettings(request).status()),
              ElementsAre(FieldViolation{"updates",
                                         "must hold at least one chainlet's settings"}));
  Add(request, "HelloWorld")->set_max_replica(2);
  Add(request, "HelloWorld")->set_max_replica(3);
  request.add_updates()->set_chainlet_name("NoSettings");
  absl::Status status = registry_->UpdateSettings(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(status),
              ElementsAre(FieldViolation{"updates[1].chainlet_name",
                                         "\"HelloWorld\" is already updated by updates[0]; "
                                         "name each chainlet once"},
                          FieldViolation{"updates[2].autoscaling_settings",
                                         "is required unless reset_fields names a field"}));
}

TEST_F(RegistryTest, UnknownChainOrEnvironmentIsNotFoundAndMalformedIsInvalid) {
  Create("c", {"HelloWorld"});
  UpdateRequest request = Update("nope", "production");
  Add(request, "HelloWorld")->set_max_replica(2);
  EXPECT_EQ(registry_->UpdateSettings(request).status().code(), absl::StatusCode::kNotFound);
  request.set_chain_id("c");
  request.set_env_name("staging");
  absl::Status status = registry_->UpdateSettings(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "environment \"staging\" not found in chain \"c\" (it has \"development\", "
            "\"production\")");
  request.set_env_name("Prod!");
  EXPECT_THAT(FieldViolationsOf(registry_->UpdateSettings(request).status()),
              ElementsAre(FieldViolation{
                  "env_name", "may only contain lowercase letters, digits and '-'; \"Prod!\" "
                              "does not"}));
  EXPECT_EQ(registry_->GetChain("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->GetChain("missing").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, DevelopmentPinsReplicaBoundsButAllowsTheRest) {
  Create("c", {"HelloWorld"});
  UpdateRequest request = Update("c", "development");
  auto* s = Add(request, "HelloWorld");
  s->set_max_replica(3);
  s->set_scale_down_delay(30);
  absl::Status status = registry_->UpdateSettings(request).status();
  EXPECT_THAT(FieldViolationsOf(status),
              ElementsAre(FieldViolation{"updates[0].autoscaling_settings.max_replica",
                                         "is fixed at 1 in development environments, got 3"}));
  s->clear_max_replica();
  ASSERT_TRUE(registry_->UpdateSettings(request).ok());
  EXPECT_EQ(SettingsOf("c", "development", "HelloWorld").scale_down_delay(), 30);
}

// Baseten's fields chainscale does not model: stored as given, returned, gone with the
// environment.
TEST_F(RegistryTest, EnvironmentAttributesAreStoredReturnedAndDeleted) {
  Create("c", {"HelloWorld", "RandInt"});
  v1::CreateEnvironmentRequest request;
  request.set_chain_id("c");
  request.set_env_name("staging");
  (*request.mutable_instance_type_ids())["RandInt"] = "A10G:2x24x96";
  (*request.mutable_promotion_settings()->mutable_fields())["rolling_deploy"].set_bool_value(
      true);
  ASSERT_TRUE(registry_->CreateEnvironment(request).ok());
  absl::StatusOr<v1::ChainEnvironment> env = registry_->GetChainEnvironment("c", "staging");
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->chainlet_settings(0).instance_type_id(), "");
  EXPECT_EQ(env->chainlet_settings(1).instance_type_id(), "A10G:2x24x96");
  EXPECT_TRUE(env->promotion_settings().fields().at("rolling_deploy").bool_value());
  EXPECT_EQ(env->revision(), 2);
  EXPECT_GT(env->create_time().seconds(), 0);

  ASSERT_TRUE(registry_->DeleteEnvironment("c", "staging").ok());
  request.clear_instance_type_ids();
  request.clear_promotion_settings();
  ASSERT_TRUE(registry_->CreateEnvironment(request).ok());
  env = registry_->GetChainEnvironment("c", "staging");
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->chainlet_settings(1).instance_type_id(), "");
  EXPECT_FALSE(env->has_promotion_settings());
  EXPECT_EQ(registry_->GetChain("c")->environment_attributes_size(), 1);

  ASSERT_TRUE(registry_->DeleteEnvironment("c", "staging").ok());
  EXPECT_EQ(registry_->GetChain("c")->environment_attributes_size(), 0);
  request.set_env_name("qa");
  (*request.mutable_instance_type_ids())["Nope"] = "1x4";
  EXPECT_EQ(registry_->CreateEnvironment(request).status().code(),
            absl::StatusCode::kNotFound);
  request.clear_instance_type_ids();
  (*request.mutable_promotion_settings()->mutable_fields())["big"].set_string_value(
      std::string(5000, 'x'));
  EXPECT_THAT(FieldViolationsOf(registry_->CreateEnvironment(request).status()),
              ElementsAre(::testing::Field(&FieldViolation::field, "promotion_settings")));
}

TEST_F(RegistryTest, EnvironmentsAreCreatedWithInitialSettingsAndDeleted) {
  Create("c", {"HelloWorld", "RandInt"});
  v1::CreateEnvironmentRequest request;
  request.set_chain_id("c");
  request.set_env_name("staging");
  auto* initial = request.add_initial_settings();
  initial->set_chainlet_name("RandInt");
  initial->mutable_autoscaling_settings()->set_max_replica(4);
  absl::StatusOr<v1::ChainEnvironment> env = registry_->CreateEnvironment(request);
  ASSERT_TRUE(env.ok()) << env.status();
  ASSERT_EQ(env->chainlet_settings_size(), 2);
  EXPECT_EQ(env->chainlet_settings(0).autoscaling_settings().max_replica(), 1);
  EXPECT_EQ(env->chainlet_settings(1).autoscaling_settings().max_replica(), 4);
  EXPECT_THAT(registry_->GetChain("c")->environments(),
              ElementsAre("development", "production", "staging"));
  EXPECT_EQ(registry_->CreateEnvironment(request).status().code(),
            absl::StatusCode::kAlreadyExists);
  request.set_env_name("qa");
  request.clear_initial_settings();
  EXPECT_EQ(registry_->CreateEnvironment(request).status().code(),
            absl::StatusCode::kResourceExhausted);  // the limit here is 3

  absl::StatusOr<int64_t> revision = registry_->DeleteEnvironment("c", "staging");
  ASSERT_TRUE(revision.ok()) << revision.status();
  EXPECT_EQ(*revision, store_->revision());
  EXPECT_EQ(registry_->GetChainEnvironment("c", "staging").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListChainlets("c", "staging").value().empty());
  EXPECT_EQ(registry_->DeleteEnvironment("c", "production").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_->DeleteEnvironment("c", "staging").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, InvalidInitialSettingsCreateNothing) {
  Create("c", {"HelloWorld"});
  v1::CreateEnvironmentRequest request;
  request.set_chain_id("c");
  request.set_env_name("staging");
  auto* initial = request.add_initial_settings();
  initial->set_chainlet_name("HelloWorld");
  initial->mutable_autoscaling_settings()->set_autoscaling_window(5);
  EXPECT_THAT(FieldViolationsOf(registry_->CreateEnvironment(request).status()),
              ElementsAre(FieldViolation{"initial_settings[0].autoscaling_settings."
                                         "autoscaling_window",
                                         "must be between 10 and 3600 seconds, got 5"}));
  EXPECT_EQ(store_->revision(), 1);
}

TEST_F(RegistryTest, DeleteChainRemovesEverything) {
  Create("c", {"HelloWorld"});
  Create("d", {"Other"});
  ASSERT_TRUE(registry_->DeleteChain("c").ok());
  EXPECT_EQ(registry_->GetChain("c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListChainlets("c", "").value().empty());
  EXPECT_EQ(store_->ListChainlets("d", "").value().size(), 2u);
  EXPECT_EQ(registry_->DeleteChain("c").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, ListChainsPagesInIdOrder) {
  for (const char* id : {"c3", "c1", "c5", "c2", "c4"}) Create(id, {"A"});
  v1::ListChainsRequest request;
  request.set_page_size(2);
  std::vector<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<v1::ListChainsResponse> response = registry_->ListChains(request);
    ASSERT_TRUE(response.ok()) << response.status();
    for (const auto& c : response->chains()) seen.push_back(c.chain_id());
    if (response->next_page_token().empty()) break;
    request.set_page_token(response->next_page_token());
  }
  EXPECT_THAT(seen, ElementsAre("c1", "c2", "c3", "c4", "c5"));
  request.set_page_token("!!not-a-token!!");
  EXPECT_EQ(registry_->ListChains(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.Clear();
  request.set_page_size(-1);
  EXPECT_EQ(registry_->ListChains(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, LatestDecisionShowsInTheEnvironment) {
  Create("c", {"HelloWorld"});
  v1::ScalingDecision decision;
  decision.set_chain_id("c");
  decision.set_env_name("production");
  decision.set_chainlet_name("HelloWorld");
  decision.set_desired_replicas(3);
  decision.set_status(v1::ScalingDecision::ACCEPTED);
  ASSERT_TRUE(store_->PutDecisions({decision})[0].ok());
  absl::StatusOr<v1::ChainEnvironment> env = registry_->GetChainEnvironment("c", "production");
  ASSERT_TRUE(env.ok());
  ASSERT_TRUE(env->chainlet_settings(0).has_decision());
  EXPECT_EQ(env->chainlet_settings(0).decision().desired_replicas(), 3);
}

}  // namespace
}  // namespace chainscale
