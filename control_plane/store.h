// Store: every RocksDB call of the control plane. Chains, chainlet settings, the revision
// log, agents' latest decisions and metadata (revision counter, cluster id) live in one
// database, one column family each; every change commits as one WriteBatch holding the
// data, its revision-log entry and the new revision counter, synced before it returns.
#ifndef CHAINSCALE_CONTROL_PLANE_STORE_H_
#define CHAINSCALE_CONTROL_PLANE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace chainscale {

// The column families, in the order of their descriptors (kMetadata is RocksDB's default).
enum class ColumnFamily { kMetadata = 0, kChains, kSettings, kRevisionLog, kDecisions };

struct StoreOptions {
  std::string path;
  // Revision-log entries kept; older ones are deleted in the batch that passes the limit.
  int64_t log_retention = 100'000;
  // fsync each commit before it returns. Only tests of unrelated logic turn this off.
  bool sync_writes = true;
};

// One atomic change: the revision-log entry (whose upserts and removals are also applied
// to the settings) plus the chain records it touches.
struct StoreMutation {
  v1::SyncChange change;  // change.revision must be the store's revision() + 1
  std::vector<v1::Chain> chain_puts;
  std::vector<std::string> chain_deletes;
};

// Every selected chainlet read at one revision.
struct StoreSnapshot {
  int64_t revision = 0;
  std::vector<v1::ChainletState> chainlets;
};

class Store {
 public:
  // Opens (creating if needed) the database at options.path; a new database gets a random
  // cluster id.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Closes the database in order: column family handles, then the database.
  ~Store();

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int64_t revision() const ABSL_LOCKS_EXCLUDED(mu_);
  // Lowest revision whose log entry is still held (revision() + 1 when the log is empty).
  int64_t oldest_logged_revision() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& cluster_id() const { return cluster_id_; }

  // Commits `mutation` atomically and durably. FAILED_PRECONDITION, with nothing written,
  // when its revision is not revision() + 1.
  absl::Status Commit(const StoreMutation& mutation) ABSL_LOCKS_EXCLUDED(mu_);

  // Stores the latest decision of an existing chainlet (NOT_FOUND otherwise). Not part of
  // the revision history.
  absl::Status PutDecision(const v1::ScalingDecision& decision) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<v1::Chain> GetChain(absl::string_view chain_id) const;
  // Chains with ids after `start_after`, in id order, at most `limit`.
  absl::StatusOr<std::vector<v1::Chain>> ListChains(absl::string_view start_after,
                                                    int limit) const;
  // The chainlets of one environment (or of every environment of the chain when
  // `env_name` is empty), with their latest decisions, in key order.
  absl::StatusOr<std::vector<v1::ChainletState>> ListChainlets(absl::string_view chain_id,
                                                               absl::string_view env_name) const;
  // Log entries after `after_revision`, oldest first: at most `limit` of them, and no
  // more once `max_bytes` have been read (at least one is returned). OUT_OF_RANGE when
  // entries after it have been deleted by retention (the reader needs a snapshot).
  absl::StatusOr<std::vector<v1::SyncChange>> ChangesSince(
      int64_t after_revision, int limit, size_t max_bytes = 64 << 20) const;
  // Every chainlet with its decision, read at one revision.
  absl::StatusOr<StoreSnapshot> ReadSnapshot() const;

 private:
  Store(const StoreOptions& options, std::unique_ptr<rocksdb::DB> db,
        std::vector<rocksdb::ColumnFamilyHandle*> handles);
  absl::Status LoadMetadata();
  rocksdb::ColumnFamilyHandle* Handle(ColumnFamily cf) const;

  const StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::string cluster_id_;

  mutable absl::Mutex mu_;  // serialises writers; guards the counters
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t oldest_logged_revision_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_STORE_H_
