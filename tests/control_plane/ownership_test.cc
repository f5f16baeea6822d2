#include "control_plane/ownership.h"

#include <string>
#include <vector>

#include "control_plane/store.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

constexpr int64_t kGeneration = 7;
const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

std::vector<ChainEnv> Envs(int count) {
  std::vector<ChainEnv> envs;
  for (int i = 0; i < count; ++i) envs.push_back({"chain-" + std::to_string(i), "production"});
  return envs;
}

OwnershipOptions TenSeconds() {
  OwnershipOptions options;
  options.lease_ttl = absl::Seconds(10);
  return options;
}

TEST(OwnershipTest, EveryEnvironmentGetsOneOwnerWithAnEpochOfThisGeneration) {
  Ownership ownership(TenSeconds(), kGeneration, Envs(10), {}, kStart);
  const std::vector<HandOver> first = ownership.Connect("a", {});
  ASSERT_EQ(first.size(), 10u);
  for (const HandOver& h : first) {
    EXPECT_EQ(h.to, "a");
    EXPECT_EQ(h.epoch >> 32, kGeneration);
    EXPECT_TRUE(ownership.IsCurrent(h.env, "a", h.epoch));
    EXPECT_FALSE(ownership.IsCurrent(h.env, "b", h.epoch));
    EXPECT_FALSE(ownership.IsCurrent(h.env, "a", h.epoch - 1));
  }
  const std::vector<HandOver> second = ownership.Connect("b", {});
  EXPECT_EQ(second.size(), 5u);
  for (const HandOver& h : second) {
    EXPECT_EQ(h.from, "a");
    EXPECT_EQ(h.to, "b");
    EXPECT_GT(h.epoch, first.back().epoch);  // a new epoch for each hand-over
  }
  EXPECT_EQ(ownership.OwnedBy("a").size(), 5u);
  EXPECT_EQ(ownership.OwnedBy("b").size(), 5u);
}

TEST(OwnershipTest, AnAgentBackWithinItsLeaseKeepsWorkAndEpochs) {
  Ownership ownership(TenSeconds(), kGeneration, Envs(10), {}, kStart);
  ownership.Connect("a", {});
  ownership.Connect("b", {});
  const auto before = ownership.OwnedBy("b");
  ownership.Disconnect("b", kStart);
  EXPECT_EQ(ownership.NextExpiry(), kStart + absl::Seconds(10));
  EXPECT_TRUE(ownership.Expire(kStart + absl::Seconds(10) - absl::Milliseconds(1)).empty());
  EXPECT_TRUE(ownership.Connect("b", {}).empty());
  EXPECT_EQ(ownership.OwnedBy("b"), before);
  EXPECT_EQ(ownership.NextExpiry(), std::nullopt);
}

TEST(OwnershipTest, AnExpiredLeaseHandsTheWorkOverUnderNewEpochs) {
  Ownership ownership(TenSeconds(), kGeneration, Envs(10), {}, kStart);
  ownership.Connect("a", {});
  ownership.Connect("b", {});
  const auto old = ownership.OwnedBy("b");
  ownership.Disconnect("b", kStart);
  const std::vector<HandOver> moved = ownership.Expire(kStart + absl::Seconds(10));
  ASSERT_EQ(moved.size(), old.size());
  for (const auto& [env, epoch] : old) {
    EXPECT_FALSE(ownership.IsCurrent(env, "b", epoch)) << env.chain_id;  // fenced
    const std::optional<v1::EnvironmentOwner> now = ownership.OwnerOf(env);
    ASSERT_TRUE(now.has_value());
    EXPECT_EQ(now->agent_id(), "a");
    EXPECT_GT(now->epoch(), epoch);
  }
  EXPECT_EQ(ownership.OwnedBy("a").size(), 10u);
}

TEST(OwnershipTest, AnAgentAwayOnItsLeaseIsGivenNoNewEnvironment) {
  Ownership ownership(TenSeconds(), kGeneration, Envs(4), {}, kStart);
  ownership.Connect("a", {});
  ownership.Connect("b", {});
  ownership.Disconnect("b", kStart);
  const std::vector<HandOver> created = ownership.SetEnvironments(Envs(8));
  ASSERT_EQ(created.size(), 4u);
  for (const HandOver& h : created) EXPECT_EQ(h.to, "a") << h.env.chain_id;
  // A deleted environment loses its owner.
  const std::vector<HandOver> deleted = ownership.SetEnvironments(Envs(7));
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(deleted[0].env.chain_id, "chain-7");
  EXPECT_TRUE(deleted[0].to.empty());
  EXPECT_FALSE(ownership.OwnerOf({"chain-7", "production"}).has_value());
}

// After a restart the store gives back the owners and a higher generation: agents that
// come back within the lease keep their work and epochs, and every new epoch is above
// every epoch of the run before.
TEST(OwnershipTest, ARestartKeepsOwnersAndEpochsOnlyGrow) {
  chainscale::testing::ScopedTempDir dir;
  StoreOptions options;
  options.path = dir.path();
  options.sync_writes = false;
  int64_t highest_before = 0;
  std::vector<std::pair<ChainEnv, int64_t>> a_before, b_before;
  {
    auto store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<int64_t> generation = (*store)->BeginGeneration();
    ASSERT_TRUE(generation.ok()) << generation.status();
    EXPECT_EQ(*generation, 1);
    absl::StatusOr<std::vector<StoredOwner>> none = (*store)->ListOwners();
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());
    Ownership ownership(TenSeconds(), *generation, Envs(12), {}, kStart);
    std::vector<HandOver> all = ownership.Connect("a", {});
    std::vector<HandOver> more = ownership.Connect("b", {});
    all.insert(all.end(), more.begin(), more.end());
    ASSERT_TRUE((*store)->PutOwners(Ownership::ToStored(all)).ok());
    for (const HandOver& h : all) highest_before = std::max(highest_before, h.epoch);
    a_before = ownership.OwnedBy("a");
    b_before = ownership.OwnedBy("b");
  }
  auto store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<int64_t> generation = (*store)->BeginGeneration();
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(*generation, 2);
  absl::StatusOr<std::vector<StoredOwner>> stored = (*store)->ListOwners();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->size(), 12u);
  Ownership ownership(TenSeconds(), *generation, Envs(13), *stored, kStart);
  EXPECT_TRUE(ownership.Connect("b", {}).size() <= 1u);  // at most the new environment
  const std::vector<HandOver> back = ownership.Connect("a", {});
  EXPECT_EQ(ownership.OwnedBy("b").size() + ownership.OwnedBy("a").size(), 13u);
  for (const auto& [env, epoch] : a_before) {
    EXPECT_TRUE(ownership.IsCurrent(env, "a", epoch)) << env.chain_id;
  }
  for (const auto& [env, epoch] : b_before) {
    EXPECT_TRUE(ownership.IsCurrent(env, "b", epoch)) << env.chain_id;
  }
  const std::optional<v1::EnvironmentOwner> fresh = ownership.OwnerOf({"chain-12", "production"});
  ASSERT_TRUE(fresh.has_value());
  EXPECT_GT(fresh->epoch(), highest_before);
  EXPECT_TRUE(back.empty());
}

TEST(OwnershipTest, StoredOwnersAreDeletedByAnEmptyAgent) {
  chainscale::testing::ScopedTempDir dir;
  StoreOptions options;
  options.path = dir.path();
  options.sync_writes = false;
  auto store = Store::Open(options);
  ASSERT_TRUE(store.ok());
  StoredOwner owner{"chain", "production", {}};
  owner.owner.set_agent_id("a");
  owner.owner.set_epoch(5);
  ASSERT_TRUE((*store)->PutOwners({owner}).ok());
  auto listed = (*store)->ListOwners();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].chain_id, "chain");
  EXPECT_EQ((*listed)[0].env_name, "production");
  EXPECT_EQ((*listed)[0].owner.agent_id(), "a");
  EXPECT_EQ((*listed)[0].owner.epoch(), 5);
  owner.owner.clear_agent_id();
  ASSERT_TRUE((*store)->PutOwners({owner}).ok());
  listed = (*store)->ListOwners();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

}  // namespace
}  // namespace chainscale
