// The core of KEDA's external scaler: the chainlet a trigger's metadata names (env_name
// defaulting to production, every problem named), the metric name, the key taken from the
// metadata or the header, and the desired replica count read from a real store (the
// stored decision, min_replica before one, NOT_FOUND naming what is missing).
#include "control_plane/keda_scaler.h"

#include <memory>
#include <string>

#include "common/field_violations.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] = "keda-key-0123456789";

ScalerMetadata Metadata(std::initializer_list<std::pair<const std::string, std::string>> kv) {
  ScalerMetadata out;
  for (const auto& [k, v] : kv) out[k] = v;
  return out;
}

TEST(ParseScaledChainletTest, ReadsTheChainletAndDefaultsToProduction) {
  absl::StatusOr<ScaledChainlet> full =
      ParseScaledChainlet(Metadata({{"scalerAddress", "cp:50051"},
                                    {"chain_id", "keda"},
                                    {"env_name", "staging"},
                                    {"chainlet_name", "Hello_World"}}));
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->chain_id, "keda");
  EXPECT_EQ(full->env_name, "staging");
  EXPECT_EQ(full->chainlet_name, "Hello_World");

  for (const std::string env : {"", "<absent>"}) {
    ScalerMetadata metadata = Metadata({{"chain_id", "keda"}, {"chainlet_name", "Model"}});
    if (env != "<absent>") metadata["env_name"] = env;
    absl::StatusOr<ScaledChainlet> defaulted = ParseScaledChainlet(metadata);
    ASSERT_TRUE(defaulted.ok()) << defaulted.status();
    EXPECT_EQ(defaulted->env_name, "production") << env;
  }
}

TEST(ParseScaledChainletTest, NamesEveryMissingOrInvalidKey) {
  absl::StatusOr<ScaledChainlet> missing = ParseScaledChainlet(Metadata({{"env_name", "prod"}}));
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(missing.status()),
              ElementsAre(Field(&FieldViolation::field, "scalerMetadata.chain_id"),
                          Field(&FieldViolation::field, "scalerMetadata.chainlet_name")));
  EXPECT_THAT(missing.status().message(), HasSubstr("scalerMetadata.chainlet_name: missing"));

  absl::StatusOr<ScaledChainlet> invalid = ParseScaledChainlet(
      Metadata({{"chain_id", "Keda"}, {"env_name", "Production"}, {"chainlet_name", "a/b"}}));
  ASSERT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(invalid.status()),
              ElementsAre(Field(&FieldViolation::field, "scalerMetadata.chain_id"),
                          Field(&FieldViolation::field, "scalerMetadata.env_name"),
                          Field(&FieldViolation::field, "scalerMetadata.chainlet_name")));
}

TEST(ScaledChainletTest, MetricNameIsLowercaseWithDashes) {
  EXPECT_EQ((ScaledChainlet{"keda", "production", "Hello_World"}).metric_name(),
            "chainscale-keda-production-hello-world");
  EXPECT_EQ((ScaledChainlet{"my-chain-2", "staging", "rand-int"}).metric_name(),
            "chainscale-my-chain-2-staging-rand-int");
}

TEST(AuthorizeScaledObjectTest, KeyFromMetadataOrHeader) {
  const ApiKeys keys({"other-key", kKey});
  const std::string key(kKey);
  const std::string header = "Api-Key " + key;
  // In the metadata, as written or as KEDA resolves api_keyFromEnv; a Secret's line end
  // is ignored.
  EXPECT_TRUE(AuthorizeScaledObject(keys, Metadata({{"api_key", key}}), std::nullopt).ok());
  EXPECT_TRUE(
      AuthorizeScaledObject(keys, Metadata({{"api_key", " " + key + "\n"}}), std::nullopt).ok());
  EXPECT_TRUE(AuthorizeScaledObject(keys, Metadata({{"api_keyFromEnv", key}}), std::nullopt).ok());
  // In the header, as the other calls take it.
  EXPECT_TRUE(AuthorizeScaledObject(keys, Metadata({}), header).ok());
  EXPECT_TRUE(AuthorizeScaledObject(keys, Metadata({}), "bearer " + key).ok());
  // Either one admits.
  EXPECT_TRUE(AuthorizeScaledObject(keys, Metadata({{"api_key", "wrong"}}), header).ok());
  EXPECT_TRUE(AuthorizeScaledObject(keys, Metadata({{"api_key", key}}), "Api-Key wrong").ok());
}

TEST(AuthorizeScaledObjectTest, RefusesWithoutAValidKey) {
  const ApiKeys keys({kKey});
  absl::Status wrong =
      AuthorizeScaledObject(keys, Metadata({{"api_key", "wrong-secret"}}), std::nullopt);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.message(), "scalerMetadata.api_key: the key is not valid");
  EXPECT_THAT(wrong.message(), Not(HasSubstr("wrong-secret")));

  absl::Status wrong_env =
      AuthorizeScaledObject(keys, Metadata({{"api_keyFromEnv", "x"}}), "Api-Key y");
  EXPECT_EQ(wrong_env.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong_env.message(), "scalerMetadata.api_keyFromEnv: the key is not valid");

  absl::Status empty = AuthorizeScaledObject(keys, Metadata({{"api_key", " \n"}}), std::nullopt);
  EXPECT_EQ(empty.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(empty.message(), "scalerMetadata.api_key: the key is empty");

  absl::Status wrong_header = AuthorizeScaledObject(keys, Metadata({}), "Api-Key wrong");
  EXPECT_EQ(wrong_header.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong_header.message(), "the key is not valid");

  absl::Status none = AuthorizeScaledObject(keys, Metadata({{"chain_id", "keda"}}), std::nullopt);
  EXPECT_EQ(none.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.message(), HasSubstr("missing API key"));
  EXPECT_THAT(none.message(), HasSubstr("api_key"));
}

TEST(AuthorizeScaledObjectTest, OpenWithoutKeys) {
  EXPECT_TRUE(AuthorizeScaledObject(ApiKeys(), Metadata({}), std::nullopt).ok());
}

// A store holding chain "keda": production with Hello_World (min 0) and Warm (min 2).
class KedaScalerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.path = dir_.str();
    options.sync_writes = false;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    StoreMutation m;
    m.change.set_revision(1);
    v1::Chain chain;
    chain.set_chain_id("keda");
    chain.add_environments("production");
    for (const auto& [name, min] : {std::pair<std::string, int>{"Hello_World", 0}, {"Warm", 2}}) {
      chain.add_chainlet_names(name);
      v1::ChainletState* state = m.change.add_upserts();
      state->mutable_key()->set_chain_id("keda");
      state->mutable_key()->set_env_name("production");
      state->mutable_key()->set_chainlet_name(name);
      state->mutable_settings()->set_min_replica(min);
      state->mutable_settings()->set_max_replica(10);
    }
    m.chain_puts.push_back(chain);
    absl::Status committed = store_->CommitBatch({&m});
    ASSERT_TRUE(committed.ok()) << committed;
  }

  void Decide(const std::string& chainlet, int32_t desired) {
    v1::ScalingDecision d;
    d.set_chain_id("keda");
    d.set_env_name("production");
    d.set_chainlet_name(chainlet);
    d.set_desired_replicas(desired);
    for (const absl::Status& s : store_->PutDecisions({d})) ASSERT_TRUE(s.ok()) << s;
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(KedaScalerTest, MinReplicaUntilDecidedThenTheDecision) {
  KedaScaler scaler(store_.get());
  EXPECT_EQ(*scaler.DesiredReplicas({"keda", "production", "Hello_World"}), 0);
  EXPECT_EQ(*scaler.DesiredReplicas({"keda", "production", "Warm"}), 2);
  Decide("Hello_World", 4);
  EXPECT_EQ(*scaler.DesiredReplicas({"keda", "production", "Hello_World"}), 4);
  Decide("Hello_World", 0);
  EXPECT_EQ(*scaler.DesiredReplicas({"keda", "production", "Hello_World"}), 0);
  Decide("Warm", 7);
  EXPECT_EQ(*scaler.DesiredReplicas({"keda", "production", "Warm"}), 7);
}

TEST_F(KedaScalerTest, NotFoundNamesWhatIsMissing) {
  KedaScaler scaler(store_.get());
  absl::StatusOr<int32_t> chain = scaler.DesiredReplicas({"nope", "production", "Warm"});
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(chain.status().message(), "chain \"nope\" not found");
  absl::StatusOr<int32_t> env = scaler.DesiredReplicas({"keda", "staging", "Warm"});
  EXPECT_EQ(env.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(env.status().message(), "environment \"staging\" of chain \"keda\" not found");
  absl::StatusOr<int32_t> chainlet = scaler.DesiredReplicas({"keda", "production", "Cold"});
  EXPECT_EQ(chainlet.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(chainlet.status().message(),
            "chainlet \"Cold\" not found in chain \"keda\" environment \"production\"");
}

}  // namespace
}  // namespace chainscale
