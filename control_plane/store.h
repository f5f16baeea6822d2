// Store: every RocksDB call of the control plane. Chains, chainlet settings, the revision
// log, agents' latest decisions and metadata (revision counter, cluster id) live in one
// database, one column family each. A commit group (one or more changes, each its own
// revision) is one WriteBatch holding the data, the revision-log entries and the new
// revision counter, synced before it returns.
//
// The store never serves a state older than what it committed, nor an empty one in a
// directory that held data: damaged files and lost log records make Open refuse with a
// message saying what is wrong and what to do (a CommitMarker beside the database records
// the newest revision known durable). It never lets the disk fill under RocksDB either:
// writes are refused while less than `min_free_bytes` are free, and a store opened on a
// full disk serves reads read-only until space returns.
//
// Threads: one writer at a time (the Committer) calls CommitBatch and PutDecisions; reads
// may come from any thread at any time.
#ifndef CHAINSCALE_CONTROL_PLANE_STORE_H_
#define CHAINSCALE_CONTROL_PLANE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.pb.h"
#include "control_plane/commit_marker.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Iterator;
class Snapshot;
}  // namespace rocksdb

namespace chainscale {

// The column families, in the order of their descriptors (kMetadata is RocksDB's default).
enum class ColumnFamily {
  kMetadata = 0,
  kChains,
  kSettings,
  kRevisionLog,
  kDecisions,
  kOwners,
};

struct StoreOptions {
  std::string path;
  // Revision-log entries kept; older ones are deleted in the batch that passes the limit.
  int64_t log_retention = 100'000;
  // fsync each commit before it returns. Only tests of unrelated logic turn this off.
  bool sync_writes = true;
  // Writes are refused while the disk holding `path` has less free space than this.
  // 0 picks 10 % of the filesystem, at least 8 MiB and at most 64 MiB.
  int64_t min_free_bytes = 0;
  // Verify the checksum of every table file when opening (a damaged file refuses the
  // start instead of failing a read later).
  bool verify_checksums_on_open = true;
};

// One atomic change: the revision-log entry (whose upserts and removals are also applied
// to the settings) plus the chain records it touches.
struct StoreMutation {
  v1::SyncChange change;
  std::vector<v1::Chain> chain_puts;
  std::vector<std::string> chain_deletes;

  // Gives the change its revision: the entry, every upsert, and each chain put that is a
  // new chain (revision 0) carry it.
  void Stamp(int64_t revision);
};

// The owner of one chain environment (DESIGN §11).
struct StoredOwner {
  std::string chain_id;
  std::string env_name;
  v1::EnvironmentOwner owner;  // an empty agent_id deletes the record (PutOwners)
};

// Every selected chainlet read at one revision.
struct StoreSnapshot {
  int64_t revision = 0;
  std::vector<v1::ChainletState> chainlets;
};

class StoreSnapshotReader;

class Store {
 public:
  // Opens the database at options.path, creating it when the directory holds none. Refuses
  // (DATA_LOSS, FAILED_PRECONDITION) a damaged directory with a message that says what to
  // do. On a disk with less than the minimum free space it opens read-only.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Flushes, records the final revision in the marker and closes the database in order.
  ~Store();

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int64_t revision() const { return revision_.load(std::memory_order_acquire); }
  // Lowest revision whose log entry is still held (revision() + 1 when the log is empty).
  int64_t oldest_logged_revision() const { return oldest_logged_revision_.load(); }
  const std::string& cluster_id() const { return cluster_id_; }
  const std::string& path() const { return options_.path; }
  // True while the store serves reads only (opened on a full disk).
  bool read_only() const ABSL_LOCKS_EXCLUDED(db_mu_);
  int64_t min_free_bytes() const { return min_free_bytes_; }

  // Commits `mutations`, stamped with the revisions revision() + 1, + 2, ... in order, as
  // one synced batch. RESOURCE_EXHAUSTED (nothing written) when the disk is short of
  // space; UNAVAILABLE after a failed write. Writer thread only.
  absl::Status CommitBatch(const std::vector<const StoreMutation*>& mutations)
      ABSL_LOCKS_EXCLUDED(db_mu_);

  // Stores the latest decision of each named chainlet (not part of the revision history,
  // not synced: decisions are advisory and frequent). One status per decision: NOT_FOUND
  // for a chainlet that does not exist. Writer thread only.
  std::vector<absl::Status> PutDecisions(const std::vector<v1::ScalingDecision>& decisions)
      ABSL_LOCKS_EXCLUDED(db_mu_);

  // Starts a new boot generation and returns it: one more than the last one stored (1 in
  // a new store), synced before it returns, so assignment epochs made from it are above
  // every epoch of earlier runs. FAILED_PRECONDITION on a read-only store.
  absl::StatusOr<int64_t> BeginGeneration() ABSL_LOCKS_EXCLUDED(db_mu_);
  // Stores (or, for an empty agent_id, deletes) owners of chain environments. Not synced:
  // a lost tail only hands an environment out again, under a new epoch. Writer thread only.
  absl::Status PutOwners(const std::vector<StoredOwner>& owners) ABSL_LOCKS_EXCLUDED(db_mu_);
  // Every stored owner, in chain and environment order.
  absl::StatusOr<std::vector<StoredOwner>> ListOwners() const;

  absl::StatusOr<v1::Chain> GetChain(absl::string_view chain_id) const;
  // Chains with ids after `start_after`, in id order, at most `limit`.
  absl::StatusOr<std::vector<v1::Chain>> ListChains(absl::string_view start_after,
                                                    int limit) const;
  // The stored settings (without decisions) of the named chainlets of one environment, in
  // the order given; nothing for a name that does not exist.
  absl::StatusOr<std::vector<std::optional<v1::ChainletState>>> GetChainlets(
      absl::string_view chain_id, absl::string_view env_name,
      const std::vector<std::string>& chainlet_names) const;
  // One chainlet's stored settings with its latest decision (unset when none is stored),
  // both read at one point in time; nothing when the chainlet does not exist.
  absl::StatusOr<std::optional<v1::ChainletState>> GetChainlet(
      absl::string_view chain_id, absl::string_view env_name,
      absl::string_view chainlet_name) const;
  // The chainlets of one environment (or of every environment of the chain when
  // `env_name` is empty), with their latest decisions, in key order.
  absl::StatusOr<std::vector<v1::ChainletState>> ListChainlets(absl::string_view chain_id,
                                                               absl::string_view env_name) const;
  // Stored decisions of the chainlets under `prefix` (ChainletKeyPrefix of a chain or a
  // chain environment; empty: every chainlet) whose keys sort after `after_key`
  // (EncodeChainletKey; empty: from the first), in key order, at most `limit`.
  absl::StatusOr<std::vector<v1::ScalingDecision>> ListDecisions(absl::string_view prefix,
                                                                 absl::string_view after_key,
                                                                 int limit) const;
  // Log entries after `after_revision`, oldest first: at most `limit` of them, and no
  // more once `max_bytes` have been read (at least one is returned). OUT_OF_RANGE when
  // entries after it have been deleted by retention (the reader needs a snapshot).
  absl::StatusOr<std::vector<v1::SyncChange>> ChangesSince(
      int64_t after_revision, int limit, size_t max_bytes = 64 << 20) const;
  // A reader of every chainlet with its decision at one revision, chunk by chunk.
  std::unique_ptr<StoreSnapshotReader> NewSnapshotReader() const;
  // Every chainlet with its decision, read whole at one revision (tests and tools).
  absl::StatusOr<StoreSnapshot> ReadSnapshot() const;

 private:
  struct Db;
  class MarkerWriter;
  friend class StoreSnapshotReader;

  explicit Store(const StoreOptions& options);
  absl::Status OpenDatabase(bool create, bool read_only);
  absl::Status LoadMetadata(bool created);
  std::shared_ptr<Db> db() const ABSL_LOCKS_EXCLUDED(db_mu_);
  // OK when a write may go ahead now: no earlier write failed, enough space, and the
  // database is writable (reopening it read-write when space has come back).
  absl::Status ReadyToWrite() ABSL_LOCKS_EXCLUDED(db_mu_);
  absl::Status SpaceCheck() const;
  // Remembers a failed write: nothing more is written to this database.
  absl::Status WriteFailed(const absl::Status& status);

  const StoreOptions options_;
  int64_t min_free_bytes_ = 0;
  std::string cluster_id_;
  std::atomic<int64_t> revision_{0};
  std::atomic<int64_t> oldest_logged_revision_{1};
  absl::Status write_failure_;  // writer thread only
  std::unique_ptr<MarkerWriter> marker_;

  mutable absl::Mutex db_mu_;
  std::shared_ptr<Db> db_ ABSL_GUARDED_BY(db_mu_);
};

// Reads a snapshot of every chainlet, with decisions, in key order, in bounded chunks; the
// store may keep committing meanwhile.
class StoreSnapshotReader {
 public:
  ~StoreSnapshotReader();
  int64_t revision() const { return revision_; }
  bool done() const { return done_; }
  // Appends the next chainlets for which `select` holds to `out`, stopping before they
  // would take more than `max_bytes` in a message (each counted with its field tag and
  // length; at least one chainlet, when any is left).
  absl::Status Next(size_t max_bytes, const std::function<bool(const v1::ChainletKey&)>& select,
                    std::vector<v1::ChainletState>* out);

 private:
  friend class Store;
  StoreSnapshotReader(std::shared_ptr<Store::Db> db);

  std::shared_ptr<Store::Db> db_;
  const rocksdb::Snapshot* snapshot_ = nullptr;
  std::string resume_key_;  // settings key of the next chunk's first chainlet
  int64_t revision_ = 0;
  bool done_ = false;
  absl::Status status_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_STORE_H_
