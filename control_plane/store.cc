#include "control_plane/store.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/chainlet_key.h"
#include "common/log.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace chainscale {
namespace {

// Names of the column families, indexed by ColumnFamily; kMetadata is RocksDB's default.
constexpr const char* kColumnFamilyNames[] = {"default",      "chains",    "settings",
                                              "revision_log", "decisions", "owners"};
constexpr int kColumnFamilyCount = 6;

constexpr char kRevisionKey[] = "revision";
constexpr char kClusterIdKey[] = "cluster_id";
constexpr char kBootGenerationKey[] = "boot_generation";

constexpr int64_t kMiB = 1 << 20;

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
absl::StatusOr<Message> Parse(absl::string_view bytes, absl::string_view what) {
  Message message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("stored ", what, " does not parse"));
  }
  return message;
}

// The refusal for a damaged directory: what is wrong, and what to do about it.
absl::Status Damaged(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(
      "the store in --data_dir ", path, " is damaged: ", what,
      ". The control plane will not start on it, so that it never serves an older or empty "
      "state: restore the directory from a backup, or move it aside to start an empty "
      "control plane (agents then take a full snapshot)"));
}

std::string MiB(int64_t bytes) { return absl::StrFormat("%.1f MiB", bytes / double(kMiB)); }

struct DiskSpace {
  int64_t free = 0;
  int64_t total = 0;
};

absl::StatusOr<DiskSpace> SpaceOf(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot stat the disk of ", path));
  }
  return DiskSpace{static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize),
                   static_cast<int64_t>(st.f_blocks) * static_cast<int64_t>(st.f_frsize)};
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

// Walks the settings of chainlets from `settings` (positioned) while `in_range` holds,
// joining each with its decision from the `decisions` iterator over the same keys.
absl::Status ReadChainlet(rocksdb::Iterator* settings, rocksdb::Iterator* decisions,
                          v1::ChainletState* out) {
  absl::StatusOr<v1::ChainletState> state =
      Parse<v1::ChainletState>(ToView(settings->value()), "chainlet settings");
  if (!state.ok()) return state.status();
  *out = *std::move(state);
  if (!decisions->Valid() || decisions->key().compare(settings->key()) < 0) {
    decisions->Seek(settings->key());
  }
  if (decisions->Valid() && decisions->key() == settings->key()) {
    if (!out->mutable_decision()->ParseFromArray(decisions->value().data(),
                                                 static_cast<int>(decisions->value().size()))) {
      return absl::DataLossError("stored decision does not parse");
    }
  }
  return absl::OkStatus();
}

}  // namespace

void StoreMutation::Stamp(int64_t revision) {
  change.set_revision(revision);
  for (v1::ChainletState& state : *change.mutable_upserts()) state.set_revision(revision);
  for (v1::Chain& chain : chain_puts) {
    if (chain.revision() == 0) chain.set_revision(revision);
  }
}

// One open database: the DB and its column family handles, closed in order.
struct Store::Db {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // by ColumnFamily; null if absent
  bool read_only = false;

  rocksdb::ColumnFamilyHandle* handle(ColumnFamily cf) const {
    return handles[static_cast<size_t>(cf)];
  }

  ~Db() {
    if (db == nullptr) return;
    for (rocksdb::ColumnFamilyHandle* handle : handles) {
      if (handle != nullptr) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
    db->Close().PermitUncheckedError();
  }
};

// Writes the marker off the commit path: Note() records the newest durable revision and
// a thread writes and syncs it, coalescing revisions that arrive meanwhile.
class Store::MarkerWriter {
 public:
  MarkerWriter(CommitMarker marker, CommitMark mark)
      : marker_(std::move(marker)), pending_(mark) {
    thread_ = std::thread([this] { Run(); });
  }
  ~MarkerWriter() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  void Note(int64_t revision, uint64_t sequence) {
    absl::MutexLock lock(&mu_);
    pending_.revision = revision;
    pending_.sequence = sequence;
  }

 private:
  void Run() {
    int64_t written = -1;
    while (true) {
      CommitMark mark;
      bool stop = false;
      {
        absl::MutexLock lock(&mu_);
        auto due = [this, &written]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return stopping_ || pending_.revision != written;
        };
        mu_.Await(absl::Condition(&due));
        mark = pending_;
        stop = stopping_;
      }
      if (mark.revision != written) {
        if (absl::Status s = marker_.Write(mark); !s.ok()) {
          if (!failed_) LogWarning("cannot write the commit marker", {{"error", s.ToString()}});
          failed_ = true;
        } else {
          written = mark.revision;
        }
      }
      if (stop) return;
    }
  }

  CommitMarker marker_;
  bool failed_ = false;
  absl::Mutex mu_;
  CommitMark pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

Store::Store(const StoreOptions& options) : options_(options) {}

Store::~Store() {
  std::shared_ptr<Db> db;
  {
    absl::MutexLock lock(&db_mu_);
    db = std::move(db_);
  }
  if (db != nullptr && !db->read_only && marker_ != nullptr) {
    // Flushed now, the data leaves the log for table files; the marker then records the
    // final sequence.
    db->db->Flush(rocksdb::FlushOptions(), db->handles).PermitUncheckedError();
    marker_->Note(revision(), db->db->GetLatestSequenceNumber());
  }
  marker_.reset();  // written before the database closes
  db.reset();
}

std::shared_ptr<Store::Db> Store::db() const {
  absl::MutexLock lock(&db_mu_);
  return db_;
}

bool Store::read_only() const {
  absl::MutexLock lock(&db_mu_);
  return db_ != nullptr && db_->read_only;
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::error_code error;
  std::filesystem::create_directories(options.path, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create --data_dir ", options.path, ": ", error.message()));
  }
  std::unique_ptr<Store> store(new Store(options));
  const std::string& path = options.path;

  // What the directory holds decides between opening and creating: a directory with
  // RocksDB files or a marker but no CURRENT is damaged, never a new store.
  bool has_current = false;
  std::vector<std::string> data_files;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
    const std::string name = entry.path().filename().string();
    if (name == "CURRENT") has_current = true;
    if (absl::StartsWith(name, "MANIFEST-") || absl::EndsWith(name, ".sst") ||
        absl::EndsWith(name, ".log") || name == kCommitMarkerFileName) {
      data_files.push_back(name);
    }
  }
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list --data_dir ", path, ": ", error.message()));
  }
  absl::StatusOr<std::optional<CommitMark>> mark = CommitMarker::Read(path);
  const bool mark_unreadable = absl::IsDataLoss(mark.status());
  if (!mark.ok() && !mark_unreadable) return mark.status();
  if (!has_current && !data_files.empty()) {
    std::sort(data_files.begin(), data_files.end());
    return Damaged(path, absl::StrCat("it holds ", absl::StrJoin(data_files, ", "),
                                      " but no CURRENT file naming the database's manifest"));
  }

  absl::StatusOr<DiskSpace> space = SpaceOf(path);
  if (!space.ok()) return space.status();
  store->min_free_bytes_ = options.min_free_bytes > 0
                               ? options.min_free_bytes
                               : std::clamp(space->total / 10, 8 * kMiB, 64 * kMiB);
  const bool short_of_space = space->free < store->min_free_bytes_;
  if (!has_current && short_of_space) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot create a store in --data_dir ", path, ": its disk has ", MiB(space->free),
        " free, less than the ", MiB(store->min_free_bytes_), " kept free"));
  }
  // An existing database is checked read-only first: a read-only open writes nothing, so a
  // damaged directory is refused as it was found (a read-write open of a damaged manifest
  // would already have deleted the table files it no longer names).
  if (absl::Status s = store->OpenDatabase(/*create=*/!has_current,
                                           /*read_only=*/has_current);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = store->LoadMetadata(/*created=*/!has_current); !s.ok()) return s;
  if (mark.ok() && mark->has_value()) {
    const CommitMark& m = **mark;
    const uint64_t sequence = store->db()->db->GetLatestSequenceNumber();
    if (m.cluster_id != store->cluster_id_) {
      return Damaged(path, absl::StrCat("its database is cluster ", store->cluster_id_,
                                        " but its commit marker names cluster ", m.cluster_id));
    }
    if (m.revision > store->revision()) {
      return Damaged(path, absl::StrCat("the database opened at revision ", store->revision(),
                                        " but revision ", m.revision,
                                        " was committed: its write-ahead log lost committed "
                                        "changes"));
    }
    if (m.sequence > sequence) {
      return Damaged(path, absl::StrCat("the database recovered to write sequence ", sequence,
                                        " but sequence ", m.sequence,
                                        " was durable: its manifest or log lost records"));
    }
  } else if (mark_unreadable) {
    LogWarning("the commit marker cannot be read; the database itself passed its checks, "
               "so it is used and the marker is written anew",
               {{"data_dir", path}});
  }
  if (short_of_space) {
    LogWarning("the disk is short of space: serving reads only until it has room",
               {{"data_dir", path},
                {"free", MiB(space->free)},
                {"min_free", MiB(store->min_free_bytes_)}});
    return store;
  }
  if (has_current) {
    // Checked: now open it for writing.
    {
      absl::MutexLock lock(&store->db_mu_);
      store->db_.reset();
    }
    if (absl::Status s = store->OpenDatabase(/*create=*/false, /*read_only=*/false); !s.ok()) {
      return s;
    }
    if (absl::Status s = store->LoadMetadata(/*created=*/false); !s.ok()) return s;
  }
  absl::StatusOr<CommitMarker> marker = CommitMarker::Open(path);
  if (!marker.ok()) return marker.status();
  const CommitMark current{store->cluster_id_, store->revision(),
                           store->db()->db->GetLatestSequenceNumber()};
  if (absl::Status s = marker->Write(current); !s.ok()) return s;
  store->marker_ = std::make_unique<MarkerWriter>(*std::move(marker), current);
  return store;
}

absl::Status Store::OpenDatabase(bool create, bool read_only) {
  const std::string& path = options_.path;
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = create;
  db_options.create_missing_column_families = !read_only;
  db_options.paranoid_checks = true;
  // A record cut short by a crash mid-write is dropped (it was never acknowledged); any
  // other damage to the log refuses the open.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  rocksdb::ColumnFamilyOptions cf_options;
  // Small memtables keep a flush, and the log space preallocated with it, well inside the
  // free space the store keeps.
  cf_options.write_buffer_size = 4 * kMiB;

  // Column families that exist (all of them for a new store; a read-only open cannot add
  // those a newer version introduced).
  std::vector<std::string> existing;
  if (!create) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, path, &existing);
    if (!s.ok()) return Damaged(path, s.ToString());
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  std::vector<int> opened;  // ColumnFamily index of each descriptor
  for (int i = 0; i < kColumnFamilyCount; ++i) {
    const bool exists = create || std::find(existing.begin(), existing.end(),
                                            kColumnFamilyNames[i]) != existing.end();
    if (!exists && read_only) continue;
    descriptors.emplace_back(kColumnFamilyNames[i], cf_options);
    opened.push_back(i);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      read_only ? rocksdb::DB::OpenForReadOnly(db_options, path, descriptors, &handles, &raw)
                : rocksdb::DB::Open(db_options, path, descriptors, &handles, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && absl::StrContains(s.ToString(), "lock")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--data_dir ", path, " is in use by another process: ", s.ToString()));
    }
    return Damaged(path, s.ToString());
  }
  auto db = std::make_shared<Db>();
  db->db.reset(raw);
  db->read_only = read_only;
  db->handles.assign(kColumnFamilyCount, nullptr);
  for (size_t i = 0; i < opened.size(); ++i) db->handles[opened[i]] = handles[i];
  if (options_.verify_checksums_on_open && !create && read_only) {
    if (rocksdb::Status v = db->db->VerifyChecksum(); !v.ok()) {
      return Damaged(path, v.ToString());
    }
  }
  absl::MutexLock lock(&db_mu_);
  db_ = std::move(db);
  return absl::OkStatus();
}

absl::Status Store::LoadMetadata(bool created) {
  std::shared_ptr<Db> db = this->db();
  std::string value;
  rocksdb::Status s = db->db->Get(rocksdb::ReadOptions(), db->handle(ColumnFamily::kMetadata),
                                  kClusterIdKey, &value);
  if (s.IsNotFound()) {
    if (!created) return Damaged(options_.path, "its database holds no cluster id");
    value = NewClusterId();
    rocksdb::WriteOptions write;
    write.sync = true;
    s = db->db->Put(write, db->handle(ColumnFamily::kMetadata), kClusterIdKey, value);
  }
  if (!s.ok()) return FromRocks(s, "cluster id");
  cluster_id_ = value;

  int64_t revision = 0;
  s = db->db->Get(rocksdb::ReadOptions(), db->handle(ColumnFamily::kMetadata), kRevisionKey,
                  &value);
  if (s.ok()) {
    revision = DecodeRevision(value);
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "revision");
  }
  revision_.store(revision);
  int64_t oldest = revision + 1;
  if (rocksdb::ColumnFamilyHandle* log = db->handle(ColumnFamily::kRevisionLog)) {
    std::unique_ptr<rocksdb::Iterator> it(db->db->NewIterator(rocksdb::ReadOptions(), log));
    it->SeekToLast();
    // Retention always keeps the newest entry, so the log ends at the counter.
    const int64_t last_logged = it->Valid() ? DecodeRevision(ToView(it->key())) : 0;
    if (last_logged != revision) {
      return Damaged(options_.path, absl::StrCat("its revision counter says ", revision,
                                                 " but its revision log ends at ",
                                                 last_logged));
    }
    it->SeekToFirst();
    if (it->Valid()) oldest = DecodeRevision(ToView(it->key()));
    if (absl::Status st = FromRocks(it->status(), "revision log"); !st.ok()) return st;
  }
  oldest_logged_revision_.store(oldest);
  return absl::OkStatus();
}

absl::Status Store::SpaceCheck() const {
  absl::StatusOr<DiskSpace> space = SpaceOf(options_.path);
  if (!space.ok()) return space.status();
  if (space->free >= min_free_bytes_) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the disk holding --data_dir ", options_.path, " has ", MiB(space->free),
      " free, less than the ", MiB(min_free_bytes_),
      " the store keeps free: writes are refused until space is freed; reads go on"));
}

absl::Status Store::WriteFailed(const absl::Status& status) {
  write_failure_ = absl::UnavailableError(absl::StrCat(
      "the store could not write to --data_dir ", options_.path, " (", status.message(),
      "); no further writes are attempted: fix the disk and restart the control plane; "
      "reads go on"));
  LogError("store write failed; writes are refused from now on",
           {{"data_dir", options_.path}, {"error", std::string(status.message())}});
  return write_failure_;
}

absl::Status Store::ReadyToWrite() {
  if (!write_failure_.ok()) return write_failure_;
  if (absl::Status s = SpaceCheck(); !s.ok()) return s;
  if (!read_only()) return absl::OkStatus();
  // Space has come back since the store was opened read-only: reopen it for writing. Open
  // readers keep the read-only instance until they finish.
  const std::shared_ptr<Db> previous = db();
  if (absl::Status s = OpenDatabase(/*create=*/false, /*read_only=*/false); !s.ok()) {
    absl::MutexLock lock(&db_mu_);
    db_ = previous;
    return absl::UnavailableError(
        absl::StrCat("cannot reopen the store for writing: ", s.message()));
  }
  absl::StatusOr<CommitMarker> marker = CommitMarker::Open(options_.path);
  if (!marker.ok()) return marker.status();
  const CommitMark current{cluster_id_, revision(), db()->db->GetLatestSequenceNumber()};
  marker_ = std::make_unique<MarkerWriter>(*std::move(marker), current);
  LogInfo("the disk has room again: the store takes writes", {{"data_dir", options_.path}});
  return absl::OkStatus();
}

absl::Status Store::CommitBatch(const std::vector<const StoreMutation*>& mutations) {
  if (mutations.empty()) return absl::OkStatus();
  const int64_t first = revision() + 1;
  for (size_t i = 0; i < mutations.size(); ++i) {
    if (mutations[i]->change.revision() != first + static_cast<int64_t>(i)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "commit of revision ", mutations[i]->change.revision(), " where revision ",
          first + static_cast<int64_t>(i), " was expected"));
    }
  }
  if (absl::Status s = ReadyToWrite(); !s.ok()) return s;
  std::shared_ptr<Db> db = this->db();
  rocksdb::WriteBatch batch;
  for (const StoreMutation* mutation : mutations) {
    for (const v1::Chain& chain : mutation->chain_puts) {
      batch.Put(db->handle(ColumnFamily::kChains), chain.chain_id(), chain.SerializeAsString());
    }
    for (const std::string& chain_id : mutation->chain_deletes) {
      batch.Delete(db->handle(ColumnFamily::kChains), chain_id);
    }
    for (const v1::ChainletState& state : mutation->change.upserts()) {
      v1::ChainletState stored = state;
      stored.clear_decision();  // decisions live in their own column family
      batch.Put(db->handle(ColumnFamily::kSettings), EncodeChainletKey(state.key()),
                stored.SerializeAsString());
    }
    for (const v1::ChainletKey& key : mutation->change.removals()) {
      batch.Delete(db->handle(ColumnFamily::kSettings), EncodeChainletKey(key));
      batch.Delete(db->handle(ColumnFamily::kDecisions), EncodeChainletKey(key));
    }
    batch.Put(db->handle(ColumnFamily::kRevisionLog),
              EncodeRevision(mutation->change.revision()),
              mutation->change.SerializeAsString());
  }
  const int64_t last = first + static_cast<int64_t>(mutations.size()) - 1;
  batch.Put(db->handle(ColumnFamily::kMetadata), kRevisionKey, EncodeRevision(last));
  int64_t oldest = oldest_logged_revision();
  if (last - oldest + 1 > options_.log_retention) {
    const int64_t new_oldest = last - options_.log_retention + 1;
    batch.DeleteRange(db->handle(ColumnFamily::kRevisionLog), EncodeRevision(oldest),
                      EncodeRevision(new_oldest));
    oldest = new_oldest;
  }
  rocksdb::WriteOptions write;
  write.sync = options_.sync_writes;
  if (absl::Status s = FromRocks(db->db->Write(write, &batch), "commit"); !s.ok()) {
    return WriteFailed(s);
  }
  oldest_logged_revision_.store(oldest);
  revision_.store(last, std::memory_order_release);
  // Decisions are written on this same thread, so the sequence now is this batch's, synced.
  if (marker_ != nullptr) marker_->Note(last, db->db->GetLatestSequenceNumber());
  return absl::OkStatus();
}

std::vector<absl::Status> Store::PutDecisions(
    const std::vector<v1::ScalingDecision>& decisions) {
  std::vector<absl::Status> statuses(decisions.size());
  if (decisions.empty()) return statuses;
  if (absl::Status s = ReadyToWrite(); !s.ok()) {
    std::fill(statuses.begin(), statuses.end(), s);
    return statuses;
  }
  std::shared_ptr<Db> db = this->db();
  rocksdb::WriteBatch batch;
  std::string ignored;
  for (size_t i = 0; i < decisions.size(); ++i) {
    const v1::ScalingDecision& d = decisions[i];
    const std::string key = EncodeChainletKey(d.chain_id(), d.env_name(), d.chainlet_name());
    // Commits happen on this same thread, so the chainlet cannot vanish in between.
    rocksdb::Status s = db->db->Get(rocksdb::ReadOptions(), db->handle(ColumnFamily::kSettings),
                                    key, &ignored);
    if (s.IsNotFound()) {
      statuses[i] = absl::NotFoundError(absl::StrCat(
          "chainlet ", d.chain_id(), "/", d.env_name(), "/", d.chainlet_name(), " not found"));
      continue;
    }
    if (!s.ok()) {
      statuses[i] = FromRocks(s, "read settings");
      continue;
    }
    batch.Put(db->handle(ColumnFamily::kDecisions), key, d.SerializeAsString());
  }
  if (batch.Count() == 0) return statuses;
  if (absl::Status s = FromRocks(db->db->Write(rocksdb::WriteOptions(), &batch), "put decisions");
      !s.ok()) {
    const absl::Status failed = WriteFailed(s);
    for (absl::Status& status : statuses) {
      if (status.ok()) status = failed;
    }
  }
  return statuses;
}

absl::StatusOr<int64_t> Store::BeginGeneration() {
  if (absl::Status s = ReadyToWrite(); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start a boot generation: ", s.message()));
  }
  std::shared_ptr<Db> db = this->db();
  std::string value;
  int64_t generation = 0;
  rocksdb::Status s = db->db->Get(rocksdb::ReadOptions(), db->handle(ColumnFamily::kMetadata),
                                  kBootGenerationKey, &value);
  if (s.ok()) {
    generation = DecodeRevision(value);
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "boot generation");
  }
  ++generation;
  rocksdb::WriteOptions write;
  write.sync = true;
  s = db->db->Put(write, db->handle(ColumnFamily::kMetadata), kBootGenerationKey,
                  EncodeRevision(generation));
  if (!s.ok()) return WriteFailed(FromRocks(s, "boot generation"));
  return generation;
}

absl::Status Store::PutOwners(const std::vector<StoredOwner>& owners) {
  if (owners.empty()) return absl::OkStatus();
  if (absl::Status s = ReadyToWrite(); !s.ok()) return s;
  std::shared_ptr<Db> db = this->db();
  rocksdb::ColumnFamilyHandle* cf = db->handle(ColumnFamily::kOwners);
  rocksdb::WriteBatch batch;
  for (const StoredOwner& o : owners) {
    const std::string key = ChainletKeyPrefix(o.chain_id, o.env_name);
    if (o.owner.agent_id().empty()) {
      batch.Delete(cf, key);
    } else {
      batch.Put(cf, key, o.owner.SerializeAsString());
    }
  }
  if (absl::Status s = FromRocks(db->db->Write(rocksdb::WriteOptions(), &batch), "put owners");
      !s.ok()) {
    return WriteFailed(s);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredOwner>> Store::ListOwners() const {
  std::shared_ptr<Db> db = this->db();
  std::vector<StoredOwner> owners;
  rocksdb::ColumnFamilyHandle* cf = db->handle(ColumnFamily::kOwners);
  if (cf == nullptr) return owners;  // a read-only open of a store from before owners
  std::unique_ptr<rocksdb::Iterator> it(db->db->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    // chain \0 env \0
    const absl::string_view key = ToView(it->key());
    const size_t sep = key.find('\0');
    if (sep == absl::string_view::npos || key.empty() || key.back() != '\0') {
      return Damaged(options_.path, "an owner record has a malformed key");
    }
    StoredOwner o;
    o.chain_id = std::string(key.substr(0, sep));
    o.env_name = std::string(key.substr(sep + 1, key.size() - sep - 2));
    if (!o.owner.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Damaged(options_.path, "an owner record does not parse");
    }
    owners.push_back(std::move(o));
  }
  if (absl::Status s = FromRocks(it->status(), "list owners"); !s.ok()) return s;
  return owners;
}

absl::StatusOr<v1::Chain> Store::GetChain(absl::string_view chain_id) const {
  std::shared_ptr<Db> db = this->db();
  std::string value;
  rocksdb::Status s = db->db->Get(rocksdb::ReadOptions(), db->handle(ColumnFamily::kChains),
                                  ToSlice(chain_id), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("chain \"", chain_id, "\" not found"));
  }
  if (!s.ok()) return FromRocks(s, "get chain");
  return Parse<v1::Chain>(value, "chain");
}

absl::StatusOr<std::vector<v1::Chain>> Store::ListChains(absl::string_view start_after,
                                                         int limit) const {
  std::shared_ptr<Db> db = this->db();
  std::vector<v1::Chain> chains;
  std::unique_ptr<rocksdb::Iterator> it(
      db->db->NewIterator(rocksdb::ReadOptions(), db->handle(ColumnFamily::kChains)));
  it->Seek(ToSlice(start_after));
  for (; it->Valid() && static_cast<int>(chains.size()) < limit; it->Next()) {
    if (ToView(it->key()) == start_after) continue;
    absl::StatusOr<v1::Chain> chain = Parse<v1::Chain>(ToView(it->value()), "chain");
    if (!chain.ok()) return chain.status();
    chains.push_back(*std::move(chain));
  }
  if (absl::Status s = FromRocks(it->status(), "list chains"); !s.ok()) return s;
  return chains;
}

absl::StatusOr<std::vector<std::optional<v1::ChainletState>>> Store::GetChainlets(
    absl::string_view chain_id, absl::string_view env_name,
    const std::vector<std::string>& chainlet_names) const {
  std::shared_ptr<Db> db = this->db();
  std::vector<std::string> keys;
  keys.reserve(chainlet_names.size());
  for (const std::string& name : chainlet_names) {
    keys.push_back(EncodeChainletKey(chain_id, env_name, name));
  }
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::ColumnFamilyHandle*> handles(keys.size(),
                                                    db->handle(ColumnFamily::kSettings));
  std::vector<std::string> values;
  std::vector<rocksdb::Status> statuses =
      db->db->MultiGet(rocksdb::ReadOptions(), handles, slices, &values);
  std::vector<std::optional<v1::ChainletState>> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    if (!statuses[i].ok()) return FromRocks(statuses[i], "get chainlets");
    absl::StatusOr<v1::ChainletState> state =
        Parse<v1::ChainletState>(values[i], "chainlet settings");
    if (!state.ok()) return state.status();
    out[i] = *std::move(state);
  }
  return out;
}

absl::StatusOr<std::optional<v1::ChainletState>> Store::GetChainlet(
    absl::string_view chain_id, absl::string_view env_name,
    absl::string_view chainlet_name) const {
  std::shared_ptr<Db> db = this->db();
  ScopedSnapshot snapshot(db->db.get());
  const rocksdb::ReadOptions read = snapshot.Read();
  const std::string key = EncodeChainletKey(chain_id, env_name, chainlet_name);
  std::string value;
  rocksdb::Status s = db->db->Get(read, db->handle(ColumnFamily::kSettings), key, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "get chainlet");
  absl::StatusOr<v1::ChainletState> state = Parse<v1::ChainletState>(value, "chainlet settings");
  if (!state.ok()) return state.status();
  s = db->db->Get(read, db->handle(ColumnFamily::kDecisions), key, &value);
  if (s.ok()) {
    if (!state->mutable_decision()->ParseFromString(value)) {
      return absl::DataLossError("stored decision does not parse");
    }
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "get decision");
  }
  return state;
}

absl::StatusOr<std::vector<v1::ChainletState>> Store::ListChainlets(
    absl::string_view chain_id, absl::string_view env_name) const {
  std::shared_ptr<Db> db = this->db();
  ScopedSnapshot snapshot(db->db.get());
  const rocksdb::ReadOptions read = snapshot.Read();
  const std::string prefix = ChainletKeyPrefix(chain_id, env_name);
  std::vector<v1::ChainletState> chainlets;
  std::unique_ptr<rocksdb::Iterator> settings(
      db->db->NewIterator(read, db->handle(ColumnFamily::kSettings)));
  std::unique_ptr<rocksdb::Iterator> decisions(
      db->db->NewIterator(read, db->handle(ColumnFamily::kDecisions)));
  for (settings->Seek(prefix); settings->Valid() && settings->key().starts_with(prefix);
       settings->Next()) {
    chainlets.emplace_back();
    if (absl::Status s = ReadChainlet(settings.get(), decisions.get(), &chainlets.back());
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = FromRocks(settings->status(), "list chainlets"); !s.ok()) return s;
  if (absl::Status s = FromRocks(decisions->status(), "list decisions"); !s.ok()) return s;
  return chainlets;
}

absl::StatusOr<std::vector<v1::ScalingDecision>> Store::ListDecisions(
    absl::string_view prefix, absl::string_view after_key, int limit) const {
  std::shared_ptr<Db> db = this->db();
  std::vector<v1::ScalingDecision> decisions;
  std::unique_ptr<rocksdb::Iterator> it(
      db->db->NewIterator(rocksdb::ReadOptions(), db->handle(ColumnFamily::kDecisions)));
  it->Seek(after_key.empty() ? ToSlice(prefix) : ToSlice(after_key));
  for (; it->Valid() && it->key().starts_with(ToSlice(prefix)) &&
         static_cast<int>(decisions.size()) < limit;
       it->Next()) {
    if (ToView(it->key()) == after_key) continue;
    absl::StatusOr<v1::ScalingDecision> d =
        Parse<v1::ScalingDecision>(ToView(it->value()), "decision");
    if (!d.ok()) return d.status();
    decisions.push_back(*std::move(d));
  }
  if (absl::Status s = FromRocks(it->status(), "list decisions"); !s.ok()) return s;
  return decisions;
}

absl::StatusOr<std::vector<v1::SyncChange>> Store::ChangesSince(int64_t after_revision,
                                                                int limit,
                                                                size_t max_bytes) const {
  std::shared_ptr<Db> db = this->db();
  ScopedSnapshot snapshot(db->db.get());
  std::vector<v1::SyncChange> changes;
  std::unique_ptr<rocksdb::Iterator> it(
      db->db->NewIterator(snapshot.Read(), db->handle(ColumnFamily::kRevisionLog)));
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
        Parse<v1::SyncChange>(ToView(it->value()), "revision log entry");
    if (!change.ok()) return change.status();
    changes.push_back(*std::move(change));
  }
  if (absl::Status s = FromRocks(it->status(), "read revision log"); !s.ok()) return s;
  return changes;
}

std::unique_ptr<StoreSnapshotReader> Store::NewSnapshotReader() const {
  return std::unique_ptr<StoreSnapshotReader>(new StoreSnapshotReader(db()));
}

absl::StatusOr<StoreSnapshot> Store::ReadSnapshot() const {
  std::unique_ptr<StoreSnapshotReader> reader = NewSnapshotReader();
  StoreSnapshot out;
  out.revision = reader->revision();
  while (!reader->done()) {
    if (absl::Status s = reader->Next(64 << 20, [](const v1::ChainletKey&) { return true; },
                                      &out.chainlets);
        !s.ok()) {
      return s;
    }
  }
  return out;
}

StoreSnapshotReader::StoreSnapshotReader(std::shared_ptr<Store::Db> db) : db_(std::move(db)) {
  snapshot_ = db_->db->GetSnapshot();
  rocksdb::ReadOptions read;
  read.snapshot = snapshot_;
  std::string value;
  rocksdb::Status s =
      db_->db->Get(read, db_->handle(ColumnFamily::kMetadata), kRevisionKey, &value);
  if (s.ok()) {
    revision_ = DecodeRevision(value);
  } else if (!s.IsNotFound()) {
    status_ = FromRocks(s, "revision");
  }
}

StoreSnapshotReader::~StoreSnapshotReader() { db_->db->ReleaseSnapshot(snapshot_); }

absl::Status StoreSnapshotReader::Next(
    size_t max_bytes, const std::function<bool(const v1::ChainletKey&)>& select,
    std::vector<v1::ChainletState>* out) {
  if (!status_.ok()) return status_;
  if (done_) return absl::OkStatus();
  // Iterators live for one chunk only. An iterator pins the memtables and files it was
  // opened on, with a read-ahead buffer per file; a reader kept between chunks (a stream
  // that stops reading keeps it for as long as it stays) would hold all of that. Between
  // chunks only the snapshot and the key to resume from are kept.
  rocksdb::ReadOptions read;
  read.snapshot = snapshot_;
  std::unique_ptr<rocksdb::Iterator> settings(
      db_->db->NewIterator(read, db_->handle(ColumnFamily::kSettings)));
  std::unique_ptr<rocksdb::Iterator> decisions(
      db_->db->NewIterator(read, db_->handle(ColumnFamily::kDecisions)));
  if (resume_key_.empty()) {
    settings->SeekToFirst();
  } else {
    settings->Seek(resume_key_);
  }
  size_t bytes = 0;
  bool added = false;
  for (; settings->Valid(); settings->Next()) {
    v1::ChainletState state;
    if (absl::Status s = ReadChainlet(settings.get(), decisions.get(), &state); !s.ok()) {
      return status_ = s;
    }
    if (!select(state.key())) continue;
    // Its bytes inside a repeated field: the element plus its tag and length.
    const size_t size = state.ByteSizeLong() + 8;
    if (added && bytes + size > max_bytes) break;  // the next chunk starts here
    bytes += size;
    added = true;
    out->push_back(std::move(state));
  }
  if (absl::Status s = FromRocks(settings->status(), "snapshot"); !s.ok()) return status_ = s;
  if (absl::Status s = FromRocks(decisions->status(), "snapshot"); !s.ok()) return status_ = s;
  done_ = !settings->Valid();
  if (!done_) resume_key_ = settings->key().ToString();
  return absl::OkStatus();
}

}  // namespace chainscale
