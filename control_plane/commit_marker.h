// CommitMarker: a small file beside the RocksDB files of a data directory that records the
// cluster id and a revision known to be committed. RocksDB cannot tell a write-ahead log
// cut at a record boundary (or deleted) from one that never held more; the marker can: a
// store that opens at an older revision than its marker, or with another cluster id, has
// lost committed changes, and the control plane refuses to serve it (DESIGN §5: never an
// older or empty state, never a new cluster id in a directory that held data).
//
// The marker trails the store: it is written after a revision is durable, so it is never
// ahead of the store, and a crash costs at most the newest revisions' coverage. The file
// holds two fixed-size slots written alternately, each with its own checksum, so a torn
// write leaves the other slot readable.
#ifndef CHAINSCALE_CONTROL_PLANE_COMMIT_MARKER_H_
#define CHAINSCALE_CONTROL_PLANE_COMMIT_MARKER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chainscale {

inline constexpr absl::string_view kCommitMarkerFileName = "COMMITTED";

struct CommitMark {
  std::string cluster_id;
  int64_t revision = 0;
  // RocksDB's last sequence number when `revision` was durable: a database that recovers
  // to an earlier one lost records (in its manifest as well as its log).
  uint64_t sequence = 0;
};

class CommitMarker {
 public:
  // What the marker in `dir` says: nothing when there is no marker file; DATA_LOSS when
  // the file exists but no slot can be read.
  static absl::StatusOr<std::optional<CommitMark>> Read(const std::string& dir);

  // Opens (creating if needed) the marker in `dir` for writing.
  static absl::StatusOr<CommitMarker> Open(const std::string& dir);
  CommitMarker(CommitMarker&& other) noexcept;
  CommitMarker& operator=(CommitMarker&& other) noexcept;
  ~CommitMarker();

  // Writes `mark` to the next slot and syncs it.
  absl::Status Write(const CommitMark& mark);

 private:
  explicit CommitMarker(int fd) : fd_(fd) {}
  int fd_ = -1;
  uint64_t sequence_ = 0;
};

}  // namespace chainscale

#endif  // CHAINSCALE_CONTROL_PLANE_COMMIT_MARKER_H_
