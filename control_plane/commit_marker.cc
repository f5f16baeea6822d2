#include "control_plane/commit_marker.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace chainscale {
namespace {

// One slot: magic, format version, write sequence, revision, database sequence, cluster id
// (length and bytes), checksum over everything before it. 128 bytes, so both slots fit
// one 512-byte sector.
constexpr size_t kSlotBytes = 128;
constexpr size_t kClusterIdMax = 64;
constexpr char kMagic[4] = {'C', 'S', 'C', 'M'};
constexpr uint32_t kVersion = 1;

struct Slot {
  uint64_t sequence = 0;
  CommitMark mark;
};

void PutU32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(v >> (8 * i));
}
uint32_t GetU32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(in[i])} << (8 * i);
  return v;
}
void PutU64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
}
uint64_t GetU64(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(in[i])} << (8 * i);
  return v;
}

// FNV-1a, 64 bits. The marker needs to tell a torn or overwritten slot from a written one,
// not to resist tampering, and a dozen lines beat a dependency for that.
uint64_t Checksum(const char* data, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) {
    hash ^= static_cast<uint8_t>(data[i]);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// Layout: magic[4] version[4] write_sequence[8] revision[8] db_sequence[8] id_length[8]
// id[64] checksum[8].
constexpr size_t kChecksumOffset = 4 + 4 + 8 + 8 + 8 + 8 + kClusterIdMax;
static_assert(kChecksumOffset + 8 <= kSlotBytes, "slot too small");

void Encode(uint64_t sequence, const CommitMark& mark, char* out) {
  std::memset(out, 0, kSlotBytes);
  std::memcpy(out, kMagic, 4);
  PutU32(out + 4, kVersion);
  PutU64(out + 8, sequence);
  PutU64(out + 16, static_cast<uint64_t>(mark.revision));
  PutU64(out + 24, mark.sequence);
  const size_t length = std::min(mark.cluster_id.size(), kClusterIdMax);
  PutU64(out + 32, length);
  std::memcpy(out + 40, mark.cluster_id.data(), length);
  PutU64(out + kChecksumOffset, Checksum(out, kChecksumOffset));
}

std::optional<Slot> Decode(const char* in) {
  if (std::memcmp(in, kMagic, 4) != 0) return std::nullopt;
  if (GetU64(in + kChecksumOffset) != Checksum(in, kChecksumOffset)) return std::nullopt;
  if (GetU32(in + 4) != kVersion) return std::nullopt;
  const uint64_t length = GetU64(in + 32);
  if (length > kClusterIdMax) return std::nullopt;
  Slot slot;
  slot.sequence = GetU64(in + 8);
  slot.mark.revision = static_cast<int64_t>(GetU64(in + 16));
  slot.mark.sequence = GetU64(in + 24);
  slot.mark.cluster_id.assign(in + 40, length);
  return slot;
}

std::string PathIn(const std::string& dir) {
  return absl::StrCat(dir, "/", kCommitMarkerFileName);
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

}  // namespace

absl::StatusOr<std::optional<CommitMark>> CommitMarker::Read(const std::string& dir) {
  const std::string path = PathIn(dir);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<CommitMark>();
    return Errno("cannot open", path);
  }
  char buffer[2 * kSlotBytes] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer), 0);
  ::close(fd);
  if (n < 0) return Errno("cannot read", path);
  std::optional<Slot> best;
  for (size_t offset = 0; offset + kSlotBytes <= static_cast<size_t>(n); offset += kSlotBytes) {
    std::optional<Slot> slot = Decode(buffer + offset);
    if (slot.has_value() && (!best.has_value() || slot->sequence > best->sequence)) best = slot;
  }
  if (!best.has_value()) {
    return absl::DataLossError(absl::StrCat("the commit marker ", path, " cannot be read"));
  }
  return std::optional<CommitMark>(best->mark);
}

absl::StatusOr<CommitMarker> CommitMarker::Open(const std::string& dir) {
  const std::string path = PathIn(dir);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot open", path);
  CommitMarker marker(fd);
  // Continue the sequence of what is there, so the next write wins over both slots.
  char buffer[2 * kSlotBytes] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer), 0);
  for (size_t offset = 0; n > 0 && offset + kSlotBytes <= static_cast<size_t>(n);
       offset += kSlotBytes) {
    if (std::optional<Slot> slot = Decode(buffer + offset)) {
      marker.sequence_ = std::max(marker.sequence_, slot->sequence);
    }
  }
  return marker;
}

CommitMarker::CommitMarker(CommitMarker&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), sequence_(other.sequence_) {}

CommitMarker& CommitMarker::operator=(CommitMarker&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    sequence_ = other.sequence_;
  }
  return *this;
}

CommitMarker::~CommitMarker() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status CommitMarker::Write(const CommitMark& mark) {
  char slot[kSlotBytes];
  ++sequence_;
  Encode(sequence_, mark, slot);
  const off_t offset = static_cast<off_t>((sequence_ % 2) * kSlotBytes);
  if (::pwrite(fd_, slot, kSlotBytes, offset) != static_cast<ssize_t>(kSlotBytes)) {
    return absl::UnavailableError(absl::StrCat("cannot write the commit marker: ",
                                               strerror(errno)));
  }
  if (::fdatasync(fd_) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot sync the commit marker: ",
                                               strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace chainscale
