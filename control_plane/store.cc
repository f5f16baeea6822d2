#include "control_plane/store.h"

#include <random>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/chainlet_key.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace chainscale {
namespace {

// Names of the column families, indexed by ColumnFamily; kMetadata is RocksDB's default.
constexpr const char* kColumnFamilyNames[] = {"default", "chains", "settings", "revision_log",
                                              "decisions"};
constexpr int kColumnFamilyCount = 5;

constexpr char kRevisionKey[] = "revision";
constexpr char kClusterIdKey[] = "cluster_id";

rocksdb::Slice ToSlice(absl::string_view view) { return rocksdb::Slice(view.data(), view.size()); }
absl::string_view ToView(const rocksdb::Slice& slice) {
  return absl::string_view(slice.data(), slice.size());
}

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat("rocksdb ", what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

std::string EncodeRevision(int64_t revision) {
  std::string out(8, '\0');
  const auto value = static_cast<uint64_t>(revision);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(value >> (56 - 8 * i));
  return out;
}

int64_t DecodeRevision(absl::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && i < bytes.size(); ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return static_cast<int64_t>(value);
}

std::string NewClusterId() {
  std::random_device device;
  std::string bytes(16, '\0');
  for (char& c : bytes) c = static_cast<char>(device());
  return absl::BytesToHexString(bytes);
}

template <typename Message>
absl::StatusOr<Message> Parse(const std::string& bytes, absl::string_view what) {
  Message message;
  if (!message.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("stored ", what, " does not parse"));
  }
  return message;
}

// Releases a RocksDB snapshot when it goes out of scope.
class ScopedSnapshot {
 public:
  explicit ScopedSnapshot(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}
  ~ScopedSnapshot() { db_->ReleaseSnapshot(snapshot_); }
  ScopedSnapshot(const ScopedSnapshot&) = delete;
  ScopedSnapshot& operator=(const ScopedSnapshot&) = delete;

  rocksdb::ReadOptions Read() const {
    rocksdb::ReadOptions options;
    options.snapshot = snapshot_;
    return options;
  }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < kColumnFamilyCount; ++i) {
    descriptors.emplace_back(kColumnFamilyNames[i], rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("open ", options.path));
  std::unique_ptr<Store> store(new Store(options, std::unique_ptr<rocksdb::DB>(raw),
                                         std::move(handles)));
  if (absl::Status loaded = store->LoadMetadata(); !loaded.ok()) return loaded;
  return store;
}

Store::Store(const StoreOptions& options, std::unique_ptr<rocksdb::DB> db,
             std::vector<rocksdb::ColumnFamilyHandle*> handles)
    : options_(options), db_(std::move(db)), handles_(std::move(handles)) {}

Store::~Store() {
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

rocksdb::ColumnFamilyHandle* Store::Handle(ColumnFamily cf) const {
  return handles_[static_cast<size_t>(cf)];
}

absl::Status Store::LoadMetadata() {
  absl::MutexLock lock(&mu_);
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), Handle(ColumnFamily::kMetadata), kClusterIdKey, &value);
  if (s.IsNotFound()) {
    value = NewClusterId();
    rocksdb::WriteOptions write;
    write.sync = true;
    s = db_->Put(write, Handle(ColumnFamily::kMetadata), kClusterIdKey, value);
  }
  if (!s.ok()) return FromRocks(s, "cluster id");
  cluster_id_ = value;

  s = db_->Get(rocksdb::ReadOptions(), Handle(ColumnFamily::kMetadata), kRevisionKey, &value);
  if (s.IsNotFound()) {
    revision_ = 0;
  } else if (s.ok()) {
    revision_ = DecodeRevision(value);
  } else {
    return FromRocks(s, "revision");
  }

  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), Handle(ColumnFamily::kRevisionLog)));
  it->SeekToFirst();
  oldest_logged_revision_ = it->Valid() ? DecodeRevision(ToView(it->key())) : revision_ + 1;
  return FromRocks(it->status(), "revision log");
}

int64_t Store::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

int64_t Store::oldest_logged_revision() const {
  absl::MutexLock lock(&mu_);
  return oldest_logged_revision_;
}

absl::Status Store::Commit(const StoreMutation& mutation) {
  absl::MutexLock lock(&mu_);
  const int64_t revision = mutation.change.revision();
  if (revision != revision_ + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "commit of revision ", revision, " after revision ", revision_, "; expected ",
        revision_ + 1));
  }
  rocksdb::WriteBatch batch;
  for (const v1::Chain& chain : mutation.chain_puts) {
    batch.Put(Handle(ColumnFamily::kChains), chain.chain_id(), chain.SerializeAsString());
  }
  for (const std::string& chain_id : mutation.chain_deletes) {
    batch.Delete(Handle(ColumnFamily::kChains), chain_id);
  }
  for (const v1::ChainletState& state : mutation.change.upserts()) {
    v1::ChainletState stored = state;
    stored.clear_decision();  // decisions live in their own column family
    batch.Put(Handle(ColumnFamily::kSettings), EncodeChainletKey(state.key()),
              stored.SerializeAsString());
  }
  for (const v1::ChainletKey& key : mutation.change.removals()) {
    batch.Delete(Handle(ColumnFamily::kSettings), EncodeChainletKey(key));
    batch.Delete(Handle(ColumnFamily::kDecisions), EncodeChainletKey(key));
  }
  batch.Put(Handle(ColumnFamily::kRevisionLog), EncodeRevision(revision),
            mutation.change.SerializeAsString());
  batch.Put(Handle(ColumnFamily::kMetadata), kRevisionKey, EncodeRevision(revision));
  int64_t oldest = oldest_logged_revision_;
  if (revision - oldest + 1 > options_.log_retention) {
    const int64_t new_oldest = revision - options_.log_retention + 1;
    batch.DeleteRange(Handle(ColumnFamily::kRevisionLog), EncodeRevision(oldest),
                      EncodeRevision(new_oldest));
    oldest = new_oldest;
  }
  rocksdb::WriteOptions write;
  write.sync = options_.sync_writes;
  if (absl::Status s = FromRocks(db_->Write(write, &batch), "commit"); !s.ok()) return s;
  revision_ = revision;
  oldest_logged_revision_ = oldest;
  return absl::OkStatus();
}

absl::Status Store::PutDecision(const v1::ScalingDecision& decision) {
  v1::ChainletKey key;
  key.set_chain_id(decision.chain_id());
  key.set_env_name(decision.env_name());
  key.set_chainlet_name(decision.chainlet_name());
  const std::string store_key = EncodeChainletKey(key);
  // Under the writer lock so that a commit removing the chainlet cannot interleave.
  absl::MutexLock lock(&mu_);
  std::string ignored;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), Handle(ColumnFamily::kSettings), store_key, &ignored);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("chainlet \"", decision.chainlet_name(),
                                            "\" of chain \"", decision.chain_id(),
                                            "\" environment \"", decision.env_name(),
                                            "\" not found"));
  }
  if (!s.ok()) return FromRocks(s, "read settings");
  // Decisions are advisory and frequent: written to the WAL without waiting for fsync.
  return FromRocks(db_->Put(rocksdb::WriteOptions(), Handle(ColumnFamily::kDecisions),
                            store_key, decision.SerializeAsString()),
                   "put decision");
}

absl::StatusOr<v1::Chain> Store::GetChain(absl::string_view chain_id) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), Handle(ColumnFamily::kChains),
                               ToSlice(chain_id), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("chain \"", chain_id, "\" not found"));
  }
  if (!s.ok()) return FromRocks(s, "get chain");
  return Parse<v1::Chain>(value, "chain");
}

absl::StatusOr<std::vector<v1::Chain>> Store::ListChains(absl::string_view start_after,
                                                         int limit) const {
  std::vector<v1::Chain> chains;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), Handle(ColumnFamily::kChains)));
  it->Seek(ToSlice(start_after));
  for (; it->Valid() && static_cast<int>(chains.size()) < limit; it->Next()) {
    if (ToView(it->key()) == start_after) continue;
    absl::StatusOr<v1::Chain> chain = Parse<v1::Chain>(it->value().ToString(), "chain");
    if (!chain.ok()) return chain.status();
    chains.push_back(*std::move(chain));
  }
  if (absl::Status s = FromRocks(it->status(), "list chains"); !s.ok()) return s;
  return chains;
}

absl::StatusOr<std::vector<v1::ChainletState>> Store::ListChainlets(
    absl::string_view chain_id, absl::string_view env_name) const {
  ScopedSnapshot snapshot(db_.get());
  const rocksdb::ReadOptions read = snapshot.Read();
  const std::string prefix = ChainletKeyPrefix(chain_id, env_name);
  std::vector<v1::ChainletState> chainlets;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, Handle(ColumnFamily::kSettings)));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    absl::StatusOr<v1::ChainletState> state =
        Parse<v1::ChainletState>(it->value().ToString(), "chainlet settings");
    if (!state.ok()) return state.status();
    std::string decision;
    rocksdb::Status s = db_->Get(read, Handle(ColumnFamily::kDecisions), it->key(), &decision);
    if (s.ok()) {
      if (!state->mutable_decision()->ParseFromString(decision)) {
        return absl::DataLossError("stored decision does not parse");
      }
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "get decision");
    }
    chainlets.push_back(*std::move(state));
  }
  if (absl::Status s = FromRocks(it->status(), "list chainlets"); !s.ok()) return s;
  return chainlets;
}

absl::StatusOr<std::vector<v1::SyncChange>> Store::ChangesSince(int64_t after_revision,
                                                                int limit,
                                                                size_t max_bytes) const {
  ScopedSnapshot snapshot(db_.get());
  std::vector<v1::SyncChange> changes;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(snapshot.Read(), Handle(ColumnFamily::kRevisionLog)));
  it->Seek(EncodeRevision(after_revision + 1));
  if (it->Valid() && DecodeRevision(ToView(it->key())) != after_revision + 1) {
    return absl::OutOfRangeError(absl::StrCat("revisions after ", after_revision,
                                              " are no longer in the log; oldest is ",
                                              DecodeRevision(ToView(it->key()))));
  }
  size_t bytes = 0;
  for (; it->Valid() && static_cast<int>(changes.size()) < limit && bytes < max_bytes;
       it->Next()) {
    bytes += it->value().size();
    absl::StatusOr<v1::SyncChange> change =
        Parse<v1::SyncChange>(it->value().ToString(), "revision log entry");
    if (!change.ok()) return change.status();
    changes.push_back(*std::move(change));
  }
  if (absl::Status s = FromRocks(it->status(), "read revision log"); !s.ok()) return s;
  return changes;
}

absl::StatusOr<StoreSnapshot> Store::ReadSnapshot() const {
  ScopedSnapshot snapshot(db_.get());
  const rocksdb::ReadOptions read = snapshot.Read();
  StoreSnapshot out;
  std::string value;
  rocksdb::Status s = db_->Get(read, Handle(ColumnFamily::kMetadata), kRevisionKey, &value);
  if (s.ok()) {
    out.revision = DecodeRevision(value);
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "revision");
  }
  std::unique_ptr<rocksdb::Iterator> settings(
      db_->NewIterator(read, Handle(ColumnFamily::kSettings)));
  for (settings->SeekToFirst(); settings->Valid(); settings->Next()) {
    absl::StatusOr<v1::ChainletState> state =
        Parse<v1::ChainletState>(settings->value().ToString(), "chainlet settings");
    if (!state.ok()) return state.status();
    s = db_->Get(read, Handle(ColumnFamily::kDecisions), settings->key(), &value);
    if (s.ok()) {
      if (!state->mutable_decision()->ParseFromString(value)) {
        return absl::DataLossError("stored decision does not parse");
      }
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "get decision");
    }
    out.chainlets.push_back(*std::move(state));
  }
  if (absl::Status st = FromRocks(settings->status(), "snapshot"); !st.ok()) return st;
  return out;
}

}  // namespace chainscale
