// LoadWindow: one chainlet's in-flight load, aggregated per second over its sources and
// averaged over the chainlet's autoscaling window (DESIGN §6).
//
// Definitions, in whole seconds of Unix time:
// - A source's value counts for the second of its latest report and the following
//   seconds until it reports again, for `staleness_seconds` seconds in all; after that it
//   counts 0 and the source is forgotten.
// - The total of a second is the sum over sources of the value each holds at the end of
//   that second.
// - The average at time t is the mean of the totals of the last `window_seconds`
//   *completed* seconds, those before t's second: the second in progress never counts, so
//   a decision does not depend on whether it lands before or after a report in that
//   second. Until the chainlet has been observed for a whole window, it is the mean over
//   the completed seconds since the first report (as Knative does). AverageWithCurrent
//   also counts the second in progress, for the cold-start path, which has nothing else.
// - A live second is a completed second in which at least one source's value counted.
//   Warm-up and "silence is not zero" (DESIGN §6-§7) are decided from them.
//
// Requests are kept in thousandths (milli-requests) and tokens as integers, so sums are
// exact and replica counts computed from them have no rounding error. Windows up to
// kExactWindowSeconds keep one total per second and are exact. Longer windows keep totals
// per bucket of ceil(window / kExactWindowSeconds) seconds; the oldest bucket, which the
// window only partly covers, counts in proportion, so the average stays within a small
// fraction of exact (DESIGN §6 allows 1 %) with a ring of at most kExactWindowSeconds + 1
// buckets. Values and the number of sources are bounded (see the limits below) so no sum
// can overflow: 10 000 sources × 1e10 tokens × 3600 s < 2^63.
#ifndef CHAINSCALE_COMMON_LOAD_WINDOW_H_
#define CHAINSCALE_COMMON_LOAD_WINDOW_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace chainscale {

// One source's in-flight load at one moment.
struct LoadSample {
  int64_t request_millis = 0;     // in-flight requests × 1000
  std::optional<int64_t> tokens;  // in-flight tokens, when the source reports them
};

// Sums behind a window average: the mean is sum / seconds.
struct WindowLoad {
  int64_t request_millis_sum = 0;
  int64_t token_sum = 0;
  int64_t seconds = 0;      // seconds averaged over; 0 before a second has completed
  bool has_tokens = false;  // some source reported tokens

  double MeanRequests() const;
  double MeanTokens() const;
};

// Largest values one report may carry: 1e6 in-flight requests, 1e10 in-flight tokens.
inline constexpr int64_t kMaxReportRequestMillis = 1'000'000'000;
inline constexpr int64_t kMaxReportTokens = 10'000'000'000;
// Default cap on the sources whose values count at once for one chainlet.
inline constexpr int32_t kDefaultMaxSources = 10'000;
// Windows up to this many seconds are kept exactly, one total per second.
inline constexpr int32_t kExactWindowSeconds = 240;

class LoadWindow {
 public:
  // `window_seconds` ≥ 1, `staleness_seconds` ≥ 1, 1 ≤ `max_sources` ≤ 10 000.
  LoadWindow(int32_t window_seconds, int32_t staleness_seconds,
             int32_t max_sources = kDefaultMaxSources);

  LoadWindow(const LoadWindow&) = delete;
  LoadWindow& operator=(const LoadWindow&) = delete;
  LoadWindow(LoadWindow&&) = default;
  LoadWindow& operator=(LoadWindow&&) = default;

  // Records `source_id`'s value at `now`. A `now` earlier than a time already seen counts
  // as that later time (the window never moves backwards). INVALID_ARGUMENT for a
  // negative or too large value, RESOURCE_EXHAUSTED for a new source beyond
  // `max_sources`; either way nothing is recorded.
  absl::Status Report(absl::string_view source_id, const LoadSample& sample, absl::Time now);

  // Moves the window to `now` and returns the sums over its completed seconds.
  WindowLoad Average(absl::Time now);
  // The same, counting the second in progress as if it had completed.
  WindowLoad AverageWithCurrent(absl::Time now);

  // Changes the window length, keeping the most recent history. After growing, the
  // average covers the seconds still held until the longer window has filled.
  void Resize(int32_t window_seconds);

  // True when a report from `source_id` would be taken (a known source, or room for one
  // more).
  bool CanAccept(absl::string_view source_id) const {
    return static_cast<int32_t>(sources_.size()) < max_sources_ || sources_.contains(source_id);
  }
  int32_t max_sources() const { return max_sources_; }
  bool Knows(absl::string_view source_id) const { return sources_.contains(source_id); }
  // The sum of the sources' latest values (as of the last report or average).
  int64_t current_request_millis() const { return current_request_millis_; }
  int64_t current_tokens() const { return current_tokens_; }
  // Some source's value counts now (as of the last report or average).
  bool has_live_source() const { return !sources_.empty(); }
  // Completed seconds in which some source's value counted, since the window was made.
  int64_t live_seconds() const { return live_seconds_; }

  int32_t window_seconds() const { return window_seconds_; }
  // Seconds per stored total: 1 for windows up to kExactWindowSeconds.
  int32_t bucket_seconds() const { return bucket_seconds_; }
  // Sources whose values currently count.
  size_t source_count() const { return sources_.size(); }
  // Approximate heap bytes used, for memory accounting.
  size_t MemoryBytes() const;

 private:
  struct Source {
    int64_t request_millis = 0;
    int64_t tokens = 0;
    int64_t last_second = 0;
  };

  // Closes every second before `second`, expiring stale sources on the way.
  void AdvanceTo(int64_t second);
  void ExpireSourcesAt(int64_t second);
  // Adds the second in progress, as it stands, to its bucket.
  void CloseCurrentSecond();
  // The sums over the window's completed seconds before `end_second`, and the second in
  // progress too when `with_current`.
  WindowLoad Sum(int64_t end_second, bool with_current) const;
  int64_t Bucket(int64_t second) const { return FloorDiv(second, bucket_seconds_); }
  size_t Slot(int64_t bucket) const {
    return static_cast<size_t>(((bucket % slots_) + slots_) % slots_);
  }
  static int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }
  void AllocateRings();

  int32_t window_seconds_;
  int32_t bucket_seconds_;
  int32_t slots_;  // ring length in buckets
  int32_t staleness_seconds_;
  int32_t max_sources_;
  std::unique_ptr<int64_t[]> request_ring_;  // closed totals per bucket, by Slot(bucket)
  std::unique_ptr<int64_t[]> token_ring_;    // allocated on the first token report
  int64_t request_total_ = 0;                // sum over request_ring_
  int64_t token_total_ = 0;                  // sum over token_ring_

  absl::flat_hash_map<std::string, Source> sources_;
  int64_t current_request_millis_ = 0;  // sum of the sources' values now
  int64_t current_tokens_ = 0;
  int64_t current_second_ = 0;          // the second in progress; valid once started
  int64_t history_start_second_ = 0;    // first second observed
  int64_t next_expiry_second_ = 0;      // no source expires before this second
  int64_t live_seconds_ = 0;
  bool started_ = false;
};

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_LOAD_WINDOW_H_
