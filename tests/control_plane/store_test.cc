// The control plane's store on a real RocksDB in a fresh temporary directory: atomic
// commits, a revision that never goes back (also across reopen), retention, snapshots.
#include "control_plane/store.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

v1::ChainletKey Key(const std::string& chain, const std::string& env, const std::string& name) {
  v1::ChainletKey key;
  key.set_chain_id(chain);
  key.set_env_name(env);
  key.set_chainlet_name(name);
  return key;
}

v1::ChainletState State(const v1::ChainletKey& key, int32_t max_replica, int64_t revision) {
  v1::ChainletState state;
  *state.mutable_key() = key;
  state.mutable_settings()->set_max_replica(max_replica);
  state.set_revision(revision);
  return state;
}

// A mutation at `revision` creating chain `chain` with one chainlet in production.
StoreMutation CreateChain(const std::string& chain, int64_t revision) {
  StoreMutation m;
  m.change.set_revision(revision);
  *m.change.add_upserts() = State(Key(chain, "production", "HelloWorld"), 1, revision);
  v1::Chain c;
  c.set_chain_id(chain);
  c.add_chainlet_names("HelloWorld");
  c.add_environments("production");
  c.set_revision(revision);
  m.chain_puts.push_back(c);
  return m;
}

class StoreTest : public ::testing::Test {
 protected:
  absl::Status Commit(const StoreMutation& m) { return store_->CommitBatch({&m}); }
  absl::Status PutDecision(const v1::ScalingDecision& d) {
    return store_->PutDecisions({d})[0];
  }

  void SetUp() override { Reopen(); }
  void TearDown() override { store_.reset(); }

  void Reopen(int64_t retention = 100'000, int64_t min_free_bytes = 0) {
    store_.reset();
    StoreOptions options;
    options.path = dir_.str();
    options.log_retention = retention;
    options.min_free_bytes = min_free_bytes;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  testing::ScopedTempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, NewStoreStartsAtRevisionZeroWithAClusterIdThatPersists) {
  EXPECT_EQ(store_->revision(), 0);
  EXPECT_EQ(store_->oldest_logged_revision(), 1);
  const std::string cluster_id = store_->cluster_id();
  EXPECT_THAT(cluster_id, MatchesRegex("[0-9a-f]{32}"));
  Reopen();
  EXPECT_EQ(store_->cluster_id(), cluster_id);
}

TEST_F(StoreTest, CommitStoresDataLogAndRevisionTogether) {
  ASSERT_TRUE(Commit(CreateChain("chain-a", 1)).ok());
  EXPECT_EQ(store_->revision(), 1);
  absl::StatusOr<v1::Chain> chain = store_->GetChain("chain-a");
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->revision(), 1);
  absl::StatusOr<std::vector<v1::ChainletState>> chainlets =
      store_->ListChainlets("chain-a", "production");
  ASSERT_TRUE(chainlets.ok());
  ASSERT_EQ(chainlets->size(), 1u);
  EXPECT_EQ((*chainlets)[0].key().chainlet_name(), "HelloWorld");
  EXPECT_EQ((*chainlets)[0].revision(), 1);
  absl::StatusOr<std::vector<v1::SyncChange>> log = store_->ChangesSince(0, 100);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].revision(), 1);
  EXPECT_EQ((*log)[0].upserts(0).key().chain_id(), "chain-a");
}

TEST_F(StoreTest, CommitOutOfOrderWritesNothing) {
  ASSERT_TRUE(Commit(CreateChain("chain-a", 1)).ok());
  absl::Status s = Commit(CreateChain("chain-b", 3));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("revision 2 was expected"));
  EXPECT_EQ(store_->revision(), 1);
  EXPECT_EQ(store_->GetChain("chain-b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListChainlets("chain-b", "").value().empty());
}

TEST_F(StoreTest, RevisionSurvivesReopenAndNeverGoesBack) {
  for (int64_t r = 1; r <= 5; ++r) {
    ASSERT_TRUE(Commit(CreateChain("chain-" + std::to_string(r), r)).ok());
  }
  Reopen();
  EXPECT_EQ(store_->revision(), 5);
  EXPECT_EQ(Commit(CreateChain("again", 5)).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Commit(CreateChain("chain-6", 6)).ok());
  EXPECT_EQ(store_->ChangesSince(0, 100).value().size(), 6u);
}

TEST_F(StoreTest, RetentionKeepsTheNewestEntriesAndReportsCompaction) {
  Reopen(/*retention=*/5);
  for (int64_t r = 1; r <= 12; ++r) {
    ASSERT_TRUE(Commit(CreateChain("chain-" + std::to_string(r), r)).ok());
  }
  EXPECT_EQ(store_->oldest_logged_revision(), 8);
  EXPECT_EQ(store_->ChangesSince(0, 100).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store_->ChangesSince(6, 100).status().code(), absl::StatusCode::kOutOfRange);
  absl::StatusOr<std::vector<v1::SyncChange>> changes = store_->ChangesSince(7, 100);
  ASSERT_TRUE(changes.ok()) << changes.status();
  std::vector<int64_t> revisions;
  for (const v1::SyncChange& c : *changes) revisions.push_back(c.revision());
  EXPECT_THAT(revisions, ElementsAre(8, 9, 10, 11, 12));
  EXPECT_TRUE(store_->ChangesSince(12, 100).value().empty());
  Reopen(/*retention=*/5);
  EXPECT_EQ(store_->oldest_logged_revision(), 8);
}

TEST_F(StoreTest, ChangesSinceHonoursTheLimit) {
  for (int64_t r = 1; r <= 4; ++r) {
    ASSERT_TRUE(Commit(CreateChain("chain-" + std::to_string(r), r)).ok());
  }
  absl::StatusOr<std::vector<v1::SyncChange>> changes = store_->ChangesSince(1, 2);
  ASSERT_TRUE(changes.ok());
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_EQ((*changes)[0].revision(), 2);
  EXPECT_EQ((*changes)[1].revision(), 3);
}

TEST_F(StoreTest, DecisionsAreKeptPerChainletAndRemovedWithIt) {
  ASSERT_TRUE(Commit(CreateChain("chain-a", 1)).ok());
  v1::ScalingDecision decision;
  decision.set_chain_id("chain-a");
  decision.set_env_name("production");
  decision.set_chainlet_name("HelloWorld");
  decision.set_desired_replicas(4);
  ASSERT_TRUE(PutDecision(decision).ok());
  decision.set_chainlet_name("Missing");
  EXPECT_EQ(PutDecision(decision).code(), absl::StatusCode::kNotFound);

  Reopen();
  absl::StatusOr<StoreSnapshot> snapshot = store_->ReadSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->revision, 1);
  ASSERT_EQ(snapshot->chainlets.size(), 1u);
  EXPECT_EQ(snapshot->chainlets[0].decision().desired_replicas(), 4);

  StoreMutation remove;
  remove.change.set_revision(2);
  *remove.change.add_removals() = Key("chain-a", "production", "HelloWorld");
  remove.chain_deletes.push_back("chain-a");
  ASSERT_TRUE(Commit(remove).ok());
  snapshot = store_->ReadSnapshot();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->revision, 2);
  EXPECT_TRUE(snapshot->chainlets.empty());
  EXPECT_EQ(store_->GetChain("chain-a").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, GetChainletReadsSettingsWithTheDecision) {
  ASSERT_TRUE(Commit(CreateChain("chain-a", 1)).ok());
  absl::StatusOr<std::optional<v1::ChainletState>> undecided =
      store_->GetChainlet("chain-a", "production", "HelloWorld");
  ASSERT_TRUE(undecided.ok()) << undecided.status();
  ASSERT_TRUE(undecided->has_value());
  EXPECT_EQ((*undecided)->settings().max_replica(), 1);
  EXPECT_EQ((*undecided)->revision(), 1);
  EXPECT_FALSE((*undecided)->has_decision());

  v1::ScalingDecision decision;
  decision.set_chain_id("chain-a");
  decision.set_env_name("production");
  decision.set_chainlet_name("HelloWorld");
  decision.set_desired_replicas(3);
  ASSERT_TRUE(PutDecision(decision).ok());
  absl::StatusOr<std::optional<v1::ChainletState>> decided =
      store_->GetChainlet("chain-a", "production", "HelloWorld");
  ASSERT_TRUE(decided.ok() && decided->has_value());
  EXPECT_EQ((*decided)->decision().desired_replicas(), 3);
  EXPECT_EQ((*decided)->key().chainlet_name(), "HelloWorld");

  for (const auto& [env, name] : {std::pair<std::string, std::string>{"production", "Other"},
                                  {"staging", "HelloWorld"}, {"production", "HelloWorl"}}) {
    absl::StatusOr<std::optional<v1::ChainletState>> missing =
        store_->GetChainlet("chain-a", env, name);
    ASSERT_TRUE(missing.ok()) << missing.status();
    EXPECT_FALSE(missing->has_value()) << env << "/" << name;
  }
}

TEST_F(StoreTest, ListingIsScopedAndOrdered) {
  StoreMutation m = CreateChain("chain-a", 1);
  *m.change.add_upserts() = State(Key("chain-a", "development", "HelloWorld"), 1, 1);
  *m.change.add_upserts() = State(Key("chain-a", "production", "RandInt"), 3, 1);
  *m.change.add_upserts() = State(Key("chain-ab", "production", "Other"), 1, 1);
  ASSERT_TRUE(Commit(m).ok());
  ASSERT_TRUE(Commit(CreateChain("chain-b", 2)).ok());

  // Results are held in locals: a range-for over a temporary's value() would dangle.
  const std::vector<v1::ChainletState> production =
      store_->ListChainlets("chain-a", "production").value();
  std::vector<std::string> names;
  for (const auto& c : production) names.push_back(c.key().chainlet_name());
  EXPECT_THAT(names, ElementsAre("HelloWorld", "RandInt"));
  EXPECT_EQ(store_->ListChainlets("chain-a", "").value().size(), 3u);

  auto ids = [this](absl::string_view start_after) {
    std::vector<std::string> out;
    const std::vector<v1::Chain> chains = store_->ListChains(start_after, 10).value();
    for (const v1::Chain& c : chains) out.push_back(c.chain_id());
    return out;
  };
  EXPECT_THAT(ids(""), ElementsAre("chain-a", "chain-b"));
  EXPECT_THAT(ids("chain-a"), ElementsAre("chain-b"));
  EXPECT_EQ(store_->ListChains("", 1).value().size(), 1u);
}

// Concurrent updates share one synced batch: each keeps its own revision and log entry.
TEST_F(StoreTest, ABatchCommitsSeveralRevisionsAtOnce) {
  StoreMutation a = CreateChain("chain-a", 1);
  StoreMutation b = CreateChain("chain-b", 2);
  StoreMutation c = CreateChain("chain-c", 3);
  ASSERT_TRUE(store_->CommitBatch({&a, &b, &c}).ok());
  EXPECT_EQ(store_->revision(), 3);
  const std::vector<v1::SyncChange> log = store_->ChangesSince(0, 10).value();
  std::vector<int64_t> revisions;
  for (const v1::SyncChange& change : log) revisions.push_back(change.revision());
  EXPECT_THAT(revisions, ElementsAre(1, 2, 3));
  EXPECT_EQ(store_->GetChain("chain-b")->revision(), 2);
  Reopen();
  EXPECT_EQ(store_->revision(), 3);
}

TEST_F(StoreTest, StampGivesTheChangeAndNewChainsTheirRevision) {
  StoreMutation m = CreateChain("chain-a", 0);
  v1::Chain existing;
  existing.set_chain_id("old");
  existing.set_revision(4);
  m.chain_puts.push_back(existing);
  m.Stamp(9);
  EXPECT_EQ(m.change.revision(), 9);
  EXPECT_EQ(m.change.upserts(0).revision(), 9);
  EXPECT_EQ(m.chain_puts[0].revision(), 9);
  EXPECT_EQ(m.chain_puts[1].revision(), 4) << "an existing chain keeps its creation revision";
}

// A snapshot is read in chunks bounded by bytes, so memory per stream stays bounded
// however large the store is.
TEST_F(StoreTest, SnapshotReaderReturnsBoundedChunksAtOneRevision) {
  StoreMutation m = CreateChain("chain-a", 1);
  for (int i = 0; i < 100; ++i) {
    *m.change.add_upserts() =
        State(Key("chain-a", "production", "C" + std::to_string(100 + i)), 2, 1);
  }
  ASSERT_TRUE(Commit(m).ok());
  std::unique_ptr<StoreSnapshotReader> reader = store_->NewSnapshotReader();
  ASSERT_TRUE(Commit(CreateChain("chain-b", 2)).ok());  // after the snapshot: not in it
  EXPECT_EQ(reader->revision(), 1);
  std::vector<v1::ChainletState> all;
  int chunks = 0;
  while (!reader->done()) {
    std::vector<v1::ChainletState> chunk;
    ASSERT_TRUE(reader->Next(1000, [](const v1::ChainletKey&) { return true; }, &chunk).ok());
    size_t bytes = 0;
    for (const auto& c : chunk) bytes += c.ByteSizeLong();
    EXPECT_LE(bytes, 1000u);
    EXPECT_FALSE(chunk.empty());
    all.insert(all.end(), chunk.begin(), chunk.end());
    ++chunks;
  }
  EXPECT_EQ(all.size(), 101u);
  EXPECT_GT(chunks, 3);
}

// The store keeps free space: short of it, an existing store opens read-only, serves
// reads and refuses writes with RESOURCE_EXHAUSTED naming the disk; a new one is refused.
TEST_F(StoreTest, ShortOfSpaceTheStoreServesReadsOnly) {
  ASSERT_TRUE(Commit(CreateChain("chain-a", 1)).ok());
  Reopen(100'000, /*min_free_bytes=*/int64_t{1} << 60);
  EXPECT_TRUE(store_->read_only());
  EXPECT_EQ(store_->revision(), 1);
  EXPECT_TRUE(store_->GetChain("chain-a").ok());
  absl::Status s = Commit(CreateChain("chain-b", 2));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("--data_dir"));
  EXPECT_EQ(store_->revision(), 1);
  Reopen();  // room again
  EXPECT_FALSE(store_->read_only());
  EXPECT_TRUE(Commit(CreateChain("chain-b", 2)).ok());

  testing::ScopedTempDir empty;
  StoreOptions options;
  options.path = empty.str();
  options.min_free_bytes = int64_t{1} << 60;
  EXPECT_EQ(Store::Open(options).status().code(), absl::StatusCode::kResourceExhausted);
}

// A store that opens older than its commit marker lost committed changes: refused.
TEST_F(StoreTest, AStoreOlderThanItsMarkerIsRefused) {
  ASSERT_TRUE(Commit(CreateChain("chain-a", 1)).ok());
  const std::string cluster = store_->cluster_id();
  store_.reset();
  absl::StatusOr<CommitMarker> marker = CommitMarker::Open(dir_.str());
  ASSERT_TRUE(marker.ok());
  ASSERT_TRUE(marker->Write({cluster, 7}).ok());
  StoreOptions options;
  options.path = dir_.str();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr("revision 7 was committed"));
  EXPECT_THAT(store.status().message(), HasSubstr("restore the directory from a backup"));
}

}  // namespace
}  // namespace chainscale
